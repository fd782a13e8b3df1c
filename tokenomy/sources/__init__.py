"""Sources: every log format tokenomy reads becomes ``Run``s.

- ``claude_code``: Claude Code transcripts (``~/.claude/projects``), scanned in parallel and
  incrementally (an index in the ledger remembers what was read).
- ``request_log``: JSONL of Messages API ``{request, response}`` pairs (what the gateway writes).
- ``openhands``: OpenHands evaluation output, converted into Messages API requests.

``load_runs(paths)`` detects the format of each file (``detect`` sniffs only the first line; a
file the index holds unchanged is not sniffed again), reads them all and returns a
``LoadResult``: the runs in start-time order, how many lines were skipped, and the notes a report
must print (which figures are lower bounds or estimates). ``load_summaries(paths)`` is the same
for reports that only add up: Claude Code runs come back as per-file sums instead of turns.
"""

from __future__ import annotations

import codecs
import gc
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from tokenomy.errors import InputError
from tokenomy.files import Listing, default_claude_dirs, walk_jsonl
from tokenomy.model import Run
from tokenomy.sources._lines import MAX_LINE_BYTES, read_head

if TYPE_CHECKING:
    from tokenomy.sources._index import ScanIndex
    from tokenomy.sources._summary import FileSummary, RunSums

__all__ = [
    "SOURCES",
    "LoadResult",
    "SummaryResult",
    "default_claude_dirs",
    "detect",
    "load_runs",
    "load_summaries",
]

SOURCES = ("claude_code", "request_log", "openhands", "ledger")
DEFAULT_TRAJECTORY_MODEL = "claude-sonnet-4-5"
_CLAUDE_TYPES = frozenset(
    {"user", "assistant", "summary", "system", "progress", "file-history-snapshot", "queue-operation"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadResult:
    """What ``load_runs`` read: runs ordered by start time, plus what the report must say."""

    runs: list[Run]
    skipped_lines: int
    notes: list[str]
    files: int
    sources: dict[str, int]


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _sniff(head: bytes) -> str | None:
    """The source a file's first line belongs to, or None."""
    if not head:
        return None
    if head.startswith(_SQLITE_MAGIC):  # the gateway's ledger (tokenomy serve --db)
        return "ledger"
    if _is_binary(head[:4096]):
        return None
    try:
        obj = msgspec.json.decode(head)
    except msgspec.DecodeError:
        obj = None
    if isinstance(obj, dict):
        keys = obj.keys()
        if "request" in keys and "response" in keys:
            return "request_log"
        if "history" in keys and ("instance_id" in keys or "instruction" in keys):
            return "openhands"
        if "sessionId" in keys or (
            obj.get("type") in _CLAUDE_TYPES and ("uuid" in keys or "leafUuid" in keys or "messageId" in keys)
        ):
            return "claude_code"
        return None
    if obj is not None or not head.lstrip().startswith(b"{"):
        return None
    # a first line longer than the sniff window: judge by the keys seen in its head
    if b'"sessionId"' in head or (b'"parentUuid"' in head and b'"uuid"' in head):
        return "claude_code"
    if b'"instance_id"' in head and (b'"instruction"' in head or b'"history"' in head):
        return "openhands"
    if b'"request"' in head and (b'"response"' in head or b'"endpoint"' in head):
        return "request_log"
    return None


def _detect_file(path: Path | str) -> str | None:
    try:
        return _sniff(read_head(str(path)))
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}; check its permissions") from e


def detect(path: Path) -> str:
    """Which source ``path`` (a file or a directory of ``.jsonl`` files) is, from first lines only."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"path not found: {path}; check the spelling, or omit it to read ~/.claude/projects")
    if path.is_dir():
        files = walk_jsonl(path)
        if not files:
            raise InputError(
                f"no .jsonl files under {path}; point at a Claude Code projects folder or a log file"
            )
        for f in files[:50]:
            kind = _detect_file(f)
            if kind is not None:
                return kind
        raise InputError(_unrecognised_dir(path, len(files)))
    kind = _detect_file(path)
    if kind is None:
        raise InputError(_unrecognised_file(path))
    return kind


def _unrecognised_dir(path: Path, n: int) -> str:
    return (
        f"none of the {n} .jsonl files under {path} is a Claude Code transcript, a request log or an "
        "OpenHands trajectory; pass --source to force one, or point at the right folder"
    )


_UTF8 = codecs.getincrementaldecoder("utf-8")  # looked up once: the lookup costs more than the check


def _is_binary(raw: bytes) -> bool:
    if b"\x00" in raw:
        return True
    try:
        _UTF8().decode(raw, final=False)  # a character cut at the end of the window is no error
    except UnicodeDecodeError:
        return True
    return False


def _unrecognised_file(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(4096)
    except OSError:
        raw = b""
    head = raw.lstrip()
    if not head:
        what = "is empty"
    elif _is_binary(raw):
        what = "is binary, not JSON Lines"
    elif not head.lstrip().startswith(b"{"):
        what = "does not start with a JSON object"
    else:
        what = "is JSON, but not a Claude Code transcript, a request log or an OpenHands trajectory"
    return f"{path} {what}; pass a .jsonl log (or --source to force a format)"


def _collect(
    paths: Sequence[str | Path],
    source: str,
    known: Mapping[str, tuple[int, int]] | None = None,
    stat_of: dict[str, tuple[int, int]] | None = None,
    unsniffed: dict[str, tuple[str, int]] | None = None,
    listing: Listing | None = None,
) -> tuple[dict[str, list[str]], list[str], int]:
    """Files (absolute paths) by source; notes about files left out; how many files were considered.

    ``known`` maps Claude Code files the index holds to their ``(size, mtime_ns)``: a file found
    unchanged is not sniffed again. Every ``.jsonl`` under one of Claude Code's own folders
    (``default_claude_dirs``, defaulted to or given as a root) is taken as its transcript unsniffed:
    sniffing 2,440 files is a twentieth of a cold report. ``unsniffed`` (filled here) maps each such
    file to its root and the root's number of files, so that ``_settle_unsniffed`` can sniff, after
    the scan, the few in which the scan found nothing of Claude Code. ``stat_of`` (filled here) keeps
    the stats taken for the scan. ``listing``'s folders are taken as listed, not walked again.
    """
    if source != "auto" and source not in SOURCES:
        raise InputError(f"unknown source {source!r}; use one of: auto, {', '.join(SOURCES)}")
    explicit = bool(paths)
    roots = [Path(p).expanduser() for p in paths] if explicit else default_claude_dirs()
    by_source: dict[str, list[str]] = {s: [] for s in SOURCES}
    notes: list[str] = []
    considered = 0
    seen: set[str] = set()
    if not explicit and not any(r.is_dir() for r in roots):
        where = ", ".join(str(r) for r in roots)
        raise InputError(f"no Claude Code history at {where}; pass a path, or set CLAUDE_CONFIG_DIR")
    claudes = {os.path.abspath(d) for d in default_claude_dirs()} if source == "auto" else set()
    for root in roots:
        if not root.exists():
            if not explicit:
                continue
            raise InputError(
                f"path not found: {root}; check the spelling, or omit it to read ~/.claude/projects"
            )
        if root.is_dir():
            walked = listing.folders.get(os.path.abspath(root)) if listing is not None else None
            files = walked if walked is not None else walk_jsonl(root)
            if not files:
                raise InputError(
                    f"no .jsonl files under {root}; point at a Claude Code projects folder or a log file"
                )
            unknown = 0
            fixed = (
                source if source != "auto" else "claude_code" if os.path.abspath(root) in claudes else None
            )
            for key in files:
                if key in seen:
                    continue
                seen.add(key)
                considered += 1
                kind = fixed or _kind_of(key, known, stat_of)
                if fixed and source == "auto" and unsniffed is not None:
                    unsniffed[key] = (str(root), len(files))
                if kind is None:
                    if os.path.getsize(key):
                        unknown += 1
                    continue
                by_source[kind].append(key)
            if unknown and unknown == len(files):
                raise InputError(_unrecognised_dir(root, len(files)))
            if unknown:
                notes.append(
                    f"{unknown} .jsonl file(s) under {root} were not a known log format and were left out"
                )
        else:
            key = os.path.abspath(root)
            if key in seen:
                continue
            seen.add(key)
            considered += 1
            kind = source if source != "auto" else _detect_file(root)
            if kind is None:
                raise InputError(_unrecognised_file(root))
            by_source[kind].append(key)
    return by_source, notes, considered


def _kind_of(
    path: str, known: Mapping[str, tuple[int, int]] | None, stat_of: dict[str, tuple[int, int]] | None
) -> str | None:
    """A file's source: an unchanged file the index holds is a Claude Code transcript (no need to
    sniff it); any other is sniffed."""
    if known is not None and stat_of is not None:
        size_mtime = stat_of.get(path)  # stated already by a walk handed over (a Listing)
        if size_mtime is None:
            try:
                st = os.stat(path)
            except OSError as e:
                raise InputError(f"cannot read {path}: {e.strerror}; check its permissions") from e
            size_mtime = stat_of[path] = (st.st_size, st.st_mtime_ns)
        if known.get(path) == size_mtime:
            return "claude_code"
    return _detect_file(path)


def _in_window(t: float | None, since: float | None, until: float | None) -> bool:
    if t is None:
        return False
    return (since is None or t >= since) and (until is None or t < until)


def _epoch(d: datetime | None) -> float | None:
    if d is None:
        return None
    return (d if d.tzinfo else d.replace(tzinfo=UTC)).timestamp()


def _filter(runs: list[Run], since: datetime | None, until: datetime | None) -> list[Run]:
    lo, hi = _epoch(since), _epoch(until)
    if lo is None and hi is None:
        return runs
    out: list[Run] = []
    for r in runs:
        turns = tuple(t for t in r.turns if _in_window(t.started_at, lo, hi))
        if turns:
            out.append(r if len(turns) == len(r.turns) else replace(r, turns=turns))
    return out


def load_runs(
    paths: Sequence[str | Path],
    *,
    source: str = "auto",
    since: datetime | None = None,
    until: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
    index_db: Path | str | None = None,
    use_index: bool = True,
    with_requests: bool = True,
    max_line_bytes: int = MAX_LINE_BYTES,
    trajectory_model: str = DEFAULT_TRAJECTORY_MODEL,
) -> LoadResult:
    """Read every run under ``paths`` (default: the Claude Code projects folders).

    ``progress(bytes_done, bytes_total)`` is called as Claude Code files are read (only what the
    index does not already hold counts). ``since``/``until`` keep turns started in
    ``[since, until)`` (naive datetimes are UTC). ``with_requests=False`` skips the work only
    request-level consumers need (visible-token estimates, parsed request bodies where optional).
    """
    from tokenomy.sources._scan import scan
    from tokenomy.sources.claude_code import build_runs

    with _Reading(paths, source, index_db, use_index) as rd:
        runs: list[Run] = []
        skipped = 0
        readable = False
        if rd.by_source["claude_code"]:
            scanned = scan(
                rd.by_source["claude_code"],
                index=rd.index,
                stored=rd.stored,
                stat_of=rd.stat_of,
                with_requests=with_requests,
                want_states=True,
                max_line_bytes=max_line_bytes,
                progress=progress,
            )
            out = rd.settle_unsniffed(scanned.summaries)
            summaries = [s for s in scanned.summaries if s.path not in out]
            states = scanned.state_of([s.path for s in summaries])
            cc_runs, counters = build_runs(states, with_requests=with_requests)
            runs.extend(cc_runs)
            skipped += sum(s.skipped for s in summaries)
            readable = any(s.lines > 0 for s in summaries)
            rd.notes.extend(_claude_notes(counters))
        more, more_skipped, more_readable = _load_others(
            rd.by_source, rd.notes, max_line_bytes, trajectory_model, with_requests
        )
        runs.extend(more)
        _check_readable(runs, skipped + more_skipped, readable or more_readable, max_line_bytes)
        runs = _filter(runs, since, until)
        runs.sort(key=lambda r: (r.started_at if r.started_at is not None else math.inf, r.run_id))
        counts: dict[str, int] = {}
        for r in runs:
            counts[r.source] = counts.get(r.source, 0) + 1
        return LoadResult(
            runs=runs,
            skipped_lines=skipped + more_skipped,
            notes=rd.notes,
            files=rd.considered,
            sources=counts,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SummaryResult:
    """What ``load_summaries`` read: Claude Code runs as sums, every other run whole."""

    sums: list[RunSums]
    runs: list[Run]
    skipped_lines: int
    notes: list[str]
    files: int


def load_summaries(
    paths: Sequence[str | Path],
    *,
    source: str = "auto",
    progress: Callable[[int, int], None] | None = None,
    index_db: Path | str | None = None,
    use_index: bool = True,
    max_line_bytes: int = MAX_LINE_BYTES,
    trajectory_model: str = DEFAULT_TRAJECTORY_MODEL,
    listing: Listing | None = None,
) -> SummaryResult:
    """Like ``load_runs``, for reports that only add up: Claude Code runs come as sums, no turns.

    The index keeps each file's sums, so over an unchanged tree this reads no transcript at all.
    A file that shares a response with another file (a resumed session) is read from its full
    state instead and comes back in ``runs``, so each response still counts once, with its
    largest ``output_tokens``. No time window here: ``report.data.build_report`` applies one.
    ``listing`` is a walk of (some of) the paths already made (``tokenomy.files.Listing``): its
    folders are not walked, nor its files stated, again.
    """
    from tokenomy.sources._scan import scan
    from tokenomy.sources._summary import run_sums, shared_keys

    with _Reading(paths, source, index_db, use_index, listing) as rd:
        sums: list[RunSums] = []
        runs: list[Run] = []
        skipped = 0
        readable = False
        if rd.by_source["claude_code"]:
            scanned = scan(
                rd.by_source["claude_code"],
                index=rd.index,
                stored=rd.stored,
                stat_of=rd.stat_of,
                with_requests=False,
                want_states=False,
                max_line_bytes=max_line_bytes,
                progress=progress,
            )
            # which files share a response is kept with the signature of the files it was found for
            shared = rd.index.shared(scanned.signature) if rd.index is not None else None
            if shared is None:
                shared = shared_keys(scanned.summaries)
                if rd.index is not None:
                    rd.index.save_shared(scanned.signature, shared)
            counters = {"duplicates": 0, "lower_bound": 0, "responses": 0, "synthetic": 0}
            out = rd.settle_unsniffed(scanned.summaries)
            for summ in scanned.summaries:
                if summ.path in out:
                    continue
                skipped += summ.skipped
                readable = readable or summ.lines > 0
                if summ.path in shared:
                    continue
                counters["synthetic"] += summ.synthetic
                counters["responses"] += summ.responses
                counters["lower_bound"] += sum(a.lower for a in summ.coarse)
                sums.extend(run_sums(summ))
            if shared:
                from tokenomy.sources.claude_code import build_runs

                cc_runs, more = build_runs(scanned.state_of(sorted(shared)), with_requests=False)
                runs.extend(cc_runs)
                for k, v in more.items():
                    counters[k] += v
            rd.notes.extend(_claude_notes(counters))
        more_runs, more_skipped, more_readable = _load_others(
            rd.by_source, rd.notes, max_line_bytes, trajectory_model, False
        )
        runs.extend(more_runs)
        _check_readable(
            [*runs, *(x.run for x in sums)], skipped + more_skipped, readable or more_readable, max_line_bytes
        )
        return SummaryResult(
            sums=sums, runs=runs, skipped_lines=skipped + more_skipped, notes=rd.notes, files=rd.considered
        )


class _Reading:
    """Opens the index (when used), finds and sorts the files, and keeps the cyclic GC off meanwhile:
    building ~100k small frozen objects would make it rescan them all, again and again."""

    def __init__(
        self,
        paths: Sequence[str | Path],
        source: str,
        index_db: Path | str | None,
        use_index: bool,
        listing: Listing | None = None,
    ) -> None:
        self.paths, self.source, self.index_db, self.use_index = paths, source, index_db, use_index
        self.listing = listing
        self.index: ScanIndex | None = None
        self.gc_was_enabled = gc.isenabled()

    def __enter__(self) -> _Reading:
        from tokenomy.sources._index import ScanIndex

        gc.disable()
        try:
            self.index = ScanIndex(self.index_db) if self.use_index else None
            self.stored = self.index.load_meta() if self.index is not None else {}
            known = {p: (r.size, r.mtime_ns) for p, r in self.stored.items()}
            self.stat_of: dict[str, tuple[int, int]] = dict(self.listing.stats) if self.listing else {}
            self.unsniffed: dict[str, tuple[str, int]] = {}
            self.by_source, self.notes, self.considered = _collect(
                self.paths, self.source, known, self.stat_of, self.unsniffed, self.listing
            )
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.index is not None:
            self.index.close()
            self.index = None
        if self.gc_was_enabled:
            gc.enable()

    def settle_unsniffed(self, summaries: Sequence[FileSummary]) -> set[str]:
        """The files taken unsniffed from Claude Code's folders in which the scan found nothing of
        Claude Code (no response, session, title): sniffed after all, so a request log or trajectory
        left there goes to its own reader and anything else is left out with the note (or, when it
        is every file of its folder, the error) a sniffed folder gets. Returns the paths to leave
        out of Claude Code's."""
        out: set[str] = set()
        unknown: dict[str, int] = {}
        for summ in summaries:
            where = self.unsniffed.get(summ.path)
            if where is None or summ.responses or summ.session_id or summ.title or summ.synthetic:
                continue
            kind = _detect_file(summ.path)
            if kind == "claude_code":
                continue
            out.add(summ.path)
            if kind is not None:
                self.by_source[kind].append(summ.path)
            elif os.path.getsize(summ.path):
                unknown[where[0]] = unknown.get(where[0], 0) + 1
        for root, n in unknown.items():
            total = next(t for r, t in self.unsniffed.values() if r == root)
            if n == total:
                raise InputError(_unrecognised_dir(Path(root), total))
            self.notes.append(
                f"{n} .jsonl file(s) under {root} were not a known log format and were left out"
            )
        return out


def _load_others(
    by_source: dict[str, list[str]],
    notes: list[str],
    max_line_bytes: int,
    trajectory_model: str,
    with_requests: bool,
) -> tuple[list[Run], int, bool]:
    """Runs of the request logs and trajectories; lines skipped; whether any line was readable."""
    runs: list[Run] = []
    skipped = 0
    readable = False
    if by_source["request_log"]:
        from tokenomy.sources.request_log import load_request_logs

        rl = load_request_logs([Path(p) for p in by_source["request_log"]], max_line_bytes=max_line_bytes)
        runs.extend(rl.runs)
        skipped += rl.skipped
        readable = readable or rl.lines_read > 0
        notes.extend(rl.notes)
    if by_source["ledger"]:
        runs.extend(_load_ledgers(by_source["ledger"], notes, with_requests))
        readable = True
    if by_source["openhands"]:
        from tokenomy.sources.trajectories import load_trajectories

        tr = load_trajectories(
            [Path(p) for p in by_source["openhands"]], model=trajectory_model, max_line_bytes=max_line_bytes
        )
        runs.extend(tr.runs)
        skipped += tr.skipped
        readable = readable or tr.lines_read > 0
        notes.extend(tr.notes)
    return runs, skipped, readable


def _load_ledgers(paths: list[str], notes: list[str], with_requests: bool) -> list[Run]:
    """The gateway's requests (``tokenomy serve`` / ``wrap()``) as runs, one per linked run id;
    without ``with_requests``, without the stored bodies, block lists and diagnoses (a report
    over a month of gateway traffic only adds up)."""
    import sqlite3

    from tokenomy.ledger.requests import read_runs

    runs: list[Run] = []
    for p in paths:
        try:
            with sqlite3.connect(f"file:{p}?mode=ro", uri=True) as conn:
                has = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'gateway_requests'"
                ).fetchone()
        except sqlite3.Error as e:
            raise InputError(f"cannot read {p}: {e}; pass a tokenomy ledger (tokenomy serve --db)") from e
        if not has:
            raise InputError(
                f"{p} is a SQLite file but holds no gateway requests; pass the --db that tokenomy serve wrote"
            )
        found = read_runs(p, details=with_requests)
        runs.extend(found)
        if not found:
            notes.append(f"the ledger {p} holds no Messages requests yet")
    if runs:
        notes.append(
            "gateway runs: prompt bodies are stored only with --store-bodies; block hashes and sizes always"
        )
    return runs


def _check_readable(runs: list[Run], skipped: int, readable: bool, max_line_bytes: int) -> None:
    if not runs and skipped and not readable:
        raise InputError(
            f"nothing could be read: all {skipped:,} line(s) were corrupt, truncated or longer than "
            f"{max_line_bytes // (1024 * 1024)} MB; check the file is a complete JSONL log"
        )


def _claude_notes(c: dict[str, int]) -> list[str]:
    notes = [
        "Claude Code turn times are when the transcript line was written (first streamed block), "
        "not when the request was sent"
    ]
    if c["lower_bound"]:
        notes.append(
            f"input_tokens and output_tokens of {c['lower_bound']:,} of {c['responses']:,} Claude Code responses "
            "are lower bounds: the transcript kept only the stream-start usage; cache reads and writes are exact"
        )
    if c["duplicates"]:
        notes.append(
            f"{c['duplicates']:,} Claude Code responses appeared in more than one file (resumed sessions) "
            "and were counted once"
        )
    if c["synthetic"]:
        notes.append(
            f"{c['synthetic']:,} '<synthetic>' lines (Claude Code's own messages, not API calls) left out"
        )
    return notes
