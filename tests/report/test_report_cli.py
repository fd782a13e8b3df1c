"""``tokenomy report`` end to end: real transcripts in, exact totals and exact JSON keys out."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tokenomy.cli import cli, main

JSON_KEYS = {
    "requests",
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
    "cost_usd",
    "cache_hit_rate",
}


def _sources_ready() -> bool:
    try:
        from tokenomy.sources import load_runs  # noqa: F401
    except ImportError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _sources_ready(), reason="tokenomy.sources has not landed yet")


def _report(*args: str) -> Any:
    result = CliRunner().invoke(cli, ["report", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _json(*args: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(_report(*args, "--json").stdout)
    return out


@pytest.fixture
def sniffly(workloads: Path) -> Path:
    return workloads / "claude-code-sniffly" / "sessions"


def test_sniffly_totals_are_exact(sniffly: Path) -> None:
    totals = _json(str(sniffly))["totals"]
    assert set(totals) == JSON_KEYS
    assert totals["requests"] == 90
    assert totals["input_tokens"] == 293
    assert totals["cache_creation_input_tokens"] == 206_624
    assert totals["cache_read_input_tokens"] == 4_302_385
    assert totals["output_tokens"] == 19_313
    assert totals["cost_usd"] > 0
    assert totals["cache_hit_rate"] == pytest.approx(4_302_385 / (293 + 206_624 + 4_302_385), abs=1e-6)


def test_sniffly_peer_over_counts_by_not_deduplicating(sniffly: Path) -> None:
    """sniffly's own expected file sums every line of a split response: 22% too many cache reads."""
    peer = json.loads((sniffly.parent / "peer_expected" / "baseline_results.json").read_text())
    ours = _json(str(sniffly))["totals"]
    assert peer["total_tokens"]["cache_read"] == 5_238_726
    assert ours["cache_read_input_tokens"] == 4_302_385
    assert peer["total_tokens"]["cache_read"] / ours["cache_read_input_tokens"] == pytest.approx(
        1.2176, abs=1e-3
    )


@pytest.mark.parametrize("by", ["session", "day", "week", "month", "model", "project"])
def test_json_rows_have_the_exact_keys(sniffly: Path, by: str) -> None:
    out = _json(str(sniffly), "--by", by)
    assert out["rows"]
    for row in out["rows"]:
        assert set(row) == JSON_KEYS | {by}
    assert sum(r["requests"] for r in out["rows"]) == 90
    assert sum(r["cache_read_input_tokens"] for r in out["rows"]) == 4_302_385


def test_session_rows_and_run_detail(sniffly: Path) -> None:
    rows = {r["session"]: r for r in _json(str(sniffly))["rows"]}
    assert rows["d3ad4cdc-5657-435d-98fa-0035d53e383d"]["requests"] == 62
    detail = _json(str(sniffly), "--run", "d3ad4cdc")
    assert detail["run"]["run_id"] == "d3ad4cdc-5657-435d-98fa-0035d53e383d"
    assert detail["totals"]["requests"] == len(detail["rows"]) == 62
    assert detail["totals"]["cache_read_input_tokens"] == 3_754_072
    assert detail["rows"][0]["gap_s"] is None
    assert all(r["gap_s"] >= 0 for r in detail["rows"][1:])


def test_table_output_says_what_is_exact(sniffly: Path) -> None:
    out = _report(str(sniffly)).stdout
    assert "Total" in out and "4,302,385" in out and "206,624" in out
    assert "Lower bounds: uncached input, output" in out
    assert "Exact (as recorded by the API): cache write, cache read." in out
    run = _report(str(sniffly), "--run", "fed8ce56").stdout
    assert "44,544" in run and "Gap" in run


def test_window_filters_by_date(sniffly: Path) -> None:
    assert _json(str(sniffly), "--since", "2025-06-10")["totals"]["requests"] == 4
    assert _json(str(sniffly), "--until", "20250601")["totals"]["requests"] == 0


def _forget_memo(db: Path) -> None:
    """Drop the memoised reports, so the next run reads the incremental index."""
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM report_memo")
    conn.commit()
    conn.close()


def test_second_run_uses_the_index_and_agrees(sniffly: Path, tmp_path: Path) -> None:
    db = tmp_path / "index.db"
    first = _json(str(sniffly), "--db", str(db))
    assert db.exists()
    _forget_memo(db)
    assert _json(str(sniffly), "--db", str(db)) == first
    assert _json(str(sniffly), "--no-index") == first


@pytest.mark.parametrize("by", ["day", "model", "project"])
def test_indexed_sums_agree_for_every_grouping(sniffly: Path, tmp_path: Path, by: str) -> None:
    db = tmp_path / "index.db"
    args = (str(sniffly), "--by", by, "--since", "2025-06-05")
    first = _json(*args, "--db", str(db))
    assert first["totals"]["requests"] > 0 and first["rows"]
    _forget_memo(db)
    assert _json(*args, "--db", str(db)) == first == _json(*args, "--no-index")


def test_html_file(sniffly: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    _report(str(sniffly), "--html", str(page))
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert 'class="bar c-read"' in text and "d3ad4cdc" in text
    assert "http://" not in text and "https://" not in text


def test_default_location_is_claude_config_dir(
    sniffly: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    projects = tmp_path / "claude" / "projects" / "-home-u-music"
    shutil.copytree(sniffly, projects)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    assert _json()["totals"]["requests"] == 90


def _fails(capsys: pytest.CaptureFixture[str], *args: str, usage: bool = False) -> str:
    """Run the real entry point; a user's mistake is one line (click's usage errors: one Error line)."""
    with pytest.raises(SystemExit) as exc:
        main(["report", *args])
    assert exc.value.code not in (0, None)
    err = capsys.readouterr().err.strip()
    assert err and "Traceback" not in err, err
    if usage:
        return err.splitlines()[-1]
    assert "\n" not in err, err
    return err


def test_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _fails(capsys, str(tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails(capsys, str(empty))
    unrelated = tmp_path / "unrelated"
    unrelated.mkdir()
    (unrelated / "a.json").write_text('{"name": "not a log", "items": [1, 2]}\n')
    (unrelated / "b.jsonl").write_text('{"x": 1}\n{"y": 2}\n')
    _fails(capsys, str(unrelated))
    binary = tmp_path / "blob.jsonl"
    binary.write_bytes(bytes(range(256)) * 64)
    _fails(capsys, str(binary))


def test_bad_options_are_one_line(
    capsys: pytest.CaptureFixture[str], sniffly: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert "no run 'nope'" in _fails(capsys, str(sniffly), "--run", "nope")
    assert "YYYY-MM-DD" in _fails(capsys, str(sniffly), "--since", "June", usage=True)
    _fails(capsys, str(sniffly), "--since", "2025-06-10", "--until", "2025-06-01", usage=True)
    _fails(capsys, str(sniffly), "--html", str(tmp_path / "no" / "such" / "dir" / "r.html"))
    bad_db = tmp_path / "not-a.db"
    bad_db.write_bytes(b"this is not an SQLite database, not at all, no" * 4)
    assert "index database" in _fails(capsys, str(sniffly), "--db", str(bad_db))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "nothing-here"))
    assert "no Claude Code history found" in _fails(capsys)
