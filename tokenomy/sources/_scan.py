"""Plan and run the Claude Code scan: what the index already knows, what to read, on how many cores.

Decoding is CPU-bound, so files are spread over worker processes when there is enough to read;
small inputs are scanned in-process because a pool costs more to start than it saves.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import msgspec

from tokenomy.sources._index import ScanIndex, Stored
from tokenomy.sources._lines import MAX_LINE_BYTES
from tokenomy.sources._summary import PARSER_VERSION, SUMMARY_DECODER, FileSummary

if TYPE_CHECKING:
    from tokenomy.sources.claude_code import FileState

# The transcript decoder (claude_code), the process pool and multiprocessing load only when a file
# has to be read: over an unchanged tree none is, and their imports would be most of the run.

PARALLEL_MIN_BYTES = 24 * 1024 * 1024  # below this a process pool costs more than it saves
BATCH_BYTES = 16 * 1024 * 1024  # work handed to a worker at a time: small enough to balance cores


class Job(NamedTuple):
    """A file to scan: from ``state`` (an encoded ``FileState``), or from its start when None."""

    path: str
    state: bytes | None
    size: int
    mtime_ns: int
    with_visible: bool  # for a state started here: estimate the visible tokens of each request


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
    signature: bytes = b""  # of every scanned file's path, size and mtime: equal when nothing changed
    with_requests: bool = False

    def state_of(self, paths: Sequence[str]) -> list[FileState]:
        from tokenomy.sources.claude_code import STATE_DECODER

        blobs = dict(self.states)
        missing = [p for p in paths if p not in blobs]
        if missing and self.index is not None:
            blobs.update(self.index.load_states(missing))
        out: list[FileState] = []
        for p in paths:
            blob = blobs.get(p)
            if blob is None:
                continue
            try:
                out.append(STATE_DECODER.decode(blob))
            except msgspec.DecodeError:
                # a damaged row: read the file again from the start
                try:
                    st = os.stat(p)
                except OSError:
                    continue
                job = Job(p, None, st.st_size, st.st_mtime_ns, self.with_requests)
                done = scan_job([(job, MAX_LINE_BYTES)])[0]
                if done is not None:
                    out.append(STATE_DECODER.decode(done[1]))
        return out


def scan_job(jobs: list[tuple[Job, int]]) -> list[Done]:
    """Worker entry point: resume each state to EOF; return it with its summary, encoded."""
    from tokenomy.sources._summary import SUMMARY_ENCODER, summarize
    from tokenomy.sources.claude_code import STATE_DECODER, STATE_ENCODER, new_state, scan_file

    out: list[Done] = []
    for (path, blob, size, mtime, with_visible), cap in jobs:
        if blob is None:
            state = new_state(path, size, mtime, with_visible)
        else:
            state = STATE_DECODER.decode(blob)
            state.size, state.mtime_ns = size, mtime
        try:
            state, idents = scan_file(state, max_line_bytes=cap)
        except FileNotFoundError:
            out.append(None)  # deleted while we were scanning: nothing to count
            continue
        out.append(
            (state.offset, STATE_ENCODER.encode(state), SUMMARY_ENCODER.encode(summarize(state, idents)))
        )
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
    files: Sequence[str | Path],
    stored: dict[str, Stored],
    stat_of: dict[str, tuple[int, int]],
    index: ScanIndex | None,
    with_requests: bool,
    stats: ScanStats,
) -> tuple[list[FileSummary], list[tuple[Job, int]]]:
    """Split files into summaries reusable as stored and jobs (with the bytes each will
    read) to scan from an offset. Fills ``stat_of`` for every file that exists."""
    done: list[FileSummary] = []
    todo: list[tuple[Job, int]] = []
    grown: list[tuple[str, int, int]] = []
    for f in files:
        path = str(f)
        st = stat_of.get(path)
        if st is None:
            try:
                os_st = os.stat(path)
            except OSError:
                continue
            st = stat_of[path] = (os_st.st_size, os_st.st_mtime_ns)
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
                summary = _decoded(row.summary)
                if summary is not None:
                    stats.files_reused += 1
                    done.append(summary)
                    continue
            if size >= row.offset:
                grown.append((path, size, mtime))  # read appended bytes, if the head is unchanged
                continue
        if row is not None:
            stats.full_rescans += 1
        todo.append((Job(path, None, size, mtime, with_requests), size))
    if not grown:
        return done, todo
    from tokenomy.sources.claude_code import STATE_DECODER

    old = index.load_states(p for p, _, _ in grown) if index is not None else {}
    for path, size, mtime in grown:
        blob = old.get(path)
        try:
            state = STATE_DECODER.decode(blob) if blob is not None else None
        except msgspec.DecodeError:
            state = None  # a damaged row: read the file again from the start
        if blob is None or state is None or not _head_matches(path, state):
            stats.full_rescans += 1
            blob = state = None
        todo.append(
            (Job(path, blob, size, mtime, with_requests), size - (state.offset if state is not None else 0))
        )
    return done, todo


def _decoded(blob: bytes) -> FileSummary | None:
    """A stored summary, or None when it does not decode (the file is then read again)."""
    try:
        return SUMMARY_DECODER.decode(blob)
    except msgspec.DecodeError:
        return None


def _can_fork() -> bool:
    """Fork is cheap, but unsafe once other threads exist (a lock held by one stays held in the
    child); then workers are spawned, which costs each an interpreter start."""
    import threading

    return hasattr(os, "fork") and threading.active_count() == 1


def _scan_parallel(
    todo: list[tuple[Job, int]],
    workers: int,
    max_line_bytes: int,
    tick: Callable[[int], None],
    sink: _Sink,
) -> None:
    """Scan on ``workers`` processes: biggest files first, in batches of about ``BATCH_BYTES``.
    Each batch's results are stored as it arrives, while the other batches are still being read."""
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
    work = [[(job, max_line_bytes) for job, _ in b] for b in batches]
    for i, done in _run(work, workers):
        b = batches[i]
        sink.add(zip((job for job, _ in b), done, strict=True))
        tick(sum(n for _, n in b))


def _run(work: list[list[tuple[Job, int]]], workers: int) -> Iterator[tuple[int, list[Done]]]:
    """``(i, scan_job(work[i]))`` as workers finish them: forked (``_forked``) where that is safe,
    else on a pool of spawned processes."""
    if _can_fork():
        from tokenomy.sources._forked import fork_map

        for i, done in fork_map(scan_job, work, workers):
            yield i, [None if d is None else (d[0], d[1], d[2]) for d in done]
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: dict[Future[list[Done]], int] = {pool.submit(scan_job, w): i for i, w in enumerate(work)}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                yield pending.pop(fut), fut.result()


class _Sink:
    """Takes scan results as they come: decodes summaries, saves rows to the index, collects states."""

    def __init__(self, index: ScanIndex | None, with_requests: bool) -> None:
        self.index, self.with_requests = index, with_requests
        self.states: dict[str, bytes] = {}
        self.summaries: dict[str, FileSummary] = {}
        self.files = 0

    def add(self, results: Iterable[tuple[Job, Done]]) -> None:
        rows: list[tuple[str, int, int, int, int, bool, bytes, bytes]] = []
        for (path, _, size, mtime, _), res in results:
            if res is None:
                continue
            offset, state, summary = res
            self.states[path] = state
            self.summaries[path] = SUMMARY_DECODER.decode(summary)
            rows.append((path, size, mtime, offset, PARSER_VERSION, self.with_requests, state, summary))
        self.files += len(rows)
        if self.index is not None and rows:
            self.index.save(rows)


def scan(
    files: Sequence[str | Path],
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
    stat_of = stat_of if stat_of is not None else {}
    done, sized = _plan(files, stored, stat_of, index, with_requests, stats)
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
    sink = _Sink(index, with_requests)
    if n_workers > 1 and len(sized) > 1 and total >= PARALLEL_MIN_BYTES:
        stats.workers = n_workers
        _scan_parallel(sized, n_workers, max_line_bytes, tick, sink)
    else:
        stats.workers = 1
        results: list[tuple[Job, Done]] = []
        for job, n in sized:
            results.append((job, scan_job([(job, max_line_bytes)])[0]))
            tick(n)
        sink.add(results)
    states = sink.states
    summaries = sink.summaries
    for summ in done:
        summaries[summ.path] = summ
    stats.files_read += sink.files
    stats.bytes_read += total
    if want_states and index is not None:
        reused = [summ.path for summ in done]
        states.update(index.load_states(reused))
    paths = sorted(summaries)
    signature = hashlib.blake2b(
        "\n".join(f"{p}\t{stat_of[p][0]}\t{stat_of[p][1]}" for p in paths).encode(), digest_size=16
    ).digest()
    return Scanned(
        summaries=[summaries[p] for p in paths],
        states=states,
        index=index,
        signature=signature,
        with_requests=with_requests,
    )


def scan_claude_code(
    files: Sequence[str | Path],
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
