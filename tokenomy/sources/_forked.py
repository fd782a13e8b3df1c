"""A minimal pool of forked workers, for scans on POSIX systems with no other thread running.

Why not ``concurrent.futures.ProcessPoolExecutor``: on a 1 GB history its queues, feeder and
manager threads and pickling cost about 40 ms of the scan, and importing it (multiprocessing,
pickle, socket) about 9 ms; a cold report takes under a second. Here the work is known up front
and inherited by ``fork``, so a worker only needs to be told which item to do next: the parent
feeds every index into one pipe that the workers share, and each worker sends its results back,
msgpack-framed, on a pipe of its own. The shared pipe only ever holds whole 4-byte indices (the
parent writes at most ``select.PIPE_BUF`` bytes at a time, which a pipe takes whole or not at
all), and a read from a pipe holds its lock, so each worker's 4-byte read takes one whole index.

A worker's exception is pickled back and raised in the parent; a worker that dies (killed, out of
memory) raises ``WorkerLost``. Leaving the iterator early (an error, Ctrl-C) kills the workers.
"""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import signal
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn, TypeVar

import msgspec

T = TypeVar("T")

_INDEX = struct.Struct("<I")
_HEAD = struct.Struct("<QB")  # payload length, kind
_RESULT, _ERROR = 0, 1
_PIPE_BYTES = 1 << 20  # the most an unprivileged process may ask for by default
_CHUNK = select.PIPE_BUF // _INDEX.size * _INDEX.size  # indices written at a time


class WorkerLost(RuntimeError):
    """A worker ended before sending every result it took on."""


def fork_map(fn: Callable[[T], Any], items: Sequence[T], workers: int) -> Iterator[tuple[int, Any]]:
    """Yield ``(i, fn(items[i]))`` for every item, in the order workers finish them.

    ``fn``'s results must be msgpack-encodable (tuples come back as lists).
    """
    pids: dict[int, int] = {}  # result pipe's read end -> worker pid
    jobs_r, jobs_w = os.pipe()
    feed = _Feed(jobs_w, len(items))
    finished = False
    try:
        for _ in range(min(workers, len(items))):
            res_r, res_w = os.pipe()
            try:
                _widen(res_w)
                pid = os.fork()
            except BaseException:
                os.close(res_r)
                os.close(res_w)
                raise
            if pid == 0:  # the worker: never returns, nor unwinds into the parent's frames
                try:
                    os.close(jobs_w)
                    os.close(res_r)
                    for fd in pids:
                        os.close(fd)
                    _work(fn, items, jobs_r, res_w)
                finally:
                    os._exit(1)
            os.close(res_w)
            pids[res_r] = pid
        os.close(jobs_r)
        jobs_r = -1
        feed.push()
        yield from _collect(pids, len(items), feed)
        finished = True
    finally:
        if jobs_r >= 0:
            os.close(jobs_r)
        feed.close()
        _reap(pids, kill=not finished)


class _Feed:
    """The items' indices, fed into the workers' shared pipe as it drains (a pipe holds 64 KB to
    1 MB: writing them all at once could block while the workers block on their full result
    pipes); closed once all are in, so a worker's read past the last one sees the end."""

    def __init__(self, fd: int, count: int) -> None:
        _widen(fd)
        os.set_blocking(fd, False)
        self.fd = fd
        self.left = memoryview(b"".join(_INDEX.pack(i) for i in range(count)))

    def push(self) -> None:
        try:
            while self.left:
                os.write(self.fd, self.left[:_CHUNK])  # whole or not at all: at most PIPE_BUF
                self.left = self.left[_CHUNK:]
        except BlockingIOError:
            return
        except BrokenPipeError:
            pass  # every worker is gone already: _collect says so
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _work(fn: Callable[[T], Any], items: Sequence[T], jobs: int, out: int) -> NoReturn:
    code = 0
    try:
        encode = msgspec.msgpack.Encoder().encode
        while True:
            raw = os.read(jobs, _INDEX.size)
            if len(raw) < _INDEX.size:
                break
            (i,) = _INDEX.unpack(raw)
            try:
                payload, kind = encode((i, fn(items[i]))), _RESULT
            except Exception as e:
                payload, kind = _pickled(e), _ERROR
            _write_all(out, _HEAD.pack(len(payload), kind) + payload)
            if kind == _ERROR:
                break
    except BaseException:  # Ctrl-C, or the parent gone: nothing left to tell it
        code = 1
    finally:
        os._exit(code)  # skip the parent's cleanup: it owns the files, the ledger and stdout


def _pickled(e: Exception) -> bytes:
    """``e`` pickled, if the parent can unpickle it; else a ``RuntimeError`` that says what it was."""
    import pickle

    try:
        data = pickle.dumps(e)
        pickle.loads(data)
        return data
    except Exception:
        return pickle.dumps(RuntimeError(f"{type(e).__name__}: {e}"))


class _Frames:
    """One worker's results pipe: each frame's payload is read straight into a buffer of its size
    (a fixed-size ``os.read`` would allocate, and then copy, every chunk)."""

    def __init__(self, fd: int) -> None:
        self.file = open(fd, "rb", buffering=0, closefd=False)  # the fd is closed by _reap
        self._expect(_HEAD.size, -1)

    def _expect(self, size: int, kind: int) -> None:
        self.body = bytearray(size)  # a header (kind -1), or the payload of a frame of ``kind``
        self.part = memoryview(self.body)
        self.filled = 0
        self.kind = kind

    def read(self) -> list[tuple[int, bytearray]] | None:
        """The frames ``(kind, payload)`` this read completed (often none); None at the end."""
        n = self.file.readinto(self.part[self.filled :])
        if not n:
            return None
        self.filled += n
        if self.filled < len(self.part):
            return []
        if self.kind < 0:
            size, kind = _HEAD.unpack(self.body)
            self._expect(size, kind)
            if size:
                return []
        frame = (self.kind, self.body)
        self.part.release()
        self._expect(_HEAD.size, -1)
        return [frame]


def _collect(pids: dict[int, int], expected: int, feed: _Feed) -> Iterator[tuple[int, Any]]:
    decode = msgspec.msgpack.Decoder().decode
    sel = selectors.DefaultSelector()
    frames: dict[int, _Frames] = {}
    for fd in pids:
        sel.register(fd, selectors.EVENT_READ)
        frames[fd] = _Frames(fd)
    if feed.fd >= 0:
        sel.register(feed.fd, selectors.EVENT_WRITE)
    got = 0
    with sel:
        while frames:
            for key, _ in sel.select():
                fd = int(key.fd)
                if fd not in frames:  # the shared pipe has room for more indices
                    feed.push()
                    if feed.fd < 0:
                        sel.unregister(fd)
                    continue
                done = frames[fd].read()
                if done is None:
                    sel.unregister(fd)
                    del frames[fd]
                    continue
                for kind, payload in done:
                    if kind == _ERROR:
                        import pickle

                        raise pickle.loads(payload)
                    i, result = decode(payload)
                    got += 1
                    yield i, result
    if got < expected:
        raise WorkerLost(
            f"the scan workers returned {got} of {expected} batches: one stopped (killed, or out of "
            "memory?); run the command again"
        )


def _widen(fd: int) -> None:
    """Let a pipe hold a whole batch's results (Linux; 64 KB otherwise): fewer, larger reads."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_BYTES)
    except OSError:
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _reap(pids: dict[int, int], *, kill: bool) -> None:
    """Close the result pipes and wait for every worker; ``kill`` them all first when leaving
    early. A second Ctrl-C waits until they are reaped (SIGINT is held, then delivered)."""
    for fd in pids:
        os.close(fd)
    if kill:
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        for pid in pids.values():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
