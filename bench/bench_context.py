"""What context discipline saves on top of caching, per long run.

    .venv/bin/python bench/bench_context.py [--seeds 3]

Replays each OpenHands run (and the three together, one cache) and the synthetic ``long`` shape
over a few seeds under: caching only (the ``tokenomy`` planner), caching + naive masking (every
turn), caching + cache-aware masking, caching + compaction (summary calls billed on
claude-haiku-4-5) and caching + server-side context editing. Prints each bill and its ratio to
caching only (the baseline of the same run), then whether cache-aware masking beat naive masking
on every run, and the wall time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tokenomy.analysis.simulate import simulate
from tokenomy.analysis.synthetic import generate
from tokenomy.context import SIMULATE_TRANSFORMS
from tokenomy.model import Run
from tokenomy.sources import load_runs

WORKLOADS = Path(__file__).resolve().parent.parent.parent / "shared" / "workloads"
COLUMNS = ("tokenomy", "mask_naive", "mask", "compact", "context_editing")
HEADER = ("caching only", "+ naive mask", "+ cache-aware mask", "+ compaction", "+ context editing")


def _row(label: str, runs: list[Run]) -> bool:
    result = simulate(runs, list(COLUMNS), transforms=SIMULATE_TRANSFORMS)
    costs = {n: result.policies[n].cost_usd for n in COLUMNS}
    base = costs["tokenomy"]
    cells = []
    for n in COLUMNS:
        c = costs[n]
        if c is None or base is None:
            cells.append("unknown")
        elif n == "tokenomy":
            cells.append(f"${c:.4f}")
        else:
            cells.append(f"${c:.4f} ({c / base:.3f}x)")
    print(f"| {label} | {result.requests} | " + " | ".join(cells) + " |")
    aware, naive = costs["mask"], costs["mask_naive"]
    return aware is not None and naive is not None and aware < naive


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    t0 = time.perf_counter()
    print("| run | requests | " + " | ".join(HEADER) + " |")
    print("|---|---:|" + "---:|" * len(HEADER))
    ok = True
    runs = list(load_runs([WORKLOADS / "openhands-multi-swe-bench"], use_index=False).runs)
    for r in runs:
        ok &= _row(f"openhands {r.run_id}", [r])
    ok &= _row("openhands, all 3 (one cache)", runs)
    for seed in range(args.seeds):
        ok &= _row(f"synthetic long, seed {seed}", generate("long", seed))
    print(f"\ncache-aware masking beats naive masking on every run: {ok}")
    print(f"wall time: {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
