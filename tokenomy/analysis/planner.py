"""The ``tokenomy`` policy: an online breakpoint planner that uses only what it has seen so far.

Per request it places at most four breakpoints:

1. **base** — the end of tools + system, the prefix that sub-agents and sessions of one agent
   share, when it is already cached (a free refresh) or when a write above it is paid anyway;
2. **read** — exactly on the deepest entry it knows to be live for this prefix, so the 20-position
   lookback never matters (the breakpoint is at distance 0 from the last written entry);
3. **stable** — the deepest block this request shares with the run's previous request (a write
   below the top is free: billing charges writes up to the highest breakpoint only);
4. **top** — the last cacheable block, when the run's history says a successor will read it often
   enough to repay the write premium (``write - input`` against ``input - read`` per token).

TTL: 1h when the observed gaps say the 1h premium on the tokens written now costs less than
the keep-alive pings (or the lapse) the next gap would need; else 5m.
Keep-alive pings (a ``max_tokens: 0`` request ending at the entry) are sent when the entry is
about to expire and the observed gaps say the run is likely to come back: the ping costs a read,
a lapse costs a re-write. Everything is learned from requests already seen (and the engine
results for them), never from the future; the oracle is what knows the future.

State lives in the ``TokenomyPlanner`` instance: one per replay, per gateway workspace, per
``wrap()`` client. ``plan`` does not mutate it; ``observe`` and ``due_pings`` do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannerOptions:
    """Knobs of the online planner; the defaults are what ``simulate`` measures."""

    ping_margin_s: float = 30.0  # ping this long before an entry would expire
    ended_after_s: float = 3600.0  # a run silent this long is taken as finished
    history: int = 200  # gaps remembered
    prior_reads: float = 9.0  # prior successes for "a successor reads the top write"
    prior_writes: float = 10.0


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
class _RunState:
    last: Request | None = None
    last_at: float = 0.0
    frontier: _Entry | None = None  # deepest entry written for this run
    top_written: int = 0  # tokens of the last top write, to learn whether it was read
    pings: int = 0
    ended: bool = False
    gaps: list[float] = field(default_factory=list)


def _ratios(model: str) -> tuple[float, float, float]:
    """(5m write, 1h write, read) per token as a fraction of the input price; the API's
    published multipliers when the price is unknown."""
    info = model_info(model)
    if info is None or not info.price_known or not info.input:
        return 1.25, 2.0, 0.1
    assert info.cache_write_5m is not None and info.cache_write_1h is not None and info.cache_read is not None
    return info.cache_write_5m / info.input, info.cache_write_1h / info.input, info.cache_read / info.input


class TokenomyPlanner(StatelessPolicy):
    """The online planner (see the module docstring)."""

    name = "tokenomy"
    description = "online planner: base + read + stable + top, TTL and keep-alive from observed gaps"

    def __init__(self, options: PlannerOptions | None = None) -> None:
        self.options = options or PlannerOptions()
        self._entries: dict[tuple[str, bytes], _Entry] = {}
        self._runs: dict[str, _RunState] = {}
        self._gaps: list[float] = []  # continuing gaps, all runs
        self._ended = 0
        self._reads = self.options.prior_reads
        self._writes = self.options.prior_writes

    # -- planning ----------------------------------------------------------------------------

    def _live(self, request: Request, index: int, at: float) -> _Entry | None:
        e = self._entries.get((request.model, request.blocks[index].prefix_hash))
        if e is None or e.expires <= at or e.available > at:
            return None
        return e

    def _read_node(self, request: Request, state: _RunState | None, at: float) -> int:
        """The deepest block of ``request`` on which a live entry sits, among those known."""
        best = -1
        candidates: list[_Entry] = []
        if state is not None and state.frontier is not None:
            candidates.append(state.frontier)
        candidates.extend(e for e in self._recent if e.request.model == request.model)
        for e in candidates:
            if e.node < len(request.blocks) and e.node > best:
                blk = request.blocks[e.node]
                if blk.prefix_hash == e.request.blocks[e.node].prefix_hash and self._live(
                    request, e.node, at
                ):
                    best = e.node
        return best

    @property
    def _recent(self) -> list[_Entry]:
        return [rs.frontier for rs in self._runs.values() if rs.frontier is not None and not rs.ended][-16:]

    def _choose_ttl(self, state: _RunState | None, model: str, top_tokens: int, read_tokens: int) -> TTL:
        """1h when the gaps seen so far make it cheaper than 5m plus keep-alive pings.

        The 1h premium is paid now on the tokens written (``top - read``); pings are paid only
        when a gap really runs long (each reads the whole prefix), and a gap past what pings
        bridge re-writes it. Both are estimated over this run's gaps once it has a few, else
        over every run's gaps; with no long gap seen, 5m.
        """
        gaps = state.gaps if state is not None and len(state.gaps) >= 3 else self._gaps
        if not gaps:
            return "5m"
        w5, w1, rd = _ratios(model)
        period = TTL_SECONDS["5m"] - self.options.ping_margin_s
        five = 0.0
        for g in gaps:
            if g >= TTL_SECONDS["5m"]:
                pings = int((g - TTL_SECONDS["5m"]) // period) + 1
                five += min(pings * rd, w5 - rd) * top_tokens  # ping, or let it lapse and re-write
        five /= len(gaps) + 1.0
        return "1h" if (w1 - w5) * (top_tokens - read_tokens) < five else "5m"

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
        worth = (self._reads / self._writes) * (1.0 - rd) > (w5 - 1.0)
        bps: dict[int, TTL] = {}
        write = top >= 0 and cum[top] >= minimum and cum[top] > a_tokens and worth
        ttl = self._choose_ttl(state, request.model, cum[top], a_tokens) if write else "5m"
        if write:
            bps[top] = ttl
            if state is not None and state.last is not None:
                stable = shared_prefix(state.last, request)
                while stable > read and not request.blocks[stable].cacheable:
                    stable -= 1
                if read < stable < top and cum[stable] >= minimum:
                    bps[stable] = ttl
        if read >= 0:
            bps[read] = "5m"
        if base >= 0 and base not in bps and cum[base] >= minimum and len(bps) < 4:
            if self._live(request, base, ctx.at) is not None or (write and cum[base] > a_tokens):
                bps[base] = "5m"
        return Plan(breakpoints=order_ttls(bps))

    # -- learning ----------------------------------------------------------------------------

    def observe(self, request: Request, ctx: PlanContext, result: CacheResult) -> None:
        state = self._runs.setdefault(ctx.run_id, _RunState())
        if state.last is not None:
            gap = ctx.at - state.last_at
            state.gaps.append(gap)
            self._gaps.append(gap)
            del state.gaps[: -self.options.history]
            del self._gaps[: -self.options.history]
            if state.top_written:
                self._writes += 1
                if result.read_tokens >= state.top_written:
                    self._reads += 1
        state.top_written = 0
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
        state.pings = 0
        if len(self._entries) > 50_000:
            self._entries = {k: e for k, e in self._entries.items() if e.expires > ctx.at}

    # -- keep-alive ---------------------------------------------------------------------------

    def _ping_pays(self, elapsed: float, tokens_ratio: tuple[float, float, float]) -> bool:
        """Whether the gaps seen so far say the run comes back after ``elapsed`` seconds often
        enough that a read now beats a re-write later."""
        w5, _, rd = tokens_ratio
        period = TTL_SECONDS["5m"] - self.options.ping_margin_s
        longer = [g for g in self._gaps if g >= elapsed]
        if not longer:
            return False
        p_back = len(longer) / (len(longer) + self._ended)
        more = sum((g - elapsed) // period for g in longer) / len(longer)
        return p_back * (w5 - rd) > rd * (1.0 + more)

    def due_pings(self, until: float) -> list[Ping]:
        out: list[Ping] = []
        for run_id, state in self._runs.items():
            if state.ended:
                continue
            if until - state.last_at > self.options.ended_after_s:
                state.ended = True
                self._ended += 1
            e = state.frontier
            if e is None or e.ttl != "5m":
                continue
            while True:
                at = e.expires - self.options.ping_margin_s
                if at >= until or at <= state.last_at or e.expires <= at:
                    break
                if not self._ping_pays(at - state.last_at, _ratios(e.request.model)):
                    break
                out.append(Ping(at=at, request=ping_request(e.request, e.node, e.ttl), run_id=run_id))
                e.expires = at + TTL_SECONDS[e.ttl]
                state.pings += 1
        out.sort(key=lambda p: p.at)
        return out
