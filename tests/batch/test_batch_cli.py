"""The ``tokenomy batch`` commands, through ``main()`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from batch_support import Emu, params, write_jsonl

from tokenomy.cli import main

WALL = {"batch_time": "wall", "batch_duration": 0.05}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def env(emu: Emu, monkeypatch: pytest.MonkeyPatch) -> Emu:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-cli-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emu.url)
    return emu


@pytest.mark.parametrize("emu", [WALL], indirect=True)
def test_bad_input_is_listed_and_nothing_is_submitted(
    env: Emu, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            params("fine"),
            "{oops",
            {"custom_id": "a b", "params": params("x")},
            params("x", model="gpt-4o"),
            params("y", model="claude-opus-9"),  # a guess the price table could make: refused
            params("z", model="claude-3-opus-20240229"),  # retired
        ],
    )
    code, out, err = run(capsys, "batch", "submit", str(f), "--wait")
    assert code == 2
    assert (
        "line 2: invalid JSON" in err and "line 3: custom_id 'a b'" in err and "line 4: params.model" in err
    )
    assert "line 5: params.model: unknown model 'claude-opus-9'" in err
    assert "line 6: params.model: 'claude-3-opus-20240229' is retired" in err
    assert "Traceback" not in err
    assert list(env.client("sk-cli-test").messages.batches.list()) == []
    code, out, _ = run(capsys, "batch", "list")
    assert "no batch jobs yet" in out


@pytest.mark.parametrize("emu", [WALL], indirect=True)
def test_submit_wait_out_status_results_list(
    env: Emu, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write_jsonl(
        tmp_path / "in.jsonl", [{"custom_id": f"r{i}", "params": params(f"q{i}")} for i in range(7)]
    )
    out_path = tmp_path / "results.jsonl"
    code, out, err = run(
        capsys,
        "batch",
        "submit",
        str(f),
        "--out",
        str(out_path),
        "--max-requests",
        "3",
        "--poll-interval",
        "0.02",
    )
    assert code == 0, err
    assert "job 1: 7 request(s) in 3 batch(es)" in out
    assert "cost of this job: $" in out and "sent live, as written: $" in out
    lines = [json.loads(x) for x in out_path.read_text().splitlines()]
    assert [x["custom_id"] for x in lines] == [f"r{i}" for i in range(7)]
    assert all(set(x) >= {"custom_id", "status", "response", "error", "usage", "cost"} for x in lines)
    assert all(x["cost"]["total"] > 0 for x in lines)

    code, out, _ = run(capsys, "batch", "status", "1", "--json")
    st = json.loads(out)
    assert st["status"] == {"succeeded": 7} and len(st["batches"]) == 3
    code, out, _ = run(capsys, "batch", "results", "1")
    assert [json.loads(x)["custom_id"] for x in out.splitlines()] == [f"r{i}" for i in range(7)]
    batch_id = st["batches"][0]["id"]
    code, out, _ = run(capsys, "batch", "list", "--remote")
    assert batch_id in out and "job 1" in out
    code, out, _ = run(capsys, "batch", "list", "--json")
    assert json.loads(out)[0]["batches"] == 3
    # the same file again: resumed, not resubmitted
    code, out, _ = run(capsys, "batch", "submit", str(f), "--wait", "--json")
    assert json.loads(out)["job"] == 1
    assert len(list(env.client("sk-cli-test").messages.batches.list())) == 3


@pytest.mark.parametrize("emu", [{"batch_time": "wall", "batch_duration": 3600.0}], indirect=True)
def test_submit_without_wait_then_cancel(
    env: Emu, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write_jsonl(tmp_path / "in.jsonl", [params(f"q{i}") for i in range(4)])
    code, out, _ = run(capsys, "batch", "submit", str(f))
    assert code == 0 and "tokenomy batch status 1" in out
    code, out, _ = run(capsys, "batch", "cancel", "1")
    assert code == 0 and (": ended" in out or ": canceling" in out)
    code, out, err = run(capsys, "batch", "results", "1", "--out", str(tmp_path / "r.jsonl"))
    kinds = {json.loads(x)["status"] for x in (tmp_path / "r.jsonl").read_text().splitlines()}
    assert kinds == {"canceled"}


def test_missing_key_and_unknown_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_jsonl(tmp_path / "in.jsonl", [params("q")])
    code, _, err = run(capsys, "batch", "submit", str(f))
    assert code == 2 and "ANTHROPIC_API_KEY" in err
    code, _, err = run(capsys, "batch", "status", "42", "--offline")
    assert code == 2 and "no batch job '42'" in err
    code, _, err = run(capsys, "batch", "submit", str(f), "--retry", "errored,late")
    assert code == 2 and "unknown kind 'late'" in err
