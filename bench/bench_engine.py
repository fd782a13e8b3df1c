"""Requests per second through ``CacheEngine.process`` alone, per policy's plans.

    .venv/bin/python bench/bench_engine.py [--requests 20000]

Plans are computed first (for every policy over a synthetic long run plus sessions), so only the
engine is timed. The baseline in the same run is an engine pass with no breakpoints at all
(``none``): the cheapest thing the engine can do, so the ratios show what breakpoints cost.
"""

from __future__ import annotations

import argparse
import time

from tokenomy.analysis._replay import build_workload
from tokenomy.analysis.policies import PlanContext, apply_plan
from tokenomy.analysis.simulate import POLICY_NAMES, make_policy, replay
from tokenomy.analysis.synthetic import generate
from tokenomy.cache import CacheEngine


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20000)
    args = ap.parse_args()
    runs = generate("long", 0) + generate("sessions", 0) + generate("subagents", 0)
    wl = build_workload(runs)
    rates: dict[str, float] = {}
    for name in POLICY_NAMES:
        policy = make_policy(name, wl)
        prepared = []
        for s in wl.steps:  # plan once with the real feedback loop, then time the engine alone
            ctx = PlanContext(run_id=s.run_id, turn_index=s.index, at=s.at, ttft=s.ttft)
            prepared.append((apply_plan(s.request, policy.plan(s.request, ctx)), s.at, s.ttft))
        replay(wl, make_policy(name, wl))  # warm caches (pricing resolution, lru tables)
        span = wl.steps[-1].at - wl.steps[0].at + 3600.0
        n = 0
        rounds = 0
        start = time.perf_counter()
        while n < args.requests:
            engine = CacheEngine()
            offset = rounds * span * 10
            for req, at, ttft in prepared:
                engine.process(req, at=at + offset, ttft=ttft)
            n += len(prepared)
            rounds += 1
        rates[name] = n / (time.perf_counter() - start)
    base = rates["none"]
    for name, r in rates.items():
        print(f"{name:18} {r:12,.0f} req/s   {r / base:5.2f}x of none")


if __name__ == "__main__":
    main()
