"""Sources: every log format tokenomy reads becomes ``Run``s.

- ``claude_code``: Claude Code transcripts (``~/.claude/projects``), scanned in parallel and
  incrementally (an index in the ledger remembers what was read).
- ``request_log``: JSONL of Messages API ``{request, response}`` pairs (what the gateway writes).
- ``openhands``: OpenHands evaluation output, converted into Messages API requests.

``load_runs(paths)`` detects the format of each file (``detect`` sniffs only the first line),
reads them all and returns a ``LoadResult``: the runs in start-time order, how many lines were
skipped, and the notes a report must print (which figures are lower bounds or estimates).
"""

from __future__ import annotations

import codecs
import gc
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from tokenomy.errors import InputError
from tokenomy.model import Run
from tokenomy.sources._lines import MAX_LINE_BYTES, read_head

__all__ = ["SOURCES", "LoadResult", "default_claude_dirs", "detect", "load_runs"]

SOURCES = ("claude_code", "request_log", "openhands")
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


def default_claude_dirs() -> list[Path]:
    """Where Claude Code keeps transcripts: ``$CLAUDE_CONFIG_DIR/projects`` (comma-separated
    directories allowed), else ``~/.claude/projects``."""
    env = os.environ.get("CLAUDE_CONFIG_DIR", "").strip()
    if env:
        return [Path(p.strip()).expanduser() / "projects" for p in env.split(",") if p.strip()]
    return [Path.home() / ".claude" / "projects"]


def _sniff(head: bytes) -> str | None:
    """The source a file's first line belongs to, or None."""
    if not head:
        return None
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


def _detect_file(path: Path) -> str | None:
    try:
        return _sniff(read_head(str(path)))
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}; check its permissions") from e


def _walk(root: Path) -> list[Path]:
    from tokenomy.sources.claude_code import walk_jsonl

    return walk_jsonl(root)


def detect(path: Path) -> str:
    """Which source ``path`` (a file or a directory of ``.jsonl`` files) is, from first lines only."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"path not found: {path}; check the spelling, or omit it to read ~/.claude/projects")
    if path.is_dir():
        files = _walk(path)
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


def _is_binary(raw: bytes) -> bool:
    if b"\x00" in raw:
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(raw, final=False)
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


def _collect(paths: Sequence[str | Path], source: str) -> tuple[dict[str, list[Path]], list[str], int]:
    """Files by source; notes about files left out; how many files were considered."""
    if source != "auto" and source not in SOURCES:
        raise InputError(f"unknown source {source!r}; use one of: auto, {', '.join(SOURCES)}")
    explicit = bool(paths)
    roots = [Path(p).expanduser() for p in paths] if explicit else default_claude_dirs()
    by_source: dict[str, list[Path]] = {s: [] for s in SOURCES}
    notes: list[str] = []
    considered = 0
    seen: set[str] = set()
    if not explicit and not any(r.is_dir() for r in roots):
        where = ", ".join(str(r) for r in roots)
        raise InputError(f"no Claude Code history at {where}; pass a path, or set CLAUDE_CONFIG_DIR")
    for root in roots:
        if not root.exists():
            if not explicit:
                continue
            raise InputError(
                f"path not found: {root}; check the spelling, or omit it to read ~/.claude/projects"
            )
        if root.is_dir():
            files = _walk(root)
            if not files:
                raise InputError(
                    f"no .jsonl files under {root}; point at a Claude Code projects folder or a log file"
                )
            unknown = 0
            for f in files:
                key = os.path.abspath(f)
                if key in seen:
                    continue
                seen.add(key)
                considered += 1
                kind = source if source != "auto" else _detect_file(f)
                if kind is None:
                    if f.stat().st_size:
                        unknown += 1
                    continue
                by_source[kind].append(Path(key))
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
            by_source[kind].append(Path(key))
    return by_source, notes, considered


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
    by_source, notes, considered = _collect(paths, source)
    # building ~100k small frozen objects: the cyclic GC would rescan them all, again and again
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _load(
            by_source,
            notes,
            considered,
            since,
            until,
            progress,
            index_db,
            use_index,
            with_requests,
            max_line_bytes,
            trajectory_model,
        )
    finally:
        if gc_was_enabled:
            gc.enable()


def _load(
    by_source: dict[str, list[Path]],
    notes: list[str],
    considered: int,
    since: datetime | None,
    until: datetime | None,
    progress: Callable[[int, int], None] | None,
    index_db: Path | str | None,
    use_index: bool,
    with_requests: bool,
    max_line_bytes: int,
    trajectory_model: str,
) -> LoadResult:
    runs: list[Run] = []
    skipped = 0
    readable_lines = False
    if by_source["claude_code"]:
        from tokenomy.sources._scan import scan_claude_code
        from tokenomy.sources.claude_code import build_runs

        states = scan_claude_code(
            by_source["claude_code"],
            index_db=index_db,
            use_index=use_index,
            with_requests=with_requests,
            max_line_bytes=max_line_bytes,
            progress=progress,
        )
        cc_runs, counters = build_runs(states, with_requests=with_requests)
        runs.extend(cc_runs)
        skipped += sum(s.skipped + s.tail_skipped for s in states)
        readable_lines = readable_lines or any(s.lines > 0 for s in states)
        notes.extend(_claude_notes(counters))
    if by_source["request_log"]:
        from tokenomy.sources.request_log import load_request_logs

        rl = load_request_logs(by_source["request_log"], max_line_bytes=max_line_bytes)
        runs.extend(rl.runs)
        skipped += rl.skipped
        readable_lines = readable_lines or rl.lines_read > 0
        notes.extend(rl.notes)
    if by_source["openhands"]:
        from tokenomy.sources.trajectories import load_trajectories

        tr = load_trajectories(by_source["openhands"], model=trajectory_model, max_line_bytes=max_line_bytes)
        runs.extend(tr.runs)
        skipped += tr.skipped
        readable_lines = readable_lines or tr.lines_read > 0
        notes.extend(tr.notes)
    if not runs and skipped and not readable_lines:
        raise InputError(
            f"nothing could be read: all {skipped} line(s) were corrupt, truncated or longer than "
            f"{max_line_bytes // (1024 * 1024)} MB; check the file is a complete JSONL log"
        )
    runs = _filter(runs, since, until)
    runs.sort(key=lambda r: (r.started_at if r.started_at is not None else math.inf, r.run_id))
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.source] = counts.get(r.source, 0) + 1
    return LoadResult(runs=runs, skipped_lines=skipped, notes=notes, files=considered, sources=counts)


def _claude_notes(c: dict[str, int]) -> list[str]:
    notes = [
        "Claude Code turn times are when the transcript line was written (first streamed block), "
        "not when the request was sent"
    ]
    if c["lower_bound"]:
        notes.append(
            f"input_tokens and output_tokens of {c['lower_bound']} of {c['responses']} Claude Code responses "
            "are lower bounds: the transcript kept only the stream-start usage; cache reads and writes are exact"
        )
    if c["duplicates"]:
        notes.append(
            f"{c['duplicates']} Claude Code responses appeared in more than one file (resumed sessions) "
            "and were counted once"
        )
    if c["synthetic"]:
        notes.append(
            f"{c['synthetic']} '<synthetic>' lines (Claude Code's own messages, not API calls) left out"
        )
    return notes
