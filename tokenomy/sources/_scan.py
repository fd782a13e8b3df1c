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

from tokenomy.sources._index import ScanIndex, Stored
from tokenomy.sources._lines import MAX_LINE_BYTES
from tokenomy.sources._summary import SUMMARY_DECODER, SUMMARY_ENCODER, FileSummary, summarize
from tokenomy.sources.claude_code import (
    PARSER_VERSION,
    STATE_DECODER,
    STATE_ENCODER,
    FileState,
    new_state,
    scan_file,
)

PARALLEL_MIN_BYTES = 24 * 1024 * 1024  # below this a process pool costs more than it saves
BATCH_BYTES = 16 * 1024 * 1024  # work handed to a worker at a time: small enough to balance cores

Job = tuple[str, bytes, int, int]  # path, encoded state to resume, size, mtime_ns
Done = tuple[int, bytes, bytes] | None  # offset, encoded state, encoded summary; None: file gone


@dataclass(slots=True)
class ScanStats:
    """What a scan did, for tests and benchmarks: files and bytes actually read."""

    files_read: int = 0
    bytes_read: int = 0
    files_reused: int = 0
    full_rescans: int = 0
    workers: int = 0


@dataclass(slots=True)
class Scanned:
    """A scan's result: a summary per readable file (by path), and the states that were at hand.

    ``states`` holds every freshly scanned file's encoded state, and every reused one's too when
    the caller asked for states; ``state_of`` fetches any other from the index.
    """

    summaries: list[FileSummary]
    states: dict[str, bytes]
    index: ScanIndex | None

    def state_of(self, paths: Sequence[str]) -> list[FileState]:
        blobs = dict(self.states)
        missing = [p for p in paths if p not in blobs]
        if missing and self.index is not None:
            blobs.update(self.index.load_states(missing))
        return [STATE_DECODER.decode(blobs[p]) for p in paths if p in blobs]


def scan_job(jobs: list[tuple[Job, int]]) -> list[Done]:
    """Worker entry point: resume each state to EOF; return it with its summary, encoded."""
    out: list[Done] = []
    for (path, blob, size, mtime), cap in jobs:
        state = STATE_DECODER.decode(blob)
        state.size, state.mtime_ns = size, mtime
        try:
            state = scan_file(state, max_line_bytes=cap)
        except FileNotFoundError:
            out.append(None)  # deleted while we were scanning: nothing to count
            continue
        out.append((state.offset, STATE_ENCODER.encode(state), SUMMARY_ENCODER.encode(summarize(state))))
    return out


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
    stored: dict[str, Stored],
    stat_of: dict[str, tuple[int, int]],
    index: ScanIndex | None,
    with_requests: bool,
    stats: ScanStats,
) -> tuple[list[tuple[str, bytes]], list[Job]]:
    """Split files into ``(path, summary)`` reusable as stored and jobs to (re)scan from an offset."""
    done: list[tuple[str, bytes]] = []
    todo: list[Job] = []
    grown: list[tuple[str, int, int]] = []
    for f in files:
        path = str(f)
        st = stat_of.get(path)
        if st is None:
            try:
                os_st = os.stat(path)
            except OSError:
                continue
            st = (os_st.st_size, os_st.st_mtime_ns)
        size, mtime = st
        row = stored.get(path)
        # a state stored without visible-token estimates is read again when they are wanted
        if (
            row is not None
            and row.parser == PARSER_VERSION
            and row.summary is not None
            and (row.with_visible or not with_requests)
        ):
            if size == row.size and mtime == row.mtime_ns:
                stats.files_reused += 1
                done.append((path, row.summary))
                continue
            if size >= row.offset:
                grown.append((path, size, mtime))  # read appended bytes, if the head is unchanged
                continue
        if row is not None:
            stats.full_rescans += 1
        todo.append((path, STATE_ENCODER.encode(new_state(path, size, mtime, with_requests)), size, mtime))
    old = index.load_states(p for p, _, _ in grown) if index is not None and grown else {}
    for path, size, mtime in grown:
        blob = old.get(path)
        state = STATE_DECODER.decode(blob) if blob is not None else None
        if blob is None or state is None or not _head_matches(path, state):
            stats.full_rescans += 1
            blob = STATE_ENCODER.encode(new_state(path, size, mtime, with_requests))
        todo.append((path, blob, size, mtime))
    return done, todo


def _pending_bytes(job: Job) -> int:
    return max(job[2] - _offset_of(job[1]), 0)


def _offset_of(blob: bytes) -> int:
    return STATE_DECODER.decode(blob).offset


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork is cheap, but unsafe once other threads exist; spawn is the safe fallback
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _scan_parallel(
    todo: list[tuple[Job, int]],
    workers: int,
    max_line_bytes: int,
    tick: Callable[[int], None],
) -> list[tuple[Job, Done]]:
    """Scan on ``workers`` processes: biggest files first, in batches of about ``BATCH_BYTES``."""
    order = sorted(todo, key=lambda jn: jn[1], reverse=True)
    batches: list[list[tuple[Job, int]]] = []
    cur: list[tuple[Job, int]] = []
    cur_bytes = 0
    for jn in order:
        cur.append(jn)
        cur_bytes += jn[1]
        if cur_bytes >= BATCH_BYTES:
            batches.append(cur)
            cur, cur_bytes = [], 0
    if cur:
        batches.append(cur)
    out: list[tuple[Job, Done]] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context()) as pool:
        pending: dict[Future[list[Done]], list[tuple[Job, int]]] = {}
        for b in batches:
            fut = pool.submit(scan_job, [(job, max_line_bytes) for job, _ in b])
            pending[fut] = b
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                b = pending.pop(fut)
                out.extend(zip((job for job, _ in b), fut.result(), strict=True))
                tick(sum(n for _, n in b))
    return out


def scan(
    files: Sequence[Path],
    *,
    index: ScanIndex | None,
    stored: dict[str, Stored] | None = None,
    stat_of: dict[str, tuple[int, int]] | None = None,
    with_requests: bool,
    want_states: bool,
    max_line_bytes: int = MAX_LINE_BYTES,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    stats: ScanStats | None = None,
) -> Scanned:
    """Scan Claude Code files, reusing and updating ``index``; one summary per readable file.

    ``stored`` is the index's ``load_meta()`` when the caller already has it; ``stat_of`` maps
    paths to ``(size, mtime_ns)`` already read (others are stat'ed here).
    """
    stats = stats if stats is not None else ScanStats()
    if stored is None:
        stored = index.load_meta() if index is not None else {}
    done, todo = _plan(files, stored, stat_of or {}, index, with_requests, stats)
    sized = [(job, _pending_bytes(job)) for job in todo]
    total = sum(n for _, n in sized)
    read = 0

    def tick(nbytes: int) -> None:
        nonlocal read
        read += nbytes
        if progress is not None:
            progress(read, total)

    if progress is not None:
        progress(0, total)
    n_workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    results: list[tuple[Job, Done]]
    if n_workers > 1 and len(todo) > 1 and total >= PARALLEL_MIN_BYTES:
        stats.workers = n_workers
        results = _scan_parallel(sized, n_workers, max_line_bytes, tick)
    else:
        stats.workers = 1
        results = []
        for job, n in sized:
            results.append((job, scan_job([(job, max_line_bytes)])[0]))
            tick(n)
    states: dict[str, bytes] = {}
    summaries: dict[str, bytes] = dict(done)
    rows: list[tuple[str, int, int, int, int, bool, bytes, bytes]] = []
    for (path, _, size, mtime), res in results:
        if res is None:
            continue
        offset, state, summary = res
        states[path] = state
        summaries[path] = summary
        rows.append((path, size, mtime, offset, PARSER_VERSION, with_requests, state, summary))
    stats.files_read += len(rows)
    stats.bytes_read += total
    if index is not None and rows:
        index.save(rows)
    if want_states and index is not None:
        reused = [p for p, _ in done]
        states.update(index.load_states(reused))
    return Scanned(
        summaries=[SUMMARY_DECODER.decode(summaries[p]) for p in sorted(summaries)],
        states=states,
        index=index,
    )


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
    index = ScanIndex(index_db) if use_index else None
    try:
        res = scan(
            files,
            index=index,
            with_requests=with_requests,
            want_states=True,
            max_line_bytes=max_line_bytes,
            progress=progress,
            workers=workers,
            stats=stats,
        )
        return res.state_of([s.path for s in res.summaries])
    finally:
        if index is not None:
            index.close()
