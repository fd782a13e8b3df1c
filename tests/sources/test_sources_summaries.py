"""Per-file sums (``load_summaries``): the same report as from turns, without building turns."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tokenomy.report import data as rd
from tokenomy.report.sums import can_sum
from tokenomy.sources import _scan, load_runs, load_summaries
from tokenomy.sources._lines import LineStats, iter_blocks
from tokenomy.sources._summary import LONG_CONTEXT_SPLIT

SNIFFLY = ("claude-code-sniffly", "sessions")
WINDOWS = [(None, None), (dt.date(2026, 2, 12), dt.date(2026, 2, 12)), (dt.date(2025, 6, 1), None)]


def _close(a: Any, b: Any) -> bool:
    """Equal, floats to a millionth (a sum is priced per class, turns one by one)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 2e-6 * max(1.0, abs(a))
    return bool(a == b)


def _both(paths: list[Path], db: Path | None = None) -> tuple[Any, Any]:
    turns = load_runs(paths, use_index=False, with_requests=False)
    sums = load_summaries(paths, index_db=db, use_index=db is not None)
    return turns, sums


@pytest.mark.parametrize("by", rd.GROUPINGS)
def test_sums_report_equals_the_turns_report(workloads: Path, tmp_path: Path, by: rd.GroupBy) -> None:
    paths = [workloads.joinpath(*SNIFFLY), workloads / "claude-code-spotter"]
    turns, sums = _both(paths, tmp_path / "i.db")
    assert (sums.notes, sums.skipped_lines, sums.files) == (turns.notes, turns.skipped_lines, turns.files)
    assert sums.runs == [] and len(sums.sums) == len(turns.runs)
    for since, until in WINDOWS:
        a = rd.report_json(
            rd.build_report(turns.runs, by=by, since=since, until=until, sources=turns.sources)
        )
        b = rd.report_json(rd.build_report(sums.runs, sums=sums.sums, by=by, since=since, until=until))
        assert _close(a, b), (by, since, until)
        assert can_sum(sums.sums, since, until)


def test_mixed_sources_add_up(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    shutil.copytree(examples, tmp_path / "ex")
    turns, sums = _both([tmp_path / "ex"])
    assert sums.runs and sums.sums  # request logs and trajectories stay whole
    data = rd.build_report(sums.runs, sums=sums.sums)
    assert data.sources == turns.sources
    ref = rd.report_json(rd.build_report(turns.runs, sources=turns.sources))
    assert _close(ref, rd.report_json(data))


def test_unchanged_tree_reads_and_sniffs_nothing(
    workloads: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tmp_path / "projects"
    shutil.copytree(workloads / "claude-code-spotter", tree / "p")
    db = tmp_path / "i.db"
    first = load_summaries([tree], index_db=db)

    def boom(*_: Any, **__: Any) -> Any:
        raise AssertionError("an unchanged file was read again")

    import tokenomy.sources as sources

    monkeypatch.setattr(_scan, "scan_job", boom)
    monkeypatch.setattr(sources, "_detect_file", boom)
    again = load_summaries([tree], index_db=db)
    a = rd.report_json(rd.build_report(first.runs, sums=first.sums))
    assert rd.report_json(rd.build_report(again.runs, sums=again.sums)) == a


def test_appended_bytes_match_a_fresh_read(workloads: Path, tmp_path: Path) -> None:
    src = workloads.joinpath(*SNIFFLY) / "ba79134d-b6e9-4867-af0c-6941038c9e4b.jsonl"
    lines = src.read_bytes().splitlines(keepends=True)
    f = tmp_path / "p" / src.name
    f.parent.mkdir()
    f.write_bytes(b"".join(lines[: len(lines) // 2]))
    db = tmp_path / "i.db"
    load_summaries([f], index_db=db)
    with f.open("ab") as fh:
        fh.write(b"".join(lines[len(lines) // 2 :]))
    grown = load_summaries([f], index_db=db)
    fresh = load_summaries([src], use_index=False)
    a, b = (rd.report_json(rd.build_report([], sums=x.sums)) for x in (grown, fresh))
    assert a["totals"] == b["totals"]


def _assistant(mid: str, out: int, ts: str, **usage: int) -> str:
    u = {
        "input_tokens": 3,
        "cache_creation_input_tokens": 10,
        "cache_read_input_tokens": 0,
        "output_tokens": out,
    }
    u.update(usage)
    msg = {"id": mid, "model": "claude-sonnet-4-5", "role": "assistant", "content": [], "usage": u}
    return json.dumps(
        {"type": "assistant", "sessionId": "s", "timestamp": ts, "requestId": "r" + mid, "message": msg}
    )


def test_a_response_in_two_files_counts_once(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(_assistant("m1", 10, "2025-06-01T10:00:00Z") + "\n")
    (tmp_path / "b.jsonl").write_text(
        _assistant("m1", 30, "2025-06-01T10:00:00Z")
        + "\n"
        + _assistant("m2", 5, "2025-06-02T10:00:00Z")
        + "\n"
    )
    (tmp_path / "c.jsonl").write_text(_assistant("m3", 7, "2025-06-03T10:00:00Z") + "\n")
    for db in (None, tmp_path / "i.db", tmp_path / "i.db"):  # cold, indexed, then from the index
        res = load_summaries([tmp_path], index_db=db, use_index=db is not None)
        assert len(res.runs) == 2 and len(res.sums) == 1  # a and b exactly, c as sums
        totals = rd.report_json(rd.build_report(res.runs, sums=res.sums))["totals"]
        assert (totals["requests"], totals["output_tokens"]) == (3, 42)
        assert any("more than one file" in n for n in res.notes)


def test_long_context_requests_are_priced_in_their_own_band(tmp_path: Path) -> None:
    big = LONG_CONTEXT_SPLIT + 1_000
    lines = [
        _assistant("m1", 100, "2025-06-01T10:00:00Z", cache_read_input_tokens=big),
        _assistant("m2", 100, "2025-06-01T10:01:00Z", cache_read_input_tokens=150_000),
        _assistant("m3", 100, "2025-06-01T10:02:00Z", cache_read_input_tokens=150_000),
    ]
    (tmp_path / "s.jsonl").write_text("\n".join(lines) + "\n")
    turns, sums = _both([tmp_path / "s.jsonl"])
    a = rd.report_json(rd.build_report(turns.runs))["totals"]
    b = rd.report_json(rd.build_report([], sums=sums.sums))["totals"]
    assert _close(a, b)
    # the two short requests sum past the split, yet stay at the base rate
    base = rd.report_json(rd.build_report(load_runs([tmp_path], use_index=False).runs))["totals"]
    assert b["cost_usd"] == pytest.approx(base["cost_usd"])


def test_windows_off_the_quarter_hour_fall_back() -> None:
    odd = dt.timezone(dt.timedelta(minutes=7))
    assert can_sum([], dt.date(2025, 6, 1), None)
    assert not can_sum([], dt.date(2025, 6, 1), None, tz=odd)


def test_blocks_cut_around_oversized_lines(tmp_path: Path) -> None:
    f = tmp_path / "x.jsonl"
    f.write_bytes(b'{"a":1}\n' + b"x" * 50 + b'\n{"b":2}\n\n{"c":3}\n' + b"y" * 70 + b"\n" + b'{"d":4}')
    stats = LineStats()
    with f.open("rb") as fh:
        blocks = list(iter_blocks(fh, max_line_bytes=40, chunk_bytes=16, stats=stats))
    text = b"".join(b for _, b in blocks)
    assert text.split() == [b'{"a":1}', b'{"b":2}', b'{"c":3}']
    assert stats.oversized == 2 and stats.tail == b'{"d":4}'
    assert all(f.read_bytes()[off : off + len(b)] == b for off, b in blocks)


def test_bad_lines_in_a_block_are_counted_one_by_one(tmp_path: Path) -> None:
    good = _assistant("m1", 10, "2025-06-01T10:00:00Z")
    f = tmp_path / "s.jsonl"
    f.write_text("\n".join([good, "{oops", "", "   ", good.replace("m1", "m2"), "[1, 2"]) + "\n")
    res = load_summaries([f], use_index=False)
    assert res.skipped_lines == 2
    assert rd.build_report([], sums=res.sums).totals.requests == 2


def test_a_summary_that_does_not_decode_is_rebuilt(workloads: Path, tmp_path: Path) -> None:
    import sqlite3

    src = workloads.joinpath(*SNIFFLY)
    db = tmp_path / "i.db"
    first = rd.report_json(rd.build_report([], sums=load_summaries([src], index_db=db).sums))
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE source_sums SET summary = x'c1'")
    again = rd.report_json(rd.build_report([], sums=load_summaries([src], index_db=db).sums))
    assert again == first


def test_a_damaged_index_row_is_read_again(workloads: Path, tmp_path: Path) -> None:
    import sqlite3

    src = workloads.joinpath(*SNIFFLY)
    db = tmp_path / "i.db"
    first = rd.report_json(rd.build_report([], sums=load_summaries([src], index_db=db).sums))
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE source_sums SET summary = x'c1'")
        conn.execute("UPDATE source_files SET state = x'c1'")
    again = rd.report_json(rd.build_report([], sums=load_summaries([src], index_db=db).sums))
    assert again == first
