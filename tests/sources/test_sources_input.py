"""Detection, bad input, the incremental index and the parallel scan."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tokenomy.errors import InputError
from tokenomy.sources import _scan, default_claude_dirs, detect, load_runs, load_summaries
from tokenomy.sources._scan import ScanStats, scan_claude_code

SNIFFLY = ("claude-code-sniffly", "sessions")
BIG = "d3ad4cdc-5657-435d-98fa-0035d53e383d.jsonl"
SMALL = "ba79134d-b6e9-4867-af0c-6941038c9e4b.jsonl"


def test_detect_each_source(workloads: Path) -> None:
    assert detect(workloads.joinpath(*SNIFFLY)) == "claude_code"
    assert detect(workloads / "claude-code-spotter" / "short.jsonl") == "claude_code"
    assert (
        detect(workloads / "pydantic-ai-anthropic-cassettes" / "anthropic_api_pairs.jsonl") == "request_log"
    )
    assert detect(workloads / "openhands-multi-swe-bench" / "output.jsonl") == "openhands"
    # a first line longer than the sniff window is judged from its head
    from tokenomy.sources import _sniff

    head = (workloads / "openhands-multi-swe-bench" / "output.jsonl").read_bytes()[:5000]
    assert _sniff(head) == "openhands"


def test_bad_inputs_raise_one_line_errors(tmp_path: Path) -> None:
    cases: list[tuple[Path, str]] = []
    cases.append((tmp_path / "missing", "path not found"))
    empty = tmp_path / "empty"
    empty.mkdir()
    cases.append((empty, "no .jsonl files"))
    unrelated = tmp_path / "unrelated"
    unrelated.mkdir()
    (unrelated / "a.jsonl").write_text(json.dumps({"name": "x", "value": 1}) + "\n")
    (unrelated / "b.jsonl").write_text("[1, 2, 3]\n")
    cases.append((unrelated, "none of the 2 .jsonl files"))
    binary = tmp_path / "blob.jsonl"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10)
    cases.append((binary, "is binary"))
    for path, words in cases:
        with pytest.raises(InputError) as exc:
            load_runs([path], use_index=False)
        assert words in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(InputError, match="unknown source"):
        load_runs([unrelated], source="nope")


def test_oversized_line_is_skipped_and_counted(tmp_path: Path) -> None:
    user = {"type": "user", "sessionId": "s", "message": {"role": "user", "content": "x" * 3_000_000}}
    ok: dict[str, Any] = {
        "type": "assistant",
        "sessionId": "s",
        "requestId": "req_1",
        "timestamp": "2026-01-01T00:00:00Z",
        "message": {
            "id": "msg_1",
            "model": "claude-opus-4-6",
            "usage": {"input_tokens": 1, "output_tokens": 2},
        },
    }
    f = tmp_path / "big.jsonl"
    f.write_text(
        json.dumps(ok)
        + "\n"
        + json.dumps(user)
        + "\n"
        + json.dumps({**ok, "requestId": "req_2", "message": {**ok["message"], "id": "msg_2"}})
        + "\n"
    )
    res = load_runs([f], use_index=False, max_line_bytes=1_000_000)
    assert res.skipped_lines == 1 and sum(len(r.turns) for r in res.runs) == 2
    # a file that is one huge line: nothing could be read, a clear error
    only = tmp_path / "only.jsonl"
    only.write_text(json.dumps(user))
    with pytest.raises(InputError, match="nothing could be read"):
        load_runs([only], use_index=False, max_line_bytes=1_000_000)


def test_default_claude_dirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", f"{tmp_path}/a, {tmp_path}/b")
    assert default_claude_dirs() == [tmp_path / "a" / "projects", tmp_path / "b" / "projects"]
    monkeypatch.delenv("CLAUDE_CONFIG_DIR")
    assert default_claude_dirs() == [Path.home() / ".claude" / "projects"]
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "none"))
    with pytest.raises(InputError, match="no Claude Code history"):
        load_runs([], use_index=False)
    (tmp_path / "none" / "projects" / "p").mkdir(parents=True)
    shutil.copy(
        Path(__file__).resolve().parents[2] / "examples" / "claude-code" / "-Users-chip-dev-ai-music" / SMALL,
        tmp_path / "none" / "projects" / "p",
    )
    assert len(load_runs([], use_index=False).runs) == 1


def _totals(path: Path, db: Path) -> tuple[int, int, int, int, int]:
    res = load_runs([path], index_db=db)
    turns = [t for r in res.runs for t in r.turns if t.usage]
    return (
        len(turns),
        sum(t.usage.input_tokens for t in turns if t.usage),
        sum(t.usage.cache_creation_input_tokens for t in turns if t.usage),
        sum(t.usage.cache_read for t in turns if t.usage),
        sum(t.usage.output_tokens for t in turns if t.usage),
    )


def _scan_one(path: Path, db: Path) -> ScanStats:
    stats = ScanStats()
    scan_claude_code(
        [path],
        index_db=db,
        use_index=True,
        with_requests=True,
        max_line_bytes=1 << 26,
        progress=None,
        stats=stats,
    )
    return stats


def test_incremental_index_reads_only_appended_bytes(workloads: Path, tmp_path: Path) -> None:
    src = workloads.joinpath(*SNIFFLY, BIG)
    lines = src.read_bytes().splitlines(keepends=True)
    # cut inside one response's run of lines, so the append continues a response already seen
    cut = next(
        i for i in range(60, len(lines)) if b'"assistant"' in lines[i] and b'"assistant"' in lines[i + 1]
    )
    f = tmp_path / "proj" / BIG
    f.parent.mkdir()
    f.write_bytes(b"".join(lines[: cut + 1]))
    db = tmp_path / "index.db"
    fresh = tmp_path / "fresh.db"
    assert _scan_one(f, db).bytes_read == f.stat().st_size
    unchanged = _scan_one(f, db)
    assert (unchanged.bytes_read, unchanged.files_reused) == (0, 1)
    before = f.stat().st_size
    with f.open("ab") as fh:
        fh.write(b"".join(lines[cut + 1 :]))
    grown = _scan_one(f, db)
    assert grown.bytes_read == f.stat().st_size - before and grown.full_rescans == 0
    whole = _totals(src, fresh)
    assert _totals(f, db) == whole == (62, 114, 174_552, 3_754_072, whole[4])
    # shrink: the file is read again from the start, and totals follow
    f.write_bytes(b"".join(lines[:cut]))
    shrunk = _scan_one(f, db)
    assert shrunk.full_rescans == 1 and shrunk.bytes_read == f.stat().st_size
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / BIG).write_bytes(b"".join(lines[:cut]))
    assert _totals(f, db) == _totals(tmp_path / "cut" / BIG, tmp_path / "cut.db")
    # same size, different head: read whole again
    data = bytearray(f.read_bytes())
    data[2:12] = b"parentUuiX"
    f.write_bytes(bytes(data))
    assert _scan_one(f, db).full_rescans == 1


def test_index_without_visible_tokens_is_upgraded(workloads: Path, tmp_path: Path) -> None:
    f = workloads.joinpath(*SNIFFLY, SMALL)
    db = tmp_path / "i.db"
    plain = load_runs([f], index_db=db, with_requests=False)
    assert "visible_tokens" not in plain.runs[0].turns[0].meta
    rich = load_runs([f], index_db=db, with_requests=True)
    assert rich.runs[0].turns[-1].meta["visible_tokens"] > 0
    again = load_runs([f], index_db=db, with_requests=False)
    assert again.runs[0].turns[0].usage == plain.runs[0].turns[0].usage


def test_files_in_claude_codes_own_folders_are_not_sniffed(
    workloads: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claude Code's folders hold its transcripts: they are read as such without a sniff (given
    or defaulted to); any other folder is sniffed file by file."""
    import tokenomy.sources as sources

    projects = tmp_path / "claude" / "projects"
    shutil.copytree(workloads.joinpath(*SNIFFLY), projects / "p")
    shutil.copytree(workloads.joinpath(*SNIFFLY), tmp_path / "elsewhere")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    sniffed: list[str] = []
    real = sources._detect_file
    monkeypatch.setattr(sources, "_detect_file", lambda p: sniffed.append(str(p)) or real(p))
    for given in ([], [projects]):
        res = load_runs(given, use_index=False)
        assert sum(len(r.turns) for r in res.runs) == 90 and not sniffed
    res = load_runs([tmp_path / "elsewhere"], use_index=False)
    assert sum(len(r.turns) for r in res.runs) == 90 and len(sniffed) == 4


def test_other_files_in_claude_codes_folders_are_still_told_apart(
    workloads: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read unsniffed, a file the scan finds nothing of Claude Code in is sniffed after all: a
    request log goes to its reader, anything else gets the note or error a sniffed folder gives."""
    projects = tmp_path / "claude" / "projects"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    (projects / "junk").mkdir(parents=True)
    (projects / "junk" / "a.jsonl").write_text('{"name": "x", "value": 1}\n')
    (projects / "junk" / "b.jsonl").write_text('{"name": "y", "value": 2}\n')
    for given in ([], [projects]):
        with pytest.raises(InputError, match="none of the 2 .jsonl files"):
            load_runs(given, use_index=False)
    shutil.rmtree(projects / "junk")
    shutil.copytree(workloads.joinpath(*SNIFFLY), projects / "p")
    log = workloads / "pydantic-ai-anthropic-cassettes" / "anthropic_api_pairs.jsonl"
    shutil.copy(log, projects / "p" / "requests.jsonl")
    (projects / "p" / "blob.jsonl").write_bytes(bytes(range(256)) * 8)
    res = load_runs([], use_index=False)
    assert res.sources["claude_code"] >= 1 and res.sources["request_log"] >= 1
    assert sum(len(r.turns) for r in res.runs if r.source == "claude_code") == 90
    assert res.skipped_lines == 0
    assert any("1 .jsonl file(s) under" in n and "not a known log format" in n for n in res.notes)
    summed = load_summaries([], use_index=False)
    assert summed.skipped_lines == 0 and any("not a known log format" in n for n in summed.notes)


def test_parallel_scan_matches_serial(
    workloads: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = workloads.joinpath(*SNIFFLY)
    serial = _totals(sessions, tmp_path / "a.db")
    monkeypatch.setattr(_scan, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(_scan, "BATCH_BYTES", 1)
    seen: list[tuple[int, int]] = []
    stats = ScanStats()
    states = scan_claude_code(
        sorted(sessions.glob("*.jsonl")),
        index_db=None,
        use_index=False,
        with_requests=False,
        max_line_bytes=1 << 26,
        progress=lambda done, total: seen.append((done, total)),
        workers=2,
        stats=stats,
    )
    assert stats.workers == 2 and len(states) == 4
    assert seen[-1][0] == seen[-1][1] > 0
    assert sum(len(s.resps) for s in states) == serial[0] == 90
