"""The forked worker pool the scan runs on (``tokenomy.sources._forked``), and its fallback."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from tokenomy.sources import _scan
from tokenomy.sources._forked import WorkerLost, fork_map
from tokenomy.sources._scan import ScanStats, scan_claude_code

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")


def _square(x: int) -> tuple[int, bytes]:
    return x * x, str(x).encode()


_BEFORE: set[int] = set()


def _children() -> set[int]:
    """This process's child pids (running or not yet reaped), from /proc; empty elsewhere."""
    out: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").glob("*"):
        try:
            out.update(int(p) for p in (task / "children").read_text().split())
        except OSError:
            pass
    return out


@pytest.fixture(autouse=True)
def _children_before() -> None:
    _BEFORE.clear()
    _BEFORE.update(_children())


def _no_children_left() -> bool:
    """Every worker of the pool was waited for (other tests' servers may still be running)."""
    return _children() <= _BEFORE


def test_every_item_comes_back_once() -> None:
    got = dict(fork_map(_square, list(range(50)), 2))
    assert got == {i: [i * i, str(i).encode()] for i in range(50)}
    assert _no_children_left()


def test_more_workers_than_items_and_no_items() -> None:
    assert dict(fork_map(_square, [3], 4)) == {0: [9, b"3"]}
    assert list(fork_map(_square, [], 2)) == []
    assert _no_children_left()


def _echo(x: int) -> bytes:
    return b"x" * 200


def test_more_items_than_the_shared_pipe_holds() -> None:
    """300,000 indices are 1.2 MB: more than the shared pipe takes at once, while every worker's
    result pipe fills up too; the parent feeds the one as it drains the others."""
    n = 300_000
    got = dict(fork_map(_echo, range(n), 2))
    assert len(got) == n and got[n - 1] == b"x" * 200
    assert _no_children_left()


class _Odd(Exception):
    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a} and {b}")


def _odd(x: int) -> int:
    raise _Odd(x, 2)


def test_an_exception_that_does_not_unpickle_still_says_what_it_was() -> None:
    with pytest.raises(RuntimeError, match="_Odd: 0 and 2"):
        list(fork_map(_odd, [0], 1))
    assert _no_children_left()


def _fail_on_seven(x: int) -> int:
    if x == 7:
        raise FileNotFoundError(2, "No such file or directory", f"/logs/{x}.jsonl")
    return x


def test_a_workers_exception_is_raised_as_it_was() -> None:
    with pytest.raises(FileNotFoundError) as e:
        list(fork_map(_fail_on_seven, list(range(20)), 2))
    assert e.value.filename == "/logs/7.jsonl"
    assert _no_children_left()


def _die_on_three(x: int) -> int:
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def test_a_worker_that_dies_is_an_error_not_a_short_answer() -> None:
    with pytest.raises(WorkerLost, match="returned .* of 10 batches"):
        list(fork_map(_die_on_three, list(range(10)), 2))
    assert _no_children_left()


def _slow(x: int) -> int:
    threading.Event().wait(0.05)
    return x


def test_leaving_early_stops_the_workers() -> None:
    it = fork_map(_slow, list(range(40)), 2)
    next(it)
    it.close()
    assert _no_children_left()


def test_with_another_thread_running_workers_are_spawned(
    workloads: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forking while another thread may hold a lock is unsafe: the scan spawns its workers then,
    and reads the same."""
    sessions = sorted((workloads / "claude-code-sniffly" / "sessions").glob("*.jsonl"))
    monkeypatch.setattr(_scan, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(_scan, "BATCH_BYTES", 1)
    forked: list[bool] = []
    real = _scan._can_fork
    monkeypatch.setattr(_scan, "_can_fork", lambda: forked.append(real()) or forked[-1])

    def scan() -> list[int]:
        stats = ScanStats()
        states = scan_claude_code(
            sessions,
            index_db=None,
            use_index=False,
            with_requests=False,
            max_line_bytes=1 << 26,
            progress=None,
            workers=2,
            stats=stats,
        )
        assert stats.workers == 2
        return sorted(len(s.resps) for s in states)

    alone = scan()
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        crowded = scan()
    finally:
        stop.set()
        other.join()
    assert forked[-1] is False  # forked[0]: whether other tests left threads running
    assert crowded == alone and sum(alone) == 90
