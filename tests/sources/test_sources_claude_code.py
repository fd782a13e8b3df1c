"""Claude Code transcripts: exact deduplicated totals, v1 and v2 shapes, sub-agents, edge lines."""

from __future__ import annotations

import json
import shutil
from datetime import UTC
from pathlib import Path
from typing import Any

from tokenomy.model import Run, Usage
from tokenomy.sources import load_runs

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SPOTTER_SESSION = "ae4a77f8-aedd-4bc1-888f-c94edc91af04"


def _total(runs: list[Run]) -> tuple[int, Usage]:
    total = Usage()
    n = 0
    for r in runs:
        for t in r.turns:
            assert t.usage is not None
            total = total + t.usage
            n += 1
    return n, total


def test_sniffly_totals_are_deduplicated_exactly(workloads: Path) -> None:
    res = load_runs([workloads / "claude-code-sniffly" / "sessions"], use_index=False)
    n, u = _total(res.runs)
    assert (n, u.input_tokens, u.cache_creation_input_tokens, u.cache_read, u.output_tokens) == (
        90,
        293,
        206_624,
        4_302_385,
        19_313,
    )
    # the peer's expected file sums every line: 22% more cache reads than were billed
    peer = json.loads(
        (workloads / "claude-code-sniffly" / "peer_expected" / "baseline_results.json").read_text()
    )
    assert peer["total_tokens"]["cache_read"] == 5_238_726
    assert round(peer["total_tokens"]["cache_read"] / u.cache_read - 1, 2) == 0.22
    assert res.skipped_lines == 0
    assert res.files == 4  # the summary-only file is read, and adds nothing
    assert res.sources == {"claude_code": 3}
    assert all(r.meta["version"] == "1.0.17" and r.project == "/Users/chip/dev/ai-music" for r in res.runs)
    assert any("lower bounds" in note for note in res.notes)


def test_spotter_long_session_facts(workloads: Path) -> None:
    base = workloads / "claude-code-spotter"
    res = load_runs([base / f"{SPOTTER_SESSION}.jsonl", base / SPOTTER_SESSION], use_index=False)
    by_kind = {r.kind: r for r in res.runs}
    main = by_kind["session"]
    assert main.run_id == SPOTTER_SESSION
    n, u = _total([main])
    assert (n, u.input_tokens, u.output_tokens, u.cache_creation_input_tokens, u.cache_read) == (
        217,
        242,
        49_467,
        237_121,
        16_553_628,
    )
    models = [t.model for t in main.turns]
    assert models[:5] == ["claude-opus-4-6"] * 5
    switch = main.turns[5]
    assert switch.model.startswith("claude-haiku-4-5")
    assert switch.usage is not None and switch.usage.cache_read == 0 and switch.usage.cache_write_5m == 39_413
    compacted = [i for i, t in enumerate(main.turns) if t.compaction_before]
    assert len(compacted) == 1
    after = main.turns[compacted[0]]
    assert after.model == "claude-opus-4-6" and after.usage is not None and after.usage.cache_read == 21_448
    assert main.meta["version"] == "2.1.39" and main.meta["git_branch"] == "spotter-4te"
    assert all(t.started_at is not None for t in main.turns)
    assert [t.started_at for t in main.turns] == sorted(t.started_at or 0 for t in main.turns)
    # sub-agent and compaction files are runs of their own, linked to the session
    sub, comp = by_kind["subagent"], by_kind["compaction"]
    assert sub.parent_id == comp.parent_id == SPOTTER_SESSION
    assert len(sub.turns) == 3 and len(comp.turns) == 1 and comp.turns[0].is_compaction
    # visible-token estimates grow within a run and restart after the compaction
    vis = [t.meta["visible_tokens"] for t in main.turns]
    assert vis[1] >= vis[0] and vis[compacted[0]] < vis[compacted[0] - 1]


def _line(**kw: Any) -> str:
    return json.dumps(kw)


def _assistant(mid: str, rid: str, out: int, *, ts: str = "2025-06-01T10:00:00Z", **extra: Any) -> str:
    usage = {
        "input_tokens": 3,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 1000,
        "output_tokens": out,
    }
    msg: dict[str, Any] = {
        "id": mid,
        "model": "claude-sonnet-4-5",
        "role": "assistant",
        "content": [{"type": "text", "text": "hi"}],
    }
    msg.update(extra.pop("message", {}))
    msg["usage"] = usage
    return _line(
        type="assistant", sessionId="s1", version="2.1.0", timestamp=ts, requestId=rid, message=msg, **extra
    )


def test_dedupe_keeps_max_output_and_marks_lower_bounds(tmp_path: Path) -> None:
    f = tmp_path / "s1.jsonl"
    lines = [
        _line(
            type="user",
            sessionId="s1",
            timestamp="2025-06-01T09:59:59Z",
            message={"role": "user", "content": "go"},
        ),
        _assistant("msg_a", "req_a", 5),
        _assistant("msg_a", "req_a", 120),
        _assistant("msg_a", "req_a", 7),
        _assistant("msg_b", "req_b", 9, ts="2025-06-01T10:01:00Z"),
        _assistant("msg_b", "req_b", 9, ts="2025-06-01T10:01:01Z"),
        _assistant("msg_c", "req_c", 40, ts="2025-06-01T10:02:00Z", message={"stop_reason": "end_turn"}),
    ]
    f.write_text("\n".join(lines) + "\n")
    res = load_runs([f], use_index=False)
    (run,) = res.runs
    assert [t.usage.output_tokens for t in run.turns if t.usage] == [120, 9, 40]
    assert [t.quality["output"] for t in run.turns] == ["exact", "lower_bound", "exact"]
    assert run.turns[1].quality["input"] == "lower_bound"
    assert all(t.quality["cache_read"] == "exact" for t in run.turns)
    assert run.turns[0].request_id == "req_a" and run.turns[0].message_id == "msg_a"
    assert run.turns[0].started_at == 1748772000.0


def test_corrupt_truncated_synthetic_and_compact_lines(tmp_path: Path) -> None:
    f = tmp_path / "s2.jsonl"
    lines = [
        _assistant("msg_a", "req_a", 10),
        "{not json",
        '{"type": "assistant", "message": "a string where an object belongs"}',
        _line(type="system", subtype="compact_boundary", sessionId="s1", timestamp="2025-06-01T10:00:30Z"),
        _line(
            type="user", isCompactSummary=True, sessionId="s1", message={"role": "user", "content": "summary"}
        ),
        _assistant("msg_syn", "", 0, message={"model": "<synthetic>"}),
        _assistant("msg_b", "req_b", 11, ts="2025-06-01T10:01:00Z"),
        _line(type="summary", summary="A title", leafUuid="x"),
    ]
    f.write_text("\n".join(lines) + "\n" + _assistant("msg_c", "req_c", 1)[:40])  # truncated last write
    res = load_runs([f], use_index=False)
    (run,) = res.runs
    assert len(run.turns) == 2
    assert [t.compaction_before for t in run.turns] == [False, True]
    assert run.title == "A title"
    assert res.skipped_lines == 3
    assert any("<synthetic>" in n for n in res.notes)


def test_v1_sidechain_lines_become_a_linked_run(tmp_path: Path) -> None:
    f = tmp_path / "s3.jsonl"
    f.write_text(
        "\n".join(
            [
                _assistant("msg_a", "req_a", 10),
                _assistant("msg_s", "req_s", 12, ts="2025-06-01T10:00:05Z", isSidechain=True),
            ]
        )
        + "\n"
    )
    res = load_runs([f], use_index=False)
    main, side = sorted(res.runs, key=lambda r: r.kind != "session")
    assert main.kind == "session" and side.kind == "subagent" and side.parent_id == main.run_id
    assert len(main.turns) == len(side.turns) == 1


def test_summary_only_file_adds_no_runs(workloads: Path, tmp_path: Path) -> None:
    src = workloads / "claude-code-sniffly" / "sessions" / "ff71dbed-a4f2-4284-a4fc-fe2fb90de929.jsonl"
    res = load_runs([src], use_index=False)
    assert res.runs == [] and res.skipped_lines == 0 and res.files == 1


def test_response_repeated_in_a_resumed_session_counts_once(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(_assistant("msg_a", "req_a", 10) + "\n")
    (tmp_path / "b.jsonl").write_text(
        _assistant("msg_a", "req_a", 30)
        + "\n"
        + _assistant("msg_b", "req_b", 5, ts="2025-06-02T10:00:00Z")
        + "\n"
    )
    res = load_runs([tmp_path], use_index=False)
    n, u = _total(res.runs)
    assert n == 2 and u.output_tokens == 35
    assert any("more than one file" in note for note in res.notes)


def test_since_until_filter_turns(workloads: Path) -> None:
    from datetime import datetime

    base = workloads / "claude-code-spotter" / f"{SPOTTER_SESSION}.jsonl"
    res = load_runs(
        [base],
        use_index=False,
        since=datetime(2026, 2, 12, 14, 13, tzinfo=UTC),
        until=datetime(2026, 2, 12, 14, 20, tzinfo=UTC),
    )
    (run,) = res.runs
    assert 0 < len(run.turns) < 217
    assert all(t.started_at is not None and 1770905580 <= t.started_at < 1770906000 for t in run.turns)


def test_examples_load(tmp_path: Path) -> None:
    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copy)
    res = load_runs([copy], index_db=tmp_path / "idx.db")
    assert res.sources == {"claude_code": 5, "request_log": 12, "openhands": 1}
    assert res.skipped_lines == 0
    starts = [r.started_at for r in res.runs if r.started_at is not None]
    assert starts == sorted(starts)
