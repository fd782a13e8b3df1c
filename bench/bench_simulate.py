"""How close the online planner gets to the oracle, and what each policy saves, per workload.

    .venv/bin/python bench/bench_simulate.py [--seeds 3]

Real runs first (the shared workloads), then each synthetic shape over a few seeds. Prints, per
workload: tokenomy / oracle (target ≤ 1.02), the same when the planner is told each run's kind
(``ctx.meta["kind"]``, which ``simulate`` does not pass yet: it lets the planner skip a
compaction's top), auto / oracle, and the saving of tokenomy against none and auto; then the
wall time of replaying the whole shared corpus under all seven policies.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from tokenomy.analysis._replay import Workload, build_workload
from tokenomy.analysis.planner import TokenomyPlanner
from tokenomy.analysis.policies import Ping, Plan, PlanContext
from tokenomy.analysis.simulate import SimulationResult, replay, simulate
from tokenomy.analysis.synthetic import SHAPES, generate
from tokenomy.cache import CacheResult
from tokenomy.model import Request, Run
from tokenomy.sources import load_runs

WORKLOADS = Path(__file__).resolve().parent.parent.parent / "shared" / "workloads"
REAL = ("openhands-multi-swe-bench", "claude-code-sniffly", "claude-code-spotter")


class _WithKind:
    """The planner, told each run's kind through ``ctx.meta`` (what a caller that knows it passes)."""

    name = "tokenomy"

    def __init__(self, kinds: dict[str, str]) -> None:
        self.inner = TokenomyPlanner()
        self.kinds = kinds

    def _ctx(self, ctx: PlanContext) -> PlanContext:
        return replace(ctx, meta={**ctx.meta, "kind": self.kinds.get(ctx.run_id, "")})

    def plan(self, request: Request, ctx: PlanContext) -> Plan:
        return self.inner.plan(request, self._ctx(ctx))

    def observe(self, request: Request, ctx: PlanContext, result: CacheResult) -> None:
        self.inner.observe(request, self._ctx(ctx), result)

    def due_pings(self, until: float) -> list[Ping]:
        return self.inner.due_pings(until)


def _row(label: str, runs: list[Run]) -> tuple[float, float, float, SimulationResult]:
    wl: Workload = build_workload(runs)
    result = simulate(wl)
    kinded = replay(wl, _WithKind({r.run_id: r.kind for r in runs})).cost_usd
    c = {n: r.cost_usd for n, r in result.policies.items()}
    t, o, none, auto = c["tokenomy"], c["oracle"], c["none"], c["auto"]
    assert t is not None and o is not None and none is not None and auto is not None and kinded is not None
    rec = result.ratio("as_recorded", "oracle") or 0.0
    print(
        f"{label:34} {result.requests:5d} req  tokenomy/oracle {t / o:6.4f}  with kind {kinded / o:6.4f}  "
        f"auto/oracle {auto / o:6.3f}  as_recorded/oracle {rec:6.3f}  "
        f"saving vs none {1 - t / none:6.1%}  vs auto {1 - t / auto:6.1%}"
    )
    return t, kinded, o, result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    print("real runs (shared workloads)")
    all_runs: list[Run] = []
    for name in REAL:
        runs = list(load_runs([WORKLOADS / name], use_index=False).runs)
        all_runs.extend(runs)
        _row(name, runs)
    _row("whole shared corpus (one cache)", all_runs)
    start = time.perf_counter()
    corpus = simulate(all_runs)
    elapsed = time.perf_counter() - start
    print(f"whole corpus, 7 policies: {elapsed:.2f} s for {corpus.requests} requests")
    print("\nsynthetic shapes (seed printed)")
    for shape in SHAPES:
        st = sk = so = 0.0
        for seed in range(args.seeds):
            t, k, o, _ = _row(f"{shape} seed {seed}", generate(shape, seed))
            st, sk, so = st + t, sk + k, so + o
        print(f"{shape + ' (all seeds)':34}        tokenomy/oracle {st / so:6.4f}  with kind {sk / so:6.4f}")


if __name__ == "__main__":
    main()
