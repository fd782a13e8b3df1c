"""Plan and run the Claude Code scan: what the index already knows, what to read, on how many cores.

Decoding is CPU-bound, so files are spread over worker processes when there is enough to read;
small inputs are scanned in-process because a pool costs more to start than it saves.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from tokenomy.sources._index import ScanIndex
from tokenomy.sources.claude_code import (
    PARSER_VERSION,
    STATE_DECODER,
    STATE_ENCODER,
    FileState,
    new_state,
    scan_file,
    scan_job,
)

PARALLEL_MIN_BYTES = 24 * 1024 * 1024  # below this a process pool costs more than it saves
BATCH_BYTES = 16 * 1024 * 1024  # work handed to a worker at a time: small enough to balance cores


@dataclass(slots=True)
class ScanStats:
    """What a scan did, for tests and benchmarks: files and bytes actually read."""

    files_read: int = 0
    bytes_read: int = 0
    files_reused: int = 0
    full_rescans: int = 0
    workers: int = 0


def _head_matches(path: str, state: FileState) -> bool:
    if state.head_len <= 0:
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(state.head_len)
    except OSError:
        return False
    return len(head) == state.head_len and hashlib.blake2b(head, digest_size=16).digest() == state.head_hash


def _plan(
    files: Sequence[Path],
    stored: dict[str, tuple[int, int, int, bytes]],
    with_requests: bool,
    stats: ScanStats,
) -> tuple[list[FileState], list[FileState]]:
    """Split files into states reusable as stored and states to (re)scan from their offset."""
    done: list[FileState] = []
    todo: list[FileState] = []
    for f in files:
        path = str(f)
        try:
            st = os.stat(path)
        except OSError:
            continue
        size, mtime = st.st_size, st.st_mtime_ns
        row = stored.get(path)
        state: FileState | None = None
        if row is not None and row[2] == PARSER_VERSION:
            old = STATE_DECODER.decode(row[3])
            # a state stored without visible-token estimates is read again when they are wanted
            if old.with_visible or not with_requests:
                if size == row[0] and mtime == row[1]:
                    stats.files_reused += 1
                    done.append(old)
                    continue
                if size >= old.offset and _head_matches(path, old):
                    state = old  # grown (or rewritten in place past the head): read appended bytes
        if state is None:
            if row is not None:
                stats.full_rescans += 1
            state = new_state(path, size, mtime, with_requests)
        state.size, state.mtime_ns = size, mtime
        todo.append(state)
    return done, todo


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork is cheap, but unsafe once other threads exist; spawn is the safe fallback
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _scan_parallel(
    todo: list[FileState],
    workers: int,
    max_line_bytes: int,
    tick: Callable[[int], None],
) -> list[FileState]:
    order = sorted(todo, key=lambda s: s.size - s.offset, reverse=True)
    batches: list[list[FileState]] = []
    cur: list[FileState] = []
    cur_bytes = 0
    for s in order:
        cur.append(s)
        cur_bytes += max(s.size - s.offset, 0)
        if cur_bytes >= BATCH_BYTES:
            batches.append(cur)
            cur, cur_bytes = [], 0
    if cur:
        batches.append(cur)
    out: list[FileState] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context()) as pool:
        pending: dict[Future[list[bytes]], int] = {}
        for b in batches:
            jobs = [(STATE_ENCODER.encode(s), max_line_bytes) for s in b]
            fut = pool.submit(scan_job, jobs)
            pending[fut] = sum(max(s.size - s.offset, 0) for s in b)
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                nbytes = pending.pop(fut)
                out.extend(STATE_DECODER.decode(blob) for blob in fut.result())
                tick(nbytes)
    return out


def scan_claude_code(
    files: Sequence[Path],
    *,
    index_db: Path | str | None,
    use_index: bool,
    with_requests: bool,
    max_line_bytes: int,
    progress: Callable[[int, int], None] | None,
    workers: int | None = None,
    stats: ScanStats | None = None,
) -> list[FileState]:
    """Scan Claude Code files, reusing and updating the index; returns one state per readable file."""
    stats = stats if stats is not None else ScanStats()
    index = ScanIndex(index_db) if use_index else None
    try:
        stored = index.load(str(f) for f in files) if index is not None else {}
        done, todo = _plan(files, stored, with_requests, stats)
        total = sum(max(s.size - s.offset, 0) for s in todo)
        read = 0

        def tick(nbytes: int) -> None:
            nonlocal read
            read += nbytes
            if progress is not None:
                progress(read, total)

        if progress is not None:
            progress(0, total)
        n_workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
        scanned: list[FileState]
        if n_workers > 1 and len(todo) > 1 and total >= PARALLEL_MIN_BYTES:
            stats.workers = n_workers
            scanned = _scan_parallel(todo, n_workers, max_line_bytes, tick)
        else:
            stats.workers = 1
            scanned = []
            for s in todo:
                nbytes = max(s.size - s.offset, 0)
                try:
                    scanned.append(scan_file(s, max_line_bytes=max_line_bytes))
                except FileNotFoundError:
                    continue  # deleted while we were scanning: nothing to count
                tick(nbytes)
        stats.files_read += len(scanned)
        stats.bytes_read += total
        if index is not None and scanned:
            index.save(
                (
                    s.path,
                    s.size,
                    s.mtime_ns,
                    s.offset,
                    PARSER_VERSION,
                    s.with_visible,
                    STATE_ENCODER.encode(s),
                )
                for s in scanned
            )
        return done + scanned
    finally:
        if index is not None:
            index.close()
