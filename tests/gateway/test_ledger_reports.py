"""``tokenomy report --db`` and ``tokenomy doctor --db`` read what the gateway recorded."""

from __future__ import annotations

import json
from pathlib import Path

import anthropic
from click.testing import CliRunner
from gw_support import stack

from tokenomy.cli import cli

MODEL = "claude-sonnet-4-6"
SYSTEM = "You are a careful reviewer. " * 300


def _system(text: str) -> list[dict[str, object]]:
    return [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]


def test_report_and_doctor_read_the_gateway_ledger(tmp_path: Path) -> None:
    with stack(tmp_path) as s:
        c = anthropic.Anthropic(base_url=s.url, api_key="sk-ledger-test", max_retries=0)
        history: list[dict[str, object]] = []
        for i, system in enumerate(
            [SYSTEM, SYSTEM, SYSTEM + " Today is day 3."]
        ):  # the last one edits system
            history.append({"role": "user", "content": f"question {i}"})
            msg = c.messages.create(model=MODEL, max_tokens=30, system=_system(system), messages=history)
            history.append({"role": "assistant", "content": msg.content[0].text})  # type: ignore[union-attr]
    runner = CliRunner()
    res = runner.invoke(cli, ["report", "--db", str(s.db), "--json"])
    assert res.exit_code == 0, res.output
    totals = json.loads(res.output)["totals"]
    rows = [r for r in s.rows() if r.endpoint == "/v1/messages"]
    assert totals["requests"] == len(rows) == 3
    assert totals["cache_read_input_tokens"] == sum(r.cache_read for r in rows) > 0
    res = runner.invoke(cli, ["doctor", "--db", str(s.db), "--json"])
    assert res.exit_code == 0, res.output
    misses = [m for run in json.loads(res.output)["runs"] for m in run["misses"]]
    assert [m["cause"] for m in misses] == ["prefix_changed"]
    assert misses[0]["request_index"] == 3 and misses[0]["location"].startswith("system[0]")


def test_a_sqlite_file_that_is_not_a_ledger_is_a_clear_error(tmp_path: Path) -> None:
    import sqlite3

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    res = CliRunner().invoke(cli, ["report", "--db", str(other)])
    assert res.exit_code != 0
    assert "holds no gateway requests" in str(res.exception)
