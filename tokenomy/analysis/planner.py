"""The ``tokenomy`` policy: an online breakpoint planner that uses only what it has seen so far.

Per request it places at most four breakpoints:

1. **base** — the end of tools + system, the prefix that sub-agents and sessions of one agent
   share, when it is already cached (a free refresh) or when a write above it is paid anyway;
   its TTL is 1h when this prefix has been seen coming back after a silence a 5m entry would not
   survive (often enough to repay the 1h premium), else 5m;
2. **anchor** — the run's deepest live 1h entry, refreshed for free, so a long gap falls back to
   it instead of to the base;
3. **read** — exactly on the deepest entry it knows to be live for this prefix, so the 20-position
   lookback never matters (the breakpoint is at distance 0 from the last written entry);
4. **top** — the last cacheable block, when the run's history says a successor will read it
   often enough to repay the write premium: the chance that the run goes on after this many
   requests (learned from runs that went quiet) times the rate at which successors read a top
   write. A compaction request (``ctx.meta["kind"] == "compaction"``) is never re-read: no top.
   A free slot goes to **stable**, the deepest block shared with the run's previous request.

TTL of the top: 1h when the 1h premium on the tokens written now costs less than what the next
gap is expected to cost a 5m entry (keep-alive pings, or falling back to the anchor): the chance
that it is long times what long gaps cost so far. That chance is learned by position in the
*stretch* (the requests since the run's last long gap, e.g. a tool loop between two human
turns): how often the gap after a stretch's ``k``-th request was long, this run's shrunk towards
its overall rate, and that towards every run's. Keep-alive pings (a ``max_tokens: 0`` request ending at the entry) are decided
in time order when they are due, with only what was known then; a declined ping is final. One
is sent when the chance that the run comes back (Bayes: it goes on, and its next gap is this
long, against it having stopped at this length) makes a read now cheaper than falling back to
the anchor later. A run silent for ``ended_after_s`` is forgotten.

State lives in the ``TokenomyPlanner`` instance: one per replay, per gateway workspace, per
``wrap()`` client. ``plan`` does not mutate it; ``observe`` and ``due_pings`` do. Nothing is
learned from the future; the oracle is what knows the future.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tokenomy.analysis._replay import ping_request, shared_prefix
from tokenomy.analysis.policies import (
    Ping,
    Plan,
    PlanContext,
    StatelessPolicy,
    base_index,
    order_ttls,
    top_index,
)
from tokenomy.cache import CacheResult, min_cacheable_tokens
from tokenomy.model import TTL, TTL_SECONDS, Request
from tokenomy.pricing import model_info

__all__ = ["PlannerOptions", "TokenomyPlanner"]

_5M = TTL_SECONDS["5m"]
_1H = TTL_SECONDS["1h"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannerOptions:
    """Knobs of the online planner; the defaults are what ``simulate`` measures."""

    ping_margin_s: float = 30.0  # ping this long before an entry would expire
    ended_after_s: float = 3600.0  # a run silent this long is taken as finished for good
    quiet_min_s: float = 60.0  # a run silent max(this, 3x its longest gap) counts as finished
    history: int = 200  # gaps remembered
    prior_reads: float = 9.0  # prior successes for "a successor reads the top write"
    prior_writes: float = 10.0
    prior_goes_on: float = 2.0  # prior runs that went on past any given length
    prior_quiet: float = 0.1  # prior runs that stopped at any given length
    hazard_prior: float = 1.0  # pseudo-gaps pulling a stretch position's long-gap rate to the pooled one


@dataclass(slots=True)
class _Entry:
    """An entry this planner believes the cache holds."""

    request: Request
    node: int
    tokens: int
    ttl: TTL
    expires: float
    available: float
    run_id: str


@dataclass(slots=True)
class _Hazard:
    """How often the gap after the ``k``-th request of a stretch was long, where a stretch is the
    requests since the last long gap (an agent loop between two human turns, for instance)."""

    seen: Counter[int] = field(default_factory=Counter)
    long: Counter[int] = field(default_factory=Counter)
    gaps: int = 0
    longs: int = 0

    def add(self, k: int, is_long: bool) -> None:
        self.seen[k] += 1
        self.gaps += 1
        if is_long:
            self.long[k] += 1
            self.longs += 1

    def rate(self, k: int, prior: float, pooled: float) -> float:
        """The long-gap rate after position ``k``, shrunk towards ``pooled`` by ``prior`` gaps."""
        return (self.long[k] + prior * pooled) / (self.seen[k] + prior)


@dataclass(slots=True)
class _RunState:
    last: Request | None = None
    last_at: float = 0.0
    n: int = 0  # requests seen
    frontier: _Entry | None = None  # deepest entry written (or read) for this run
    anchor: _Entry | None = None  # deepest 1h entry of this run
    top_written: int = 0  # tokens of the last top write, to learn whether it was read
    max_gap: float = 0.0
    lapsed: bool = False  # a keep-alive was declined: no more pings until the next request
    quiet_at: int = 0  # the length at which the run was counted quiet, 0 while active
    gaps: list[float] = field(default_factory=list)
    long_gaps: list[float] = field(default_factory=list)
    stretch: int = 0  # requests since the last long gap, this one included
    hazard: _Hazard = field(default_factory=_Hazard)


def _ratios(model: str) -> tuple[float, float, float]:
    """(5m write, 1h write, read) per token as a fraction of the input price; the API's
    published multipliers when the price is unknown."""
    info = model_info(model)
    if info is None or not info.price_known or not info.input:
        return 1.25, 2.0, 0.1
    assert info.cache_write_5m is not None and info.cache_write_1h is not None and info.cache_read is not None
    return info.cache_write_5m / info.input, info.cache_write_1h / info.input, info.cache_read / info.input


def _is_compaction(meta: Mapping[str, Any]) -> bool:
    return meta.get("kind") == "compaction" or bool(meta.get("is_compaction"))


class TokenomyPlanner(StatelessPolicy):
    """The online planner (see the module docstring)."""

    name = "tokenomy"
    description = "online planner: base + anchor + read + top, TTL and keep-alive from observed gaps"

    def __init__(self, options: PlannerOptions | None = None) -> None:
        self.options = options or PlannerOptions()
        self._entries: dict[tuple[str, bytes], _Entry] = {}
        self._runs: dict[str, _RunState] = {}
        self._gaps: list[float] = []  # continuing gaps, all runs
        self._long_gaps: list[float] = []  # the long ones (a 5m entry needs a ping to outlive them)
        self._hazard = _Hazard()
        self._reads = self.options.prior_reads
        self._writes = self.options.prior_writes
        # run lengths: how many runs reached k requests, and how many went quiet at exactly k
        self._reached: Counter[int] = Counter()
        self._quiet: Counter[int] = Counter()
        # (when, run, its length then, 0 = goes quiet / 1 = ends): a run that ends is forgotten
        self._silence_heap: list[tuple[float, str, int, int]] = []
        # base prefixes: last time each was needed, and how often a 1h entry would have saved a write
        self._base_seen: dict[tuple[str, bytes], float] = {}
        self._base_new = 0  # base needed with no touch within the hour (a write either way)
        self._base_lapse = 0  # base needed after a silence only a 1h entry survives

    # -- what was seen -----------------------------------------------------------------------

    def _live(self, request: Request, index: int, at: float) -> _Entry | None:
        e = self._entries.get((request.model, request.blocks[index].prefix_hash))
        if e is None or e.expires <= at or e.available > at:
            return None
        return e

    def _matches(self, request: Request, e: _Entry, at: float) -> bool:
        return (
            e.node < len(request.blocks)
            and request.blocks[e.node].prefix_hash == e.request.blocks[e.node].prefix_hash
            and self._live(request, e.node, at) is not None
        )

    def _read_node(self, request: Request, state: _RunState | None, at: float) -> int:
        """The deepest block of ``request`` on which a live entry sits, among those known."""
        best = -1
        candidates: list[_Entry] = []
        if state is not None:
            candidates.extend(e for e in (state.frontier, state.anchor) if e is not None)
        candidates.extend(e for e in self._recent if e.request.model == request.model)
        for e in candidates:
            if e.node > best and self._matches(request, e, at):
                best = e.node
        return best

    @property
    def _recent(self) -> list[_Entry]:
        return [rs.frontier for rs in self._runs.values() if rs.frontier is not None][-16:]

    def _goes_on(self, n: int) -> float:
        """Chance that a run which has made ``n`` requests makes another: runs that reached
        ``n + 1`` against runs that went quiet at ``n``, with a prior that runs go on."""
        on = self._reached[n + 1] + self.options.prior_goes_on
        return on / (on + self._quiet[n] + self.options.prior_quiet)

    def _base_ttl(self, model: str) -> TTL:
        """1h when the share of base writes a 1h entry would have turned into reads repays the
        premium on the others: ``f (w5 - rd) > (1 - f)(w1 - w5)``."""
        w5, w1, rd = _ratios(model)
        total = self._base_new + self._base_lapse
        if not total:
            return "5m"
        f = self._base_lapse / (total + 1.0)
        return "1h" if f * (w1 - rd) > (w1 - w5) else "5m"

    def _long_pool(self, state: _RunState | None) -> list[float]:
        """The long gaps to draw a long gap's length from: this run's once it has two, else
        every run's."""
        return state.long_gaps if state is not None and len(state.long_gaps) >= 2 else self._long_gaps

    def _stretch(self, state: _RunState | None, at: float) -> int:
        """The position in its stretch of a request made at ``at`` (1 after a long gap)."""
        if state is None or state.last is None or at - state.last_at >= self._long_s:
            return 1
        return state.stretch + 1

    def _long_rate(self, state: _RunState | None, k: int) -> float:
        """Chance that the gap after a stretch's ``k``-th request is long. A run with gaps of its
        own: its rate at ``k``, shrunk towards its overall rate, itself shrunk towards every
        run's; a run without: every run's rate at ``k``, shrunk towards every run's overall
        rate (each by ``hazard_prior`` pseudo-gaps). With no structure by position this is the
        share of long gaps, as before; runs of other agents do not set this run's rhythm."""
        prior = self.options.hazard_prior
        h = self._hazard
        pooled = h.longs / (h.gaps + 1.0)
        if state is None or not state.hazard.gaps:
            return h.rate(k, prior, pooled)
        own = state.hazard
        overall = (own.longs + prior * pooled) / (own.gaps + prior)
        return own.rate(k, prior, overall)

    @property
    def _long_s(self) -> float:
        """A gap is long when a 5m entry needs a keep-alive decision to outlive it."""
        return _5M - self.options.ping_margin_s

    def _next_gap_cost(self, state: _RunState | None, model: str, top: int, anchor: int, k: int) -> float:
        """What the gap after this request (the ``k``-th of its stretch) is expected to cost a 5m
        entry of ``top`` tokens, in input-token units: the chance it is long times what a long
        gap costs on average, where a long gap is bridged by keep-alive pings (each reads the
        prefix) or falls back to the deepest 1h entry (``anchor`` tokens) and re-writes the
        rest, whichever is less."""
        pool = self._long_pool(state)
        if not pool:
            return 0.0
        w5, _, rd = _ratios(model)
        period = _5M - self.options.ping_margin_s
        cost = 0.0
        for g in pool:
            if g >= _5M:
                pings = int((g - _5M) // period) + 1
                fallback = (w5 - rd) * (top - anchor) if g < _1H else (w5 - rd) * top
                cost += min(pings * rd * top, fallback)
        return self._long_rate(state, k) * cost / len(pool)

    # -- planning ----------------------------------------------------------------------------

    def plan(self, request: Request, ctx: PlanContext) -> Plan:
        if not request.blocks:
            return Plan()
        cum = request.cumulative_tokens()
        minimum = min_cacheable_tokens(request.model)
        state = self._runs.get(ctx.run_id)
        read = self._read_node(request, state, ctx.at)
        a_tokens = cum[read] if read >= 0 else 0
        top = top_index(request)
        base = base_index(request)
        w5, w1, rd = _ratios(request.model)
        n = state.n if state is not None else 0
        p_read = (self._reads / self._writes) * self._goes_on(n + 1)
        compaction = _is_compaction(ctx.meta)
        worth = p_read * (1.0 - rd) > (w5 - 1.0) and not compaction
        bps: dict[int, TTL] = {}
        write = top >= 0 and cum[top] >= minimum and cum[top] > a_tokens and worth
        base_ok = base >= 0 and cum[base] >= minimum
        base_live = base_ok and self._live(request, base, ctx.at) is not None
        # a compaction's top is never read again, but the run it compacts goes on from the base
        base_write = base_ok and not base_live and (write or compaction) and cum[base] > a_tokens
        base_ttl: TTL = self._base_ttl(request.model) if base_write else "5m"
        anchor = -1
        if state is not None and state.anchor is not None and self._matches(request, state.anchor, ctx.at):
            anchor = state.anchor.node
        floor = cum[anchor] if anchor >= 0 else 0
        if base_ttl == "1h" or (base_live and self._entries_ttl(request, base) == "1h"):
            floor = max(floor, cum[base])
        if write:
            k = self._stretch(state, ctx.at)
            gap_cost = self._next_gap_cost(state, request.model, cum[top], floor, k)
            ttl: TTL = "1h" if (w1 - w5) * (cum[top] - a_tokens) < gap_cost else "5m"
            bps[top] = ttl
        if read >= 0:
            bps[read] = "5m"
        if anchor >= 0 and anchor not in bps:
            bps[anchor] = "1h"
        if base_ok and base not in bps and (base_live or base_write):
            bps[base] = base_ttl if base_write else (self._entries_ttl(request, base) or "5m")
        if write and state is not None and state.last is not None and len(bps) < 4:
            stable = shared_prefix(state.last, request)
            while stable > read and not request.blocks[stable].cacheable:
                stable -= 1
            if read < stable < top and cum[stable] >= minimum and stable not in bps:
                bps[stable] = bps[top]
        return Plan(breakpoints=order_ttls(bps))

    def _entries_ttl(self, request: Request, index: int) -> TTL | None:
        e = self._entries.get((request.model, request.blocks[index].prefix_hash))
        return e.ttl if e is not None else None

    # -- learning ----------------------------------------------------------------------------

    def _settle(self, now: float) -> None:
        """Count runs silent long enough as quiet (finished, for the run-length estimate), and
        forget runs silent for ``ended_after_s`` (nothing of theirs is cached any more)."""
        heap = self._silence_heap
        while heap and heap[0][0] <= now:
            _, run_id, length, kind = heapq.heappop(heap)
            st = self._runs.get(run_id)
            if st is None or st.n != length:
                continue  # it has made another request since
            if kind:
                del self._runs[run_id]
            elif not st.quiet_at:
                st.quiet_at = length
                self._quiet[length] += 1

    def observe(self, request: Request, ctx: PlanContext, result: CacheResult) -> None:
        self._settle(ctx.at)
        state = self._runs.setdefault(ctx.run_id, _RunState())
        if state.quiet_at:  # it came back: it had not finished
            self._quiet[state.quiet_at] -= 1
            state.quiet_at = 0
        if state.last is not None:
            gap = ctx.at - state.last_at
            state.gaps.append(gap)
            self._gaps.append(gap)
            state.max_gap = max(state.max_gap, gap)
            del state.gaps[: -self.options.history]
            del self._gaps[: -self.options.history]
            is_long = gap >= self._long_s
            state.hazard.add(state.stretch, is_long)
            self._hazard.add(state.stretch, is_long)
            if is_long:
                state.long_gaps.append(gap)
                self._long_gaps.append(gap)
                del state.long_gaps[: -self.options.history]
                del self._long_gaps[: -self.options.history]
                state.stretch = 0
            if state.top_written:
                self._writes += 1
                if result.read_tokens >= state.top_written:
                    self._reads += 1
        state.top_written = 0
        state.n += 1
        state.stretch += 1
        self._reached[state.n] += 1
        state.lapsed = False
        self._learn_base(request, ctx, result)
        available = ctx.at + ctx.ttft
        cum = request.cumulative_tokens()
        for o in result.breakpoints:
            if o.hit_block is not None:
                hit = self._entries.get((request.model, request.blocks[o.hit_block].prefix_hash))
                if hit is not None:
                    hit.expires = max(hit.expires, ctx.at + TTL_SECONDS[hit.ttl])
        deepest: _Entry | None = None
        for idx in result.written:
            ttl = next(o.ttl for o in result.breakpoints if o.block_index == idx)
            entry = _Entry(
                request=request, node=idx, tokens=cum[idx], ttl=ttl,
                expires=ctx.at + TTL_SECONDS[ttl], available=available, run_id=ctx.run_id,
            )  # fmt: skip
            self._entries[(request.model, request.blocks[idx].prefix_hash)] = entry
            if deepest is None or idx > deepest.node:
                deepest = entry
            if ttl == "1h" and request.blocks[idx].section == "messages":
                if state.anchor is None or idx >= state.anchor.node or state.anchor.expires <= ctx.at:
                    state.anchor = entry
        top = top_index(request)
        if deepest is not None and deepest.node == top:
            state.top_written = deepest.tokens
        if deepest is not None and request.blocks[deepest.node].section == "messages":
            state.frontier = deepest
        elif result.hit_block is not None and request.blocks[result.hit_block].section == "messages":
            hit = self._entries.get((request.model, request.blocks[result.hit_block].prefix_hash))
            if hit is not None:
                state.frontier = hit
        state.last = request
        state.last_at = ctx.at
        quiet = min(max(self.options.quiet_min_s, 3.0 * state.max_gap), self.options.ended_after_s)
        heapq.heappush(self._silence_heap, (ctx.at + quiet, ctx.run_id, state.n, 0))
        heapq.heappush(self._silence_heap, (ctx.at + self.options.ended_after_s, ctx.run_id, state.n, 1))
        if len(self._entries) > 50_000:
            self._entries = {k: e for k, e in self._entries.items() if e.expires > ctx.at}

    def _learn_base(self, request: Request, ctx: PlanContext, result: CacheResult) -> None:
        """When a request needed the base (nothing deeper was read), note how long the base had
        been untouched: within the hour a 1h entry would have been read; beyond it, written."""
        base = base_index(request)
        if base < 0:
            return
        key = (request.model, request.blocks[base].prefix_hash)
        cum = request.cumulative_tokens()
        last = self._base_seen.get(key)
        if result.read_tokens <= cum[base]:
            if last is None or ctx.at - last >= _1H:
                self._base_new += 1
            elif ctx.at - last >= _5M:
                self._base_lapse += 1
        self._base_seen[key] = ctx.at
        if len(self._base_seen) > 10_000:
            self._base_seen = {k: t for k, t in self._base_seen.items() if ctx.at - t < _1H}

    # -- keep-alive ---------------------------------------------------------------------------

    def _ping_pays(self, run_id: str, at: float, entry: _Entry, fallback: int) -> bool:
        """Whether a read of the entry at ``at`` beats falling back to ``fallback`` tokens later.

        The chance the run comes back after the entry would expire is Bayes over what was seen:
        the run goes on (``_goes_on``) and its next gap is long, against the run having ended,
        given that it has been silent this long. A ping pays when that chance times the
        re-write it saves exceeds the reads it costs (this ping and the further ones the longer
        gaps seen needed)."""
        state = self._runs[run_id]
        elapsed = at - state.last_at
        pool = self._long_pool(state)
        longer = [g for g in pool if g >= elapsed]
        if not longer:
            return False
        w5, _, rd = _ratios(entry.request.model)
        period = _5M - self.options.ping_margin_s
        c = self._goes_on(state.n)
        q = self._long_rate(state, state.stretch) * len(longer) / len(pool)
        p_back = c * q / (c * q + 1.0 - c)
        more = sum((g - elapsed) // period for g in longer) / len(longer)
        return p_back * (w5 - rd) * (entry.tokens - fallback) > rd * entry.tokens * (1.0 + more)

    def due_pings(self, until: float) -> list[Ping]:
        """Keep-alive pings due before ``until``, each decided in time order with only what was
        known at its own time; a declined ping is final for that silence."""
        margin = self.options.ping_margin_s
        heap: list[tuple[float, str]] = []
        for run_id, state in self._runs.items():
            e = state.frontier
            if not state.lapsed and e is not None and e.ttl == "5m":
                heap.append((e.expires - margin, run_id))
        heapq.heapify(heap)
        out: list[Ping] = []
        while heap and heap[0][0] < until:
            at, run_id = heapq.heappop(heap)
            self._settle(at)
            found = self._runs.get(run_id)
            if found is None:
                continue  # silent long enough to count as ended
            state = found
            e = state.frontier
            assert e is not None
            if at <= state.last_at:
                continue
            a = state.anchor
            fallback = a.tokens if a is not None and a.expires > e.expires and a.node < e.node else 0
            if not self._ping_pays(run_id, at, e, fallback):
                state.lapsed = True  # decided now, with what is known now: final
                continue
            out.append(Ping(at=at, request=ping_request(e.request, e.node, e.ttl), run_id=run_id))
            e.expires = at + TTL_SECONDS[e.ttl]
            heapq.heappush(heap, (e.expires - margin, run_id))
        return out
