"""SIGKILL at each named step, then the same command again: nothing duplicated, nothing lost.

Each run is ``tokenomy batch submit`` (the CLI's ``main``) in a forked child process, against one
emulator served here (wall batch time, short batches); ``TOKENOMY_BATCH_CRASH_AT`` makes the child
SIGKILL itself at that step. Forking skips a fresh interpreter's imports, so the many runs stay
cheap. Each case has its own API key (so its own emulator workspace), ledger and input file.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import warnings
from pathlib import Path

import pytest
from batch_support import Emu, params, write_jsonl

N_REQUESTS = 12
PER_BATCH = 5  # three batches: 5, 5, 2

CRASH_POINTS = [
    "planned",
    "before_create#2",
    "after_create",
    "after_create#3",
    "after_record#2",
    "mid_collect",
    "after_collect#2",
]

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def _run_child(args: list[str], env: dict[str, str], log: Path) -> int:
    """Run the CLI in a forked child; return its wait status (negative: killed by that signal)."""
    sys.stdout.flush()
    sys.stderr.flush()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.stdout = os.fdopen(1, "w", closefd=False)
            sys.stderr = os.fdopen(2, "w", closefd=False)
            os.environ.update(env)
            from tokenomy.cli import main

            try:
                main(args)
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


@pytest.mark.parametrize("emu", [{"batch_time": "wall", "batch_duration": 0.1}], indirect=True)
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_sigkill_then_rerun(emu: Emu, tmp_path: Path, point: str) -> None:
    f = write_jsonl(
        tmp_path / "in.jsonl", [{"custom_id": f"c{i}", "params": params(f"q{i}")} for i in range(N_REQUESTS)]
    )
    out = tmp_path / "out.jsonl"
    key = f"sk-crash-{point}"
    env = {"TOKENOMY_HOME": str(tmp_path / "home"), "ANTHROPIC_API_KEY": key, "ANTHROPIC_BASE_URL": emu.url}
    args = ["batch", "submit", str(f), "--out", str(out), "--max-requests", str(PER_BATCH)]
    args += ["--poll-interval", "0.05", "--poll-max", "0.1"]
    log = tmp_path / "log.txt"
    status = _run_child(args, {**env, "TOKENOMY_BATCH_CRASH_AT": point}, log)
    assert status == -signal.SIGKILL, (status, log.read_text())
    status = _run_child(args, {**env, "TOKENOMY_BATCH_CRASH_AT": ""}, log)
    assert status == 0, log.read_text()
    if point.startswith("after_create"):  # the batch was made but not recorded: found, not made again
        assert "adopting it" in log.read_text()
    remote = list(emu.client(key).messages.batches.list(limit=100))
    assert sorted(b.request_counts.succeeded for b in remote) == [2, 5, 5]  # no batch twice, none lost
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [ln["custom_id"] for ln in lines] == [f"c{i}" for i in range(N_REQUESTS)]
    assert all(ln["status"] == "succeeded" and ln["usage"] for ln in lines)
