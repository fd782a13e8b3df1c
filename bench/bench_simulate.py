"""How close the online planner gets to the oracle, and what each policy saves, per workload.

    .venv/bin/python bench/bench_simulate.py [--seeds 3] [--first-seed 0]

Real runs first (the shared workloads, each replayed on its own, then all of them in one cache),
then each synthetic shape over a few seeds. Prints, per workload: tokenomy / oracle (target
≤ 1.02), auto / oracle, as_recorded / oracle and the saving of tokenomy against none and auto.
Then the issue's literal target, one aggregate: total tokenomy cost over every workload (the
three real ones, each on its own, plus every synthetic shape and seed) / total oracle cost, and
the same with the real runs replayed in one shared cache instead. Last, the wall time of
replaying the whole shared corpus under all seven policies. ``simulate`` passes each run's kind
(``ctx.meta["kind"]``) to the planner, so these figures include it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tokenomy.analysis._replay import Workload, build_workload
from tokenomy.analysis.simulate import SimulationResult, simulate
from tokenomy.analysis.synthetic import SHAPES, generate
from tokenomy.model import Run
from tokenomy.sources import load_runs

WORKLOADS = Path(__file__).resolve().parent.parent.parent / "shared" / "workloads"
REAL = ("openhands-multi-swe-bench", "claude-code-sniffly", "claude-code-spotter")


class _Totals:
    """Summed bills of tokenomy, oracle, none and auto over several workloads."""

    def __init__(self) -> None:
        self.cost = dict.fromkeys(("tokenomy", "oracle", "none", "auto"), 0.0)
        self.requests = 0

    def add(self, result: SimulationResult) -> None:
        for name in self.cost:
            c = result.policies[name].cost_usd
            assert c is not None, f"{name}: price unknown"
            self.cost[name] += c
        self.requests += result.requests

    def __iadd__(self, other: _Totals) -> _Totals:
        for name in self.cost:
            self.cost[name] += other.cost[name]
        self.requests += other.requests
        return self

    def line(self, label: str) -> str:
        t, o, none, auto = (self.cost[n] for n in ("tokenomy", "oracle", "none", "auto"))
        return (
            f"{label:40} {self.requests:5d} req  tokenomy/oracle {t / o:6.4f}  auto/oracle {auto / o:6.3f}  "
            f"saving vs none {1 - t / none:6.1%}  vs auto {1 - t / auto:6.1%}  "
            f"(tokenomy ${t:.4f}, oracle ${o:.4f})"
        )


def _row(label: str, runs: list[Run]) -> SimulationResult:
    wl: Workload = build_workload(runs)
    result = simulate(wl)
    c = {n: r.cost_usd for n, r in result.policies.items()}
    t, o, none, auto = c["tokenomy"], c["oracle"], c["none"], c["auto"]
    assert t is not None and o is not None and none is not None and auto is not None
    rec = result.ratio("as_recorded", "oracle") or 0.0
    print(
        f"{label:40} {result.requests:5d} req  tokenomy/oracle {t / o:6.4f}  auto/oracle {auto / o:6.3f}  "
        f"as_recorded/oracle {rec:6.3f}  saving vs none {1 - t / none:6.1%}  vs auto {1 - t / auto:6.1%}"
    )
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0)
    args = ap.parse_args()
    print("real runs (shared workloads)")
    all_runs: list[Run] = []
    real = _Totals()
    for name in REAL:
        runs = list(load_runs([WORKLOADS / name], use_index=False).runs)
        all_runs.extend(runs)
        real.add(_row(name, runs))
    one_cache = _Totals()
    one_cache.add(_row("whole shared corpus (one cache)", all_runs))
    start = time.perf_counter()
    corpus = simulate(all_runs)
    elapsed = time.perf_counter() - start
    print(f"whole corpus, 7 policies: {elapsed:.2f} s for {corpus.requests} requests")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    print(f"\nsynthetic shapes (seeds {', '.join(map(str, seeds))})")
    synthetic = _Totals()
    for shape in SHAPES:
        shape_total = _Totals()
        for seed in seeds:
            shape_total.add(_row(f"{shape} seed {seed}", generate(shape, seed)))
        print(shape_total.line(f"{shape} (all seeds)"))
        synthetic += shape_total
    print("\naggregate: total cost over every workload / total oracle cost (the issue's target: ≤ 1.02)")
    every = _Totals()
    every += real
    every += synthetic
    print(every.line("real (each on its own) + synthetic"))
    alt = _Totals()
    alt += one_cache
    alt += synthetic
    print(alt.line("real (one cache) + synthetic"))


if __name__ == "__main__":
    main()
