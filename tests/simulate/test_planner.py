"""The online planner: it decides keep-alive pings with only what it knew at their time, skips a
compaction's top, learns where runs stop and when the shared base deserves a 1h entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tokenomy.analysis._replay import build_workload
from tokenomy.analysis.planner import TokenomyPlanner
from tokenomy.analysis.policies import Ping, Plan, PlanContext, apply_plan, base_index, top_index
from tokenomy.analysis.simulate import replay
from tokenomy.analysis.synthetic import generate
from tokenomy.blocks import parse_request
from tokenomy.cache import CacheEngine, CacheResult
from tokenomy.model import Request

SYSTEM = " ".join(f"rule {i}: keep the cache warm and the bill small." for i in range(400))


class _Recorder:
    """Wraps the planner; records every plan and checks pings are never back-dated."""

    name = "tokenomy"

    def __init__(self) -> None:
        self.inner = TokenomyPlanner()
        self.plans: dict[tuple[str, int], tuple[Request, Plan]] = {}
        self.until = float("-inf")
        self.pings: list[Ping] = []

    def plan(self, request: Request, ctx: PlanContext) -> Plan:
        plan = self.inner.plan(request, ctx)
        self.plans[(ctx.run_id, ctx.turn_index)] = (request, plan)
        return plan

    def observe(self, request: Request, ctx: PlanContext, result: CacheResult) -> None:
        self.inner.observe(request, ctx, result)

    def due_pings(self, until: float) -> list[Ping]:
        pings = self.inner.due_pings(until)
        for p in pings:
            assert self.until <= p.at < until, f"ping at {p.at} decided only at {until} (after {self.until})"
        self.until = until
        self.pings.extend(pings)
        return pings


def _body(messages: int, tail: str = "") -> dict[str, Any]:
    msgs: list[dict[str, Any]] = []
    for i in range(messages):
        msgs.append({"role": "user", "content": f"question {i} {tail} " + "detail " * 300})
        msgs.append({"role": "assistant", "content": f"answer {i} " + "words " * 200})
    msgs.append({"role": "user", "content": f"and now {tail}"})
    return {"model": "claude-sonnet-4-5", "max_tokens": 100, "system": SYSTEM, "messages": msgs}


def _step(planner: TokenomyPlanner, engine: CacheEngine, request: Request, ctx: PlanContext) -> Plan:
    for ping in planner.due_pings(ctx.at):
        engine.process(ping.request, at=ping.at)
    plan = planner.plan(request, ctx)
    result = engine.process(apply_plan(request, plan), at=ctx.at, ttft=1.0)
    planner.observe(request, ctx, result)
    return plan


def test_pings_are_decided_at_their_own_time(workloads: Path) -> None:
    from tokenomy.sources import load_runs

    for runs, pings in (
        (load_runs([workloads / "claude-code-sniffly"], use_index=False).runs, True),
        (generate("gaps", 0), False),  # it learns to write 1h before the long gaps instead
    ):
        rec = _Recorder()
        result = replay(build_workload(runs), rec)
        assert bool(rec.pings) == pings and result.pings == len(rec.pings)


def test_compaction_reads_and_keeps_the_base_but_writes_no_top() -> None:
    planner = TokenomyPlanner()
    engine = CacheEngine()
    req = parse_request(_body(6, "compact"))
    plan = _step(
        planner, engine, req, PlanContext(run_id="c", turn_index=0, at=0.0, meta={"kind": "compaction"})
    )
    placed = dict(plan.breakpoints)
    assert top_index(req) not in placed
    assert base_index(req) in placed  # the compacted session goes on from its base
    normal = TokenomyPlanner().plan(req, PlanContext(run_id="s", turn_index=0, at=0.0))
    assert top_index(req) in dict(normal.breakpoints)


def test_the_last_request_of_runs_that_stop_at_the_same_length_writes_no_top() -> None:
    rec = _Recorder()
    replay(build_workload(generate("fanout", 0)), rec)
    last_burst = sorted({rid for rid, _ in rec.plans if rid.startswith("fanout-0-3-")})
    for rid in last_burst:
        for i in range(4):
            request, plan = rec.plans[(rid, i)]
            has_top = top_index(request) in dict(plan.breakpoints)
            assert has_top == (i < 3), (rid, i, plan)


def test_base_becomes_1h_once_sessions_come_back_after_it_would_have_lapsed() -> None:
    planner = TokenomyPlanner()
    engine = CacheEngine()
    ttls = []
    for k in range(6):
        at = k * 900.0  # a new session every 15 minutes: a 5m base is gone, a 1h one is not
        req = parse_request(_body(1, f"session {k}"))
        plan = _step(planner, engine, req, PlanContext(run_id=f"s{k}", turn_index=0, at=at))
        ttls.append(dict(plan.breakpoints).get(base_index(req)))
        more = parse_request(_body(2, f"session {k}"))
        _step(planner, engine, more, PlanContext(run_id=f"s{k}", turn_index=1, at=at + 20.0))
    assert ttls[0] == "5m"
    assert ttls[-1] == "1h"


def test_a_long_single_run_never_pings_without_a_long_gap_seen() -> None:
    rec = _Recorder()
    replay(build_workload(generate("long", 1)), rec)
    assert rec.pings == []  # gaps of 3-40 s: no evidence a ping would ever pay


def test_learns_where_in_a_stretch_the_long_gaps_come() -> None:
    """``gaps``: every 5th gap is about 7 minutes. Once two such stretches are seen, the request
    before a long gap (the 5th of its stretch) writes its top at 1h, and the others at 5m."""
    rec = _Recorder()
    replay(build_workload(generate("gaps", 2)), rec)
    tops = {}
    for (_, i), (request, plan) in rec.plans.items():
        tops[i] = dict(plan.breakpoints).get(top_index(request))
    assert all(tops[i] == "1h" for i in range(14, 39, 5)), tops
    assert all(tops[i] == "5m" for i in range(10, 39) if i % 5 != 4), tops
    assert rec.pings == []
