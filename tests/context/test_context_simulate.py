"""The context policies in ``tokenomy simulate``: cache-aware masking beats naive masking on every
long run, and the CLI takes them by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tokenomy.analysis.simulate import simulate
from tokenomy.analysis.synthetic import generate
from tokenomy.cli import cli
from tokenomy.context import SIMULATE_TRANSFORMS


def _long_runs(workloads: Path) -> list[tuple[str, list]]:  # type: ignore[type-arg]
    from tokenomy.sources import load_runs

    runs = load_runs([workloads / "openhands-multi-swe-bench"], use_index=False).runs
    return [(r.run_id, [r]) for r in runs] + [(f"long-{s}", generate("long", s)) for s in (0, 1)]


def test_cache_aware_masking_beats_naive_masking_on_every_long_run(workloads: Path) -> None:
    for name, runs in _long_runs(workloads):
        res = simulate(runs, ["tokenomy", "mask", "mask_naive"], transforms=SIMULATE_TRANSFORMS)
        aware, naive, caching = (res.policies[n].cost_usd for n in ("mask", "mask_naive", "tokenomy"))
        assert aware is not None and naive is not None and caching is not None
        assert aware < naive, f"{name}: cache-aware {aware} >= naive {naive}"
        assert aware <= caching * 1.001, (
            f"{name}: cache-aware masking {aware} costs more than caching {caching}"
        )


def test_cli_takes_context_policies_by_name() -> None:
    res = CliRunner().invoke(
        cli, ["simulate", "--synthetic", "gaps", "--json", "--policy", "tokenomy,mask", "--policy", "compact"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert list(data["policies"]) == ["none", "tokenomy", "oracle", "mask", "compact"]
    assert all(v["cost_usd"] is not None for v in data["policies"].values())


def test_unknown_policy_is_one_line() -> None:
    from tokenomy.cli import main

    with pytest.raises(SystemExit) as e:
        main(["simulate", "--synthetic", "long", "--policy", "mask,nope"])
    assert e.value.code == 2


def test_usage_only_runs_pass_through_unchanged(workloads: Path) -> None:
    from tokenomy.sources import load_runs

    runs = load_runs([workloads / "claude-code-sniffly"], use_index=False).runs
    res = simulate(runs, ["tokenomy", *SIMULATE_TRANSFORMS], transforms=SIMULATE_TRANSFORMS)
    base = res.policies["tokenomy"].cost_usd
    for name in SIMULATE_TRANSFORMS:
        assert res.policies[name].cost_usd == pytest.approx(base, rel=1e-12)
