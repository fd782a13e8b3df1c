"""The report memo: an unchanged tree is answered from the ledger, any change computes again."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import tokenomy.cli._reporting as reporting
import tokenomy.cli.report as cli_report
from tokenomy.cli import cli
from tokenomy.report.memo import KEEP, ReportMemo, memo_key, tree_fingerprint


def _json(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["report", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out: dict[str, Any] = json.loads(result.stdout)
    return out


@pytest.fixture
def tree(workloads: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "projects"
    shutil.copytree(workloads / "claude-code-sniffly" / "sessions", dest / "p")
    return dest


@pytest.fixture
def computes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the reports actually computed (not served from the memo)."""
    calls: list[int] = []
    real = reporting._compute

    def counted(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        real(*args, **kwargs)

    monkeypatch.setattr(reporting, "_compute", counted)
    return calls


def test_unchanged_tree_is_served_from_the_memo(tree: Path, tmp_path: Path, computes: list[int]) -> None:
    db = str(tmp_path / "ledger.db")
    first = _json(str(tree), "--db", db)
    assert _json(str(tree), "--db", db) == first
    assert len(computes) == 1
    assert first == _json(str(tree), "--no-index")  # the memo says what a full read says


def test_an_appended_line_computes_again(tree: Path, tmp_path: Path, computes: list[int]) -> None:
    db = str(tmp_path / "ledger.db")
    before = _json(str(tree), "--db", db)
    session = sorted(tree.rglob("*.jsonl"))[0]
    line = next(x for x in session.read_text(encoding="utf-8").splitlines() if '"type":"assistant"' in x)
    rec = json.loads(line)
    rec["message"]["id"] = "msg_memo_test"
    rec["requestId"] = "req_memo_test"
    with session.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec) + "\n")
    after = _json(str(tree), "--db", db)
    assert len(computes) == 2
    assert after["totals"]["requests"] == before["totals"]["requests"] + 1
    assert after == _json(str(tree), "--no-index")


def test_options_and_new_files_have_their_own_entries(
    tree: Path, tmp_path: Path, computes: list[int]
) -> None:
    db = str(tmp_path / "ledger.db")
    by_session = _json(str(tree), "--db", db)
    by_day = _json(str(tree), "--db", db, "--by", "day")
    assert by_day["group_by"] == "day" and by_session["group_by"] == "session"
    assert _json(str(tree), "--db", db, "--by", "day") == by_day
    assert len(computes) == 2
    extra = tree / "q" / "new.jsonl"
    extra.parent.mkdir()
    shutil.copy(sorted(tree.rglob("*.jsonl"))[0], extra)
    _json(str(tree), "--db", db)
    assert len(computes) == 3


def test_no_index_and_html_never_use_the_memo(tree: Path, tmp_path: Path, computes: list[int]) -> None:
    db = str(tmp_path / "ledger.db")
    _json(str(tree), "--no-index", "--db", db)
    _json(str(tree), "--no-index", "--db", db)
    assert len(computes) == 2


def test_fingerprint_follows_stats_and_refuses_what_it_cannot_trust(tree: Path, tmp_path: Path) -> None:
    fp = tree_fingerprint([tree])
    assert fp is not None and fp == tree_fingerprint([str(tree)])
    assert tree_fingerprint([tmp_path / "missing"]) is None
    ledger = tmp_path / "ledger.db"
    ledger.write_bytes(b"SQLite format 3\x00")
    assert tree_fingerprint([ledger]) is None  # a database changes under a gateway: never memoised
    f = sorted(tree.rglob("*.jsonl"))[0]
    f.write_bytes(f.read_bytes() + b"\n")
    assert tree_fingerprint([tree]) != fp


def test_memo_keeps_a_bounded_number_of_reports(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    for i in range(KEEP + 5):
        entry = ReportMemo(db, memo_key([("i", i)]), b"fp")
        entry.put(f"out {i}")
        entry.close()
    memo = ReportMemo(db, memo_key([("i", KEEP + 4)]), b"fp")
    other = ReportMemo(db, memo_key([("i", KEEP + 4)]), b"other")
    try:
        assert memo.conn.execute("SELECT COUNT(*) FROM report_memo").fetchone()[0] == KEEP
        assert memo.get() == f"out {KEEP + 4}"
        assert other.get() is None
    finally:
        memo.close()
        other.close()


@pytest.fixture
def tree_with_note(tree: Path) -> Path:
    (tree / "p" / "unrelated.jsonl").write_text('{"foo": 1}\n', encoding="utf-8")  # yields a note
    return tree


def _run(*args: str) -> str:
    result = CliRunner().invoke(cli, ["report", *args, "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def test_the_same_folder_spelled_another_way_gets_its_own_notes(
    tree_with_note: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notes name the folder as it was typed: another spelling is its own memo entry."""
    db = str(tmp_path / "ledger.db")
    tree = tree_with_note
    monkeypatch.chdir(tree.parent)
    _run("projects", "--db", db)  # memoised with "under projects"
    served = json.loads(_run(str(tree), "--db", db))
    fresh = json.loads(_run(str(tree), "--no-index"))
    assert served["notes"] == fresh["notes"]


def test_a_memo_row_stored_as_text_means_computing_not_a_traceback(tree: Path, tmp_path: Path) -> None:
    """A TEXT value (a hand-edited or foreign ledger) is read as it is, never a traceback."""
    db = tmp_path / "ledger.db"
    first = _run(str(tree), "--db", str(db))
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE report_memo SET output = CAST(output AS TEXT)")
    assert _run(str(tree), "--db", str(db)) == first


# --- the console script's quick path (tokenomy.console) -----------------------------------------


class _Exited(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _console(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Runs the console script in this process (``os._exit`` raised instead); its stdout."""
    import os
    import sys

    from tokenomy import console

    def exit_(code: int) -> None:
        raise _Exited(code)

    monkeypatch.setattr(os, "_exit", exit_)
    monkeypatch.setattr(sys, "argv", ["tokenomy", *args])
    capsys.readouterr()
    with pytest.raises(_Exited) as e:
        console.run()
    assert e.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["report", "p", "--json"], (("p",), "session", "auto", None)),
        (["report", "--json", "a", "b", "--by", "day"], (("a", "b"), "day", "auto", None)),
        (
            ["report", "p", "--json", "--by=model", "--source=claude-code", "--db", "x.db"],
            (("p",), "model", "claude-code", "x.db"),
        ),
        (["report", "--json"], ((), "session", "auto", None)),
    ],
)
def test_quick_path_reads_plain_report_json_command_lines(
    argv: list[str], expected: tuple[object, ...]
) -> None:
    from tokenomy.console import quick_report_args

    args = quick_report_args(argv)
    assert args is not None
    assert (args["paths"], args["by"], args["source"], args["db"]) == expected
    assert (args["since"], args["until"], args["run_id"]) == (None, None, None)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["report", "p"],  # tables
        ["--debug", "report", "p", "--json"],
        ["report", "p", "--json", "--json"],
        ["report", "p", "--json", "--since", "2025-01-01"],
        ["report", "p", "--json", "--run", "abc"],
        ["report", "p", "--json", "--html", "x.html"],
        ["report", "p", "--json", "--no-index"],
        ["report", "p", "--json", "--by", "day", "--by", "model"],
        ["report", "p", "--json", "--by"],
        ["report", "p", "--json", "--by", "--source", "auto"],
        ["report", "p", "--json", "--db="],
        ["report", "--json", "--db", "ledger.db"],  # the gateway's ledger: never memoised
        ["report", "-", "--json"],
        ["report", "--", "p", "--json"],
        ["report", "p", "--json", "-h"],
        ["doctor", "p", "--json"],
    ],
)
def test_quick_path_leaves_every_other_command_line_to_click(argv: list[str]) -> None:
    from tokenomy.console import quick_report_args

    assert quick_report_args(argv) is None


def test_report_sources_are_the_readers_own() -> None:
    from tokenomy import sources
    from tokenomy.cli._reporting import SOURCES

    assert SOURCES == ("auto", *sources.SOURCES)


def test_report_defaults_are_the_commands_own() -> None:
    """The quick path keys a report as the command does only if both use the same defaults."""
    from tokenomy.report.options import REPORT_DEFAULTS

    defaults = {p.name: p.default for p in cli_report.report.params}
    assert {k: defaults[k] for k in REPORT_DEFAULTS} == REPORT_DEFAULTS


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the memo's walks of the tree (its fingerprints)."""
    import tokenomy.report.memo as memo_mod

    calls: list[int] = []
    real = memo_mod.tree_fingerprint

    def counted(roots: Any, *args: Any) -> bytes | None:
        calls.append(1)
        return real(roots, *args)

    monkeypatch.setattr(memo_mod, "tree_fingerprint", counted)
    return calls


def test_console_serves_the_memo_and_a_miss_walks_the_tree_once(
    tree: Path,
    tmp_path: Path,
    computes: list[int],
    walks: list[int],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import tokenomy.report.memo as memo_mod

    db = str(tmp_path / "ledger.db")
    first = _console(monkeypatch, capsys, "report", str(tree), "--json", "--db", db)
    assert (len(computes), len(walks)) == (1, 1)  # the miss went on with the entry it opened
    assert not memo_mod._PENDING
    again = _console(monkeypatch, capsys, "report", "--db", db, str(tree), "--json")
    assert (len(computes), len(walks)) == (1, 2)  # served before the command line was parsed
    assert again == first
    by_day = _console(monkeypatch, capsys, "report", str(tree), "--json", "--db", db, "--by=day")
    assert len(computes) == 2  # its own entry
    assert json.loads(by_day) == _json(str(tree), "--db", db, "--by", "day")  # which click serves
    assert len(computes) == 2
    assert json.loads(first) == _json(str(tree), "--no-index")


def test_console_leaves_mistakes_to_click(tmp_path: Path) -> None:
    import subprocess
    import sys

    missing = str(tmp_path / "nowhere")
    r = subprocess.run(
        [sys.executable, "-m", "tokenomy", "report", missing, "--json"], capture_output=True, text=True
    )
    assert r.returncode != 0 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "nowhere" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "tokenomy", "report", str(tmp_path), "--json", "--by", "hour"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "hour" in r.stderr and "Traceback" not in r.stderr


def test_console_computes_a_plain_report_once_and_without_click(
    tree: Path,
    tmp_path: Path,
    computes: list[int],
    walks: list[int],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import tokenomy.report.memo as memo_mod
    import tokenomy.sources as sources

    rewalks: list[str] = []
    real_walk = sources.walk_jsonl
    monkeypatch.setattr(sources, "walk_jsonl", lambda root: rewalks.append(str(root)) or real_walk(root))
    monkeypatch.setenv("TOKENOMY_HOME", str(tmp_path / "home"))
    first = _console(monkeypatch, capsys, "report", str(tree), "--json")
    assert (len(computes), len(walks)) == (1, 1)  # computed here, on the entry the miss opened
    assert rewalks == []  # and on the walk its fingerprint made
    assert not memo_mod._PENDING
    assert _console(monkeypatch, capsys, "report", str(tree), "--json") == first
    assert (len(computes), len(walks)) == (1, 2)  # served from the memo
    assert json.loads(first) == _json(str(tree), "--no-index")


def test_a_plain_report_never_imports_click(tree: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = dict(os.environ, TOKENOMY_HOME=str(tmp_path / "home"))
    outs = []
    for _ in range(2):  # computed, then served from the memo
        r = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "tokenomy", "report", str(tree), "--json"],
            capture_output=True,
            text=True,
            env=env,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if "|" in line}
        assert "tokenomy.sources" in imported or outs  # the first run read the tree
        assert "click" not in imported
        outs.append(json.loads(r.stdout))
    assert outs[0] == outs[1] == _json(str(tree), "--no-index")
