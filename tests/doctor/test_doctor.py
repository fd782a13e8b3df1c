"""The doctor on real logs (Claude Code usage-only), its CLI, the live variant and the diff rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tokenomy.analysis import LiveDoctor, diagnose, diagnose_run
from tokenomy.analysis._doctor_diff import classify_text_change
from tokenomy.blocks import parse_request
from tokenomy.cli import cli
from tokenomy.model import Run, Turn, Usage

from ._mutations import WORKLOADS

SPOTTER = WORKLOADS / "claude-code-spotter" / "ae4a77f8-aedd-4bc1-888f-c94edc91af04.jsonl"


@pytest.fixture(scope="module")
def spotter_run() -> Run:
    from tokenomy.sources import load_runs

    runs = load_runs([SPOTTER], use_index=False).runs
    return next(r for r in runs if r.run_id.startswith("ae4a77f8"))


def test_spotter_finds_model_switch_and_compaction_only(spotter_run: Run) -> None:
    diag = diagnose_run(spotter_run)
    assert diag.evidence == "usage_only"
    by_cause = {m.cause: m for m in diag.misses}
    switch = by_cause["model_changed"]
    assert spotter_run.turns[switch.request_index - 1].model.startswith("claude-haiku-4-5")
    assert spotter_run.turns[switch.request_index - 2].model == "claude-opus-4-6"
    assert 38_000 <= switch.tokens_rewritten <= 40_000
    assert switch.usd_lost is not None and switch.usd_lost > 0
    assert "usage-only" in switch.detail
    compaction = by_cause["compaction"]
    assert spotter_run.turns[compaction.request_index - 1].compaction_before
    assert compaction.tokens_rewritten > 20_000
    assert not [m for m in diag.misses if m.cause == "prefix_changed"]
    assert sorted(m.cause for m in diag.misses) == ["compaction", "model_changed"]


def test_json_shape_is_exact() -> None:
    result = CliRunner().invoke(cli, ["doctor", str(SPOTTER), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"runs", "totals"}
    assert set(data["totals"]) == {"usd_lost", "by_cause"}
    run = next(r for r in data["runs"] if r["run_id"].startswith("ae4a77f8"))
    assert set(run) == {"run_id", "requests", "misses"}
    assert run["requests"] == 217
    keys = {
        "request_index",
        "request_id",
        "cause",
        "tokens_rewritten",
        "usd_lost",
        "location",
        "detail",
        "fix",
    }
    assert run["misses"] and all(set(m) == keys for m in run["misses"])
    assert {m["cause"] for m in run["misses"]} == {"model_changed", "compaction"}
    assert data["totals"]["usd_lost"] == pytest.approx(sum(data["totals"]["by_cause"].values()), abs=1e-5)


def test_ranked_list_and_run_view_read_plainly() -> None:
    runner = CliRunner()
    ranked = runner.invoke(cli, ["doctor", str(SPOTTER)], env={"COLUMNS": "160"})
    assert ranked.exit_code == 0, ranked.output
    assert "compaction" in ranked.output and "model_changed" in ranked.output
    assert ranked.output.index("compaction") < ranked.output.index("model_changed")  # costliest first
    assert "stay on one model" in ranked.output
    one = runner.invoke(cli, ["doctor", str(SPOTTER), "--run", "ae4a77f8"], env={"COLUMNS": "160"})
    assert one.exit_code == 0, one.output
    assert "MISS model_changed" in one.output and "fix:" in one.output


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    from tokenomy.cli import main

    missing = tmp_path / "nope.jsonl"
    with pytest.raises(SystemExit) as exit_info:
        main(["doctor", str(missing)])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["doctor", str(SPOTTER), "--run", "no-such-run"])
    assert exit_info.value.code == 2


def _body(system: str, n_msgs: int) -> dict[str, object]:
    text = (WORKLOADS / "openhands-multi-swe-bench" / "README.md").read_text(encoding="utf-8")
    msgs = []
    for i in range(n_msgs):
        role = "user" if i % 2 == 0 else "assistant"
        msgs.append({"role": role, "content": text[i * 300 : (i + 1) * 300]})
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "system": system + "\n" + text,
        "messages": msgs,
        "cache_control": {"type": "ephemeral"},
    }


def test_live_doctor_matches_batch_and_stays_bounded() -> None:
    from tokenomy.analysis import DoctorOptions
    from tokenomy.cache import CacheEngine

    engine = CacheEngine()
    turns = []
    for i in range(1, 6):
        req = parse_request(_body(f"Request counter: {i if i >= 3 else 1}", 2 * i + 1))
        at = 1000.0 + 10 * i
        usage = engine.process(req, at=at).usage
        turns.append(Turn(model=req.model, usage=usage, request=req, started_at=at, request_id=f"r{i}"))
    batch = diagnose_run(Run(run_id="a", turns=tuple(turns)))
    assert [(m.request_index, m.kind) for m in batch.misses] == [
        (3, "counter"),
        (4, "counter"),
        (5, "counter"),
    ]
    live = LiveDoctor(DoctorOptions(max_live_runs=2))
    got = [live.feed(t, run_id="a") for t in turns]
    assert [m.request_index if m else None for m in got] == [None, None, 3, 4, 5]
    for k in range(5):
        live.feed(turns[0], run_id=f"other{k}")
    assert len(live) == 2


def test_report_totals_rank_causes() -> None:
    a = Run(
        run_id="u",
        turns=(
            Turn(model="claude-sonnet-4-5", usage=Usage(cache_write_5m=5000), started_at=0.0),
            Turn(model="claude-sonnet-4-5", usage=Usage(cache_write_5m=5100), started_at=400.0),
            Turn(
                model="claude-sonnet-4-5", usage=Usage(cache_read=5100, cache_write_5m=10), started_at=410.0
            ),
        ),
    )
    report = diagnose([a])
    assert [c.cause for c in report.causes] == ["ttl_expired"]
    assert report.runs[0].misses[0].tokens_rewritten == 5100
    assert "1h TTL" in report.runs[0].misses[0].fix


def test_unknown_price_is_none_not_zero() -> None:
    run = Run(
        run_id="x",
        turns=(
            Turn(model="gpt-something", usage=Usage(cache_write_5m=5000), started_at=0.0),
            Turn(model="gpt-something", usage=Usage(cache_write_5m=5000), started_at=5.0),
        ),
    )
    miss = diagnose_run(run).misses[0]
    assert miss.usd_lost is None and miss.to_json()["usd_lost"] is None


@pytest.mark.parametrize(
    ("a", "b", "kind"),
    [
        ("at 2026-02-12T14:12:01Z go", "at 2026-02-12T14:13:08Z go", "timestamp"),
        (
            "session 3f2b6c1e-8a9d-4e2f-9b1a-0c5d7e8f9a0b x",
            "session 9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d x",
            "uuid_or_random_id",
        ),
        ("id toolu_01AbCdEf23GhIj45 y", "id toolu_01ZyXwVu98TsRq76 y", "uuid_or_random_id"),
        ("turn 3 of the task", "turn 4 of the task", "counter"),
        ("a b\nc", "a  b\n\nc", "whitespace"),
        ("the cat sat", "the dog sat", "content_edit"),
    ],
)
def test_text_change_kinds(a: str, b: str, kind: str) -> None:
    from tokenomy.analysis._doctor_diff import _text_change

    assert _text_change(a, b, ("system", 0), 0).kind == kind
    assert classify_text_change(a, a + " ", "", "") == "whitespace"


def test_usage_only_remembers_the_ttl_of_the_last_write() -> None:
    """A turn that only read a 1h entry must not make a 10-minute gap look like a 5m expiry."""
    from tokenomy.analysis.doctor import diagnose_run
    from tokenomy.model import Run, Turn, Usage

    def turn(at: float, **u: int) -> Turn:
        return Turn(model="claude-sonnet-4-5", started_at=at, usage=Usage(**u))

    run = Run(
        run_id="r",
        turns=(
            turn(0, cache_write_1h=20_000, input_tokens=10, output_tokens=50),
            turn(60, cache_read=20_000, cache_write_5m=0, input_tokens=10, output_tokens=50),
            turn(60 + 600, cache_read=5_000, cache_write_1h=15_500, input_tokens=10, output_tokens=50),
        ),
    )
    miss = diagnose_run(run).misses
    assert miss and all(m.cause != "ttl_expired" for m in miss)
