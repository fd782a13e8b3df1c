"""How close the online planner gets to the oracle, and what each policy saves, per workload.

    .venv/bin/python bench/bench_simulate.py [--seeds 3]

Real runs first (the shared workloads), then each synthetic shape over a few seeds. Prints, per
workload: tokenomy / oracle (target ≤ 1.02), the saving of tokenomy against none and auto, and
the wall time of replaying the whole shared corpus under all seven policies.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tokenomy.analysis.simulate import simulate
from tokenomy.analysis.synthetic import SHAPES, generate
from tokenomy.sources import load_runs

WORKLOADS = Path(__file__).resolve().parent.parent.parent / "shared" / "workloads"
REAL = ("openhands-multi-swe-bench", "claude-code-sniffly", "claude-code-spotter")


def _row(label: str, result) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    c = {n: r.cost_usd for n, r in result.policies.items()}
    t, o, none, auto = c["tokenomy"], c["oracle"], c["none"], c["auto"]
    rec = result.ratio("as_recorded", "oracle")
    print(
        f"{label:34} {result.requests:5d} req  tokenomy/oracle {t / o:6.4f}  "
        f"auto/oracle {auto / o:6.3f}  as_recorded/oracle {rec:6.3f}  "
        f"saving vs none {1 - t / none:6.1%}  vs auto {1 - t / auto:6.1%}"
    )
    return t, o


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    print("real runs (shared workloads)")
    tot_t = tot_o = 0.0
    all_runs = []
    for name in REAL:
        runs = load_runs([WORKLOADS / name], use_index=False).runs
        all_runs.extend(runs)
        t, o = _row(name, simulate(runs))
        tot_t, tot_o = tot_t + t, tot_o + o
    start = time.perf_counter()
    corpus = simulate(all_runs)
    elapsed = time.perf_counter() - start
    _row("whole shared corpus (one cache)", corpus)
    print(f"whole corpus, 7 policies: {elapsed:.2f} s for {corpus.requests} requests")
    print("\nsynthetic shapes (seed printed)")
    for shape in SHAPES:
        st = so = 0.0
        for seed in range(args.seeds):
            t, o = _row(f"{shape} seed {seed}", simulate(generate(shape, seed)))
            st, so = st + t, so + o
        print(f"{shape + ' (all seeds)':34}        tokenomy/oracle {st / so:6.4f}")


if __name__ == "__main__":
    main()
