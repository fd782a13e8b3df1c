"""The ``oracle`` policy: knows the whole workload and picks breakpoints and TTLs per request to
minimise its total cost — the floor the other policies are measured against.

The policy class it is exact for ("chain plans"), per request:

- **base**: a breakpoint at the end of tools + system on every request of a group of requests
  sharing that prefix (same model and parameters), with one TTL per group, or none;
- **chain**: each request may read one entry written by an earlier request of its run (a *link*
  ``i → k``, ``k - i ≤ LINK_WINDOW``) with a breakpoint exactly on it, and may write one entry
  for a later request of its run, at the deepest block both share, with TTL 5m or 1h; the
  requests between ``i`` and ``k`` may read the same entry (refreshing it) without writing;
- **keep-alive**: any gap in a link that would outlive the TTL can be bridged by pings
  (``max_tokens: 0`` requests reading the entry) every ``TTL - PING_MARGIN_S`` seconds.

Every request's cost is the price (``tokenomy.pricing.cost``) of the usage the engine bills for
it, so the dynamic programme over (request, incoming link) states finds the cheapest chain plan
of each run exactly; the group base choice is searched exhaustively per group (coordinate
descent when one run touches several groups). What the DP predicts is then replayed through the
same ``CacheEngine`` as every other policy, and that replay is the oracle's bill.

Why it is a lower bound for what we compare: ``none`` (no base, no links), ``system_only`` and
``litellm_injection`` (base 5m, no links), ``auto`` (a link from each request to the next at the
deepest shared block, which never costs more than auto's write of the whole last block), and the
``tokenomy`` planner's usual plans (base + read + write for the next request) are all chain
plans or dominated by one. It is *not* a bound over every conceivable plan: reads across runs
other than through the base, links longer than ``LINK_WINDOW`` and several independent chains in
one run are outside the class (docs/simulate.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from tokenomy.analysis._replay import PING_TOKENS, Step, Workload, ping_request, shared_prefix
from tokenomy.analysis.policies import (
    NO_CACHE,
    Ping,
    Plan,
    PlanContext,
    StatelessPolicy,
    base_index,
    order_ttls,
    top_index,
)
from tokenomy.cache import billing_split, min_cacheable_tokens
from tokenomy.model import TTL, TTL_SECONDS, Request, ServiceTier, Usage
from tokenomy.pricing import cost, multipliers

__all__ = ["LINK_WINDOW", "PING_MARGIN_S", "OraclePolicy", "solve"]

LINK_WINDOW = 6  # a request may write for one of its run's next 6 requests
PING_MARGIN_S = 30.0  # keep-alive pings go this long before expiry
_BaseOpt = TTL | None
_BASE_OPTIONS: tuple[_BaseOpt, ...] = (None, "5m", "1h")
_TTLS: tuple[TTL, ...] = ("5m", "1h")
OUTPUT_WEIGHT_UNKNOWN = 5.0  # unknown price: output weighs like most models' output/input ratio


@lru_cache(maxsize=262_144)
def _price(model: str, i: int, w5: int, w1: int, rd: int, out: int, tier: ServiceTier) -> float:
    u = Usage(
        input_tokens=i,
        cache_write_5m=w5,
        cache_write_1h=w1,
        cache_read=rd,
        output_tokens=out,
        service_tier=tier,
    )
    c = cost(u, model)
    if c is not None:
        return c.total
    m = multipliers()  # unknown price: rank plans by the published multipliers
    return (
        i
        + w5 * m["cache_write_5m"]
        + w1 * m["cache_write_1h"]
        + rd * m["cache_read"]
        + out * OUTPUT_WEIGHT_UNKNOWN
    ) / 1e6


@dataclass(slots=True)
class _Info:
    step: Step
    cum: tuple[int, ...]
    total: int
    top: int
    base: int
    base_tokens: int
    minimum: int
    group: tuple[str, bytes, object] | None


def _info(step: Step) -> _Info:
    r = step.request
    cum = r.cumulative_tokens()
    minimum = min_cacheable_tokens(r.model)
    b = base_index(r)
    bt = cum[b] if b >= 0 else 0
    group = (
        (r.model, r.blocks[b].prefix_hash, tuple(sorted(r.params.items())))
        if b >= 0 and bt >= minimum
        else None
    )
    return _Info(step, cum, r.total_tokens, top_index(r), b, bt, minimum, group)


@dataclass(frozen=True, slots=True)
class _Base:
    ttl: _BaseOpt
    hit: bool


def _base_timeline(infos: Sequence[_Info], ttl: TTL) -> list[bool]:
    """Whether the group's base entry is read at each request (time order), when every request
    of the group carries the base breakpoint: a miss re-writes it."""
    hits: list[bool] = []
    expires = -math.inf
    available = math.inf
    for inf in infos:
        at = inf.step.at
        if expires > at and available <= at:
            hits.append(True)
            expires = max(expires, at + TTL_SECONDS[ttl])
        else:
            hits.append(False)
            expires, available = at + TTL_SECONDS[ttl], at + inf.step.ttft
    return hits


def _cost(inf: _Info, a_link: int, out_tokens: int, out_ttl: TTL | None, base: _Base) -> float:
    """The price of one request's usage under a chain plan (the engine's billing split)."""
    a = a_link
    if base.ttl is not None and base.hit:
        a = max(a, inf.base_tokens)
    bps: list[tuple[int, TTL]] = []
    if base.ttl is not None:
        bps.append((inf.base_tokens, base.ttl))
    if out_tokens:
        bps.append((out_tokens, out_ttl or "5m"))
    i, w5, w1, rd = billing_split(inf.total, a, bps)
    s = inf.step
    return _price(s.request.model, i, w5, w1, rd, s.output_tokens, s.service_tier)


def _pings_needed(gap: float, ttl: TTL) -> int:
    if gap < TTL_SECONDS[ttl]:
        return 0
    return int((gap - TTL_SECONDS[ttl]) // (TTL_SECONDS[ttl] - PING_MARGIN_S)) + 1


@dataclass(frozen=True, slots=True)
class _Link:
    cost: float
    riders: tuple[tuple[int, bool], ...]  # (run position, reads the entry)
    pings: tuple[float, ...]


class _RunSolver:
    """The DP over one run's requests for a fixed base choice per request."""

    def __init__(self, infos: list[_Info], bases: list[_Base]) -> None:
        self.infos = infos
        self.bases = bases
        self._node: dict[tuple[int, int], int] = {}
        self._links: dict[tuple[int, int, TTL], _Link | None] = {}
        self._costs: dict[tuple[int, int, int, TTL | None], float] = {}

    def cost(self, m: int, a_link: int, out_tokens: int, out_ttl: TTL | None) -> float:
        """``_cost`` of request ``m`` with its fixed base choice; many DP states and links ask
        the same question (the same read depth, the same write), so each answer is kept."""
        key = (m, a_link, out_tokens, out_ttl)
        found = self._costs.get(key)
        if found is None:
            found = self._costs[key] = _cost(self.infos[m], a_link, out_tokens, out_ttl, self.bases[m])
        return found

    def node(self, i: int, k: int) -> int:
        key = (i, k)
        found = self._node.get(key)
        if found is None:
            ri, rk = self.infos[i].step.request, self.infos[k].step.request
            p = min(shared_prefix(ri, rk), self.infos[i].top)
            while p >= 0 and not ri.blocks[p].cacheable:
                p -= 1
            found = p
            self._node[key] = found
        return found

    def link(self, i: int, k: int, ttl: TTL) -> _Link | None:
        key = (i, k, ttl)
        if key in self._links:
            return self._links[key]
        src = self.infos[i]
        p = self.node(i, k)
        ready = src.step.at + src.step.ttft
        tokens = src.cum[p]
        total = 0.0
        riders: list[tuple[int, bool]] = []
        pings: list[float] = []
        last = src.step.at
        ping_cost = _price(src.step.request.model, PING_TOKENS, 0, 0, tokens, 0, "standard")
        period = TTL_SECONDS[ttl] - PING_MARGIN_S
        for m in range(i + 1, k + 1):
            inf = self.infos[m]
            reads = m == k or (self.node(i, m) >= p and inf.step.at >= ready and inf.cum[p] == tokens)
            if m == k and inf.step.at < ready:
                self._links[key] = None
                return None
            if reads:
                n = _pings_needed(inf.step.at - last, ttl)
                pings.extend(last + period * (j + 1) for j in range(n))
                total += n * ping_cost
                last = inf.step.at
            if m < k:
                total += self.cost(m, tokens if reads else 0, 0, None)
                riders.append((m, reads))
        link = _Link(total, tuple(riders), tuple(pings))
        self._links[key] = link
        return link

    def solve(self) -> tuple[float, list[Plan], list[tuple[float, int, int, TTL]]]:
        n = len(self.infos)
        # state: (position, incoming writer or -1, incoming ttl) -> (cost, back-pointer)
        best: list[dict[tuple[int, TTL], tuple[float, tuple[int, int, TTL, int, TTL | None] | None]]] = [
            {} for _ in range(n + 1)
        ]
        best[0][(-1, "5m")] = (0.0, None)
        for i in range(n):
            inf = self.infos[i]
            base = self.bases[i]
            ttls: tuple[TTL, ...] = ("5m",) if base.ttl == "5m" else ("5m", "1h")
            # the writes request i can make (to the entry request k reads) do not depend on the
            # state it is reached in: list them once, with what each link costs
            writes: list[tuple[int, int, TTL, float]] = []
            for k in range(i + 1, min(n, i + LINK_WINDOW + 1)):
                p = self.node(i, k)
                if p < 0 or inf.cum[p] < inf.minimum:
                    continue
                for ttl in ttls:
                    link = self.link(i, k, ttl)
                    if link is not None:
                        writes.append((k, inf.cum[p], ttl, link.cost))
            base_floor = inf.base_tokens if base.ttl is not None else 0
            for (j, tin), (value, _) in list(best[i].items()):
                a_link = inf.cum[self.node(j, i)] if j >= 0 else 0
                c = value + self.cost(i, a_link, 0, None)
                _relax(best[i + 1], (-1, "5m"), c, (i, j, tin, -1, None))
                floor = max(a_link, base_floor)
                for k, tokens, ttl, link_cost in writes:
                    if tokens <= floor:
                        continue
                    c = value + self.cost(i, a_link, tokens, ttl) + link_cost
                    _relax(best[k], (i, ttl), c, (i, j, tin, k, ttl))
        return self._unwind(best)

    def _unwind(
        self, best: list[dict[tuple[int, TTL], tuple[float, tuple[int, int, TTL, int, TTL | None] | None]]]
    ) -> tuple[float, list[Plan], list[tuple[float, int, int, TTL]]]:
        n = len(self.infos)
        total, back = (
            best[n][(-1, "5m")] if (-1, "5m") in best[n] else min(best[n].values(), key=lambda v: v[0])
        )
        plans: list[Plan] = [NO_CACHE] * n
        pings: list[tuple[float, int, int, TTL]] = []
        while back is not None:
            i, j, tin, k, tout = back
            bps: dict[int, TTL] = {}
            base = self.bases[i]
            if base.ttl is not None:
                bps[self.infos[i].base] = base.ttl
            if j >= 0:
                bps[self.node(j, i)] = tin
            if k >= 0 and tout is not None:
                p = self.node(i, k)
                bps[p] = tout
                link = self.link(i, k, tout)
                assert link is not None
                for m, reads in link.riders:
                    rb: dict[int, TTL] = {}
                    rider_base = self.bases[m].ttl
                    if rider_base is not None:
                        rb[self.infos[m].base] = rider_base
                    if reads:
                        rb[p] = tout
                    plans[m] = Plan(breakpoints=order_ttls(rb))
                pings.extend((at, i, p, tout) for at in link.pings)
            plans[i] = Plan(breakpoints=order_ttls(bps))
            state = best[i][(j, tin)]
            back = state[1]
        return total, plans, pings


def _relax(
    table: dict[tuple[int, TTL], tuple[float, tuple[int, int, TTL, int, TTL | None] | None]],
    key: tuple[int, TTL],
    value: float,
    back: tuple[int, int, TTL, int, TTL | None],
) -> None:
    old = table.get(key)
    if old is None or value < old[0] - 1e-15:
        table[key] = (value, back)


@dataclass(frozen=True, slots=True)
class Solution:
    """The oracle's plan for a workload: a plan per step, the pings, the predicted cost."""

    plans: dict[tuple[str, int], Plan]
    pings: tuple[Ping, ...]
    predicted_usd: float
    base_ttls: dict[tuple[str, bytes, object], _BaseOpt]


def solve(workload: Workload) -> Solution:
    """The cheapest chain plan of the whole workload (see the module docstring)."""
    runs = workload.by_run()
    infos = {rid: [_info(s) for s in steps] for rid, steps in runs.items()}
    groups: dict[tuple[str, bytes, object], list[_Info]] = {}
    for rid in runs:
        for inf in infos[rid]:
            if inf.group is not None:
                groups.setdefault(inf.group, []).append(inf)
    for members in groups.values():
        members.sort(key=lambda x: x.step.at)
    runs_of: dict[tuple[str, bytes, object], set[str]] = {
        g: {m.step.run_id for m in members} for g, members in groups.items()
    }
    timelines: dict[tuple[tuple[str, bytes, object], TTL], dict[int, bool]] = {}
    for g, members in groups.items():
        for ttl in _TTLS:
            hits = _base_timeline(members, ttl)
            timelines[(g, ttl)] = {id(m): h for m, h in zip(members, hits, strict=True)}
    choice: dict[tuple[str, bytes, object], _BaseOpt] = dict.fromkeys(groups)
    memo: dict[
        tuple[str, tuple[_BaseOpt, ...]], tuple[float, list[Plan], list[tuple[float, int, int, TTL]]]
    ] = {}

    def bases_for(rid: str) -> list[_Base]:
        out: list[_Base] = []
        for inf in infos[rid]:
            opt = choice.get(inf.group) if inf.group is not None else None
            hit = timelines[(inf.group, opt)][id(inf)] if inf.group is not None and opt is not None else False
            out.append(_Base(opt, hit))
        return out

    def run_cost(rid: str) -> tuple[float, list[Plan], list[tuple[float, int, int, TTL]]]:
        opts = tuple(choice.get(inf.group) if inf.group is not None else None for inf in infos[rid])
        key = (rid, opts)
        if key not in memo:
            memo[key] = _RunSolver(infos[rid], bases_for(rid)).solve()
        return memo[key]

    multi = any(len({inf.group for inf in infos[rid] if inf.group is not None}) > 1 for rid in runs)
    for _ in range(2 if multi else 1):
        for g in groups:
            scores: list[tuple[float, int, _BaseOpt]] = []
            for n, opt in enumerate(_BASE_OPTIONS):
                choice[g] = opt
                scores.append((sum(run_cost(rid)[0] for rid in runs_of[g]), n, opt))
            choice[g] = min(scores)[2]
    plans: dict[tuple[str, int], Plan] = {}
    pings: list[Ping] = []
    predicted = 0.0
    for rid, steps in runs.items():
        total, run_plans, run_pings = run_cost(rid)
        predicted += total
        for s, p in zip(steps, run_plans, strict=True):
            plans[(rid, s.index)] = p
        for at, i, node, ttl in run_pings:
            pings.append(Ping(at=at, request=ping_request(steps[i].request, node, ttl), run_id=rid))
    pings.sort(key=lambda p: p.at)
    return Solution(plans=plans, pings=tuple(pings), predicted_usd=predicted, base_ttls=choice)


class OraclePolicy(StatelessPolicy):
    """Plays back ``solve(workload)``: the plan of each step, and its pings when they are due."""

    name = "oracle"
    description = "knows the whole run: the cheapest chain plan (exact DP), the floor"

    def __init__(self, workload: Workload) -> None:
        self.solution = solve(workload)
        self._next_ping = 0

    def plan(self, request: Request, ctx: PlanContext) -> Plan:
        return self.solution.plans.get((ctx.run_id, ctx.turn_index), NO_CACHE)

    def due_pings(self, until: float) -> list[Ping]:
        pings = self.solution.pings
        start = self._next_ping
        while self._next_ping < len(pings) and pings[self._next_ping].at < until:
            self._next_ping += 1
        return list(pings[start : self._next_ping])
