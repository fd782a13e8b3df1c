"""Replays through the cache engine: the oracle is the floor, the planner beats the fixed
policies, and the CLI prints what the issue specifies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tokenomy.analysis._replay import build_workload
from tokenomy.analysis.oracle import solve
from tokenomy.analysis.simulate import POLICY_NAMES, simulate
from tokenomy.analysis.synthetic import SHAPES, generate
from tokenomy.cli import cli

EPS = 1e-9
BEATEN_BY_TOKENOMY = ("auto", "system_only", "litellm_injection", "as_recorded")


def _check(result, *, vs_recorded: bool = True) -> None:  # type: ignore[no-untyped-def]
    oracle = result.policies["oracle"].cost_usd
    assert oracle is not None
    for name, r in result.policies.items():
        assert r.cost_usd is not None
        assert oracle <= r.cost_usd + EPS, f"oracle {oracle} > {name} {r.cost_usd}"
    mine = result.policies["tokenomy"].cost_usd
    for name in BEATEN_BY_TOKENOMY:
        if name == "as_recorded" and not vs_recorded:
            continue
        other = result.policies[name].cost_usd
        assert mine <= other + EPS, f"tokenomy {mine} > {name} {other}"


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("seed", [0, 1])
def test_synthetic_shapes_order(shape: str, seed: int) -> None:
    _check(simulate(generate(shape, seed)))


def test_openhands_trajectories(workloads: Path) -> None:
    from tokenomy.sources import load_runs

    runs = load_runs([workloads / "openhands-multi-swe-bench"], use_index=False).runs
    wl = build_workload(runs)
    result = simulate(wl)
    assert result.runs == 3 and result.requests == 105
    _check(result)
    assert result.policies["oracle"].cost_usd == pytest.approx(solve(wl).predicted_usd, rel=1e-9)


@pytest.mark.parametrize("folder", ["claude-code-sniffly", "claude-code-spotter"])
def test_claude_code_sessions(workloads: Path, folder: str) -> None:
    """Usage-only runs: the oracle is the floor of every replayed policy, tokenomy beats the fixed
    ones. ``as_recorded`` is the recorded bill itself (reads from sessions outside the corpus,
    which the rebuilt shapes cannot reproduce), so it is only reported, not ordered."""
    from tokenomy.sources import load_runs

    runs = load_runs([workloads / folder], use_index=False).runs
    result = simulate(runs)
    replayed = {n: r for n, r in result.policies.items() if n != "as_recorded"}
    oracle = result.policies["oracle"].cost_usd
    assert oracle is not None
    assert all(oracle <= (r.cost_usd or 0) + EPS for r in replayed.values())
    mine = result.policies["tokenomy"].cost_usd
    assert mine is not None
    for name in ("auto", "system_only", "litellm_injection"):
        assert mine <= (result.policies[name].cost_usd or 0) + EPS


def test_oracle_prediction_matches_the_engine() -> None:
    """The DP's own bill equals what the engine charges for its plan on a clean workload."""
    wl = build_workload(generate("sessions", 2))
    predicted = solve(wl).predicted_usd
    replayed = simulate(wl, ["oracle"]).policies["oracle"].cost_usd
    assert replayed == pytest.approx(predicted, rel=1e-9)


def test_synthetic_is_reproducible() -> None:
    a = [t.request.blocks[-1].prefix_hash for r in generate("fanout", 5) for t in r.turns if t.request]
    b = [t.request.blocks[-1].prefix_hash for r in generate("fanout", 5) for t in r.turns if t.request]
    c = [t.request.blocks[-1].prefix_hash for r in generate("fanout", 6) for t in r.turns if t.request]
    assert a == b and a != c


def test_model_retarget_scales_tokens_for_a_new_tokenizer() -> None:
    runs = generate("long", 0)
    legacy = build_workload(runs)
    v2 = build_workload(runs, model="claude-opus-4-7")
    a = legacy.steps[-1].request.total_tokens
    b = v2.steps[-1].request.total_tokens
    assert v2.steps[-1].request.model == "claude-opus-4-7"
    assert 1.25 < b / a < 1.35


def test_cli_json_shape() -> None:
    res = CliRunner().invoke(
        cli, ["simulate", "--synthetic", "subagents", "--seed", "3", "--json", "--policy", "auto"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert set(data) == {"runs", "requests", "policies"}
    assert set(data["policies"]) == {"none", "auto", "oracle"}
    for entry in data["policies"].values():
        assert set(entry) == {
            "cost_usd",
            "vs_none",
            "vs_oracle",
            "cache_read_tokens",
            "cache_write_tokens",
            "input_tokens",
        }
    assert data["policies"]["oracle"]["vs_oracle"] == 1.0
    assert "seed 3" in res.stderr


def test_cli_table_and_html(tmp_path: Path) -> None:
    out = tmp_path / "sim.html"
    res = CliRunner().invoke(cli, ["simulate", "--synthetic", "gaps", "--html", str(out)])
    assert res.exit_code == 0, res.output
    for name in POLICY_NAMES:
        assert name in res.stdout
    page = out.read_text()
    assert "<svg" in page and "oracle" in page and "http" not in page.split("<body>")[1]


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    from tokenomy.cli import main

    for argv in (
        ["simulate", str(tmp_path / "missing.jsonl")],
        ["simulate", "--synthetic", "long", "--model", "gpt-nothing"],
        ["simulate", "--synthetic", "long", str(tmp_path)],
    ):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
