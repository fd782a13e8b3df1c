"""Reading a batch input file: every line checked before anything is sent.

A line is either the API's own shape ``{"custom_id": ..., "params": {...}}`` or a bare Messages
request body, which gets a stable generated id (line number plus a hash of the file). Either may
carry a ``"tokenomy"`` object (``lane``, ``waiting``, ``deadline_s``) that is read here and never
sent upstream. All problems are collected with their line numbers and raised together, so a bad
file is fixed in one pass and nothing is ever half-submitted.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tokenomy.errors import ApiRequestError, CacheControlError, InputError
from tokenomy.pricing import resolve
from tokenomy.validate import (
    BATCH,
    BATCH_MAX_BYTES,
    BATCH_MAX_REQUESTS,
    CUSTOM_ID_RE,
    check_batch_params,
    check_messages,
)

__all__ = [
    "CUSTOM_ID_RE",
    "DEFAULT_LIVE_DEADLINE_S",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_REQUESTS",
    "BatchInput",
    "BatchInputError",
    "Item",
    "Lane",
    "Limits",
    "check_params",
    "chunk_items",
    "choose_lane",
    "read_input",
    "request_bytes",
]

MAX_BATCH_REQUESTS = BATCH_MAX_REQUESTS
MAX_BATCH_BYTES = BATCH_MAX_BYTES  # the create call's body
# A caller who declared a deadline shorter than this is treated as a person waiting: batches
# "typically take between 5 minutes and 1 hour" (spec §2.12), so anything sooner goes live.
DEFAULT_LIVE_DEADLINE_S = 3600.0
_LINE_KEYS = frozenset({"custom_id", "params", "tokenomy"})
_TOKENOMY_KEYS = frozenset({"lane", "waiting", "deadline_s"})
_MAX_PROBLEMS_SHOWN = 200

Lane = Literal["batch", "live"]
LaneMode = Literal["batch", "live", "auto"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Per-batch limits (spec §4.3); parameters so tests can lower them."""

    max_requests: int = MAX_BATCH_REQUESTS
    max_bytes: int = MAX_BATCH_BYTES
    live_deadline_s: float = DEFAULT_LIVE_DEADLINE_S


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    """One request of the input file, ready to send (tokenomy's own keys removed)."""

    index: int  # 0-based position among requests: results come back in this order
    line: int  # 1-based line number in the file
    custom_id: str
    params: dict[str, Any]
    generated_id: bool
    lane: Lane
    size: int  # bytes of ``{"custom_id":…,"params":…}`` as sent in the create body

    @property
    def model(self) -> str:
        return str(self.params.get("model", ""))


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchInput:
    """A validated input file: its identity (resolved path + content hash) and its requests."""

    path: str
    content_hash: str
    items: tuple[Item, ...]
    blank_lines: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)


class BatchInputError(InputError):
    """Every problem found in an input file, one per line (``problems``), with line numbers."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        shown = problems[:_MAX_PROBLEMS_SHOWN]
        more = len(problems) - len(shown)
        lines = [f"{path}: {len(problems)} problem(s); nothing was submitted. Fix these and run again:"]
        lines += [f"  {p}" for p in shown]
        if more:
            lines.append(f"  … and {more} more")
        super().__init__("\n".join(lines))


def request_bytes(custom_id: str, params: Mapping[str, Any]) -> int:
    """Size of one entry of the create call's ``requests`` array, as JSON."""
    return len(
        json.dumps(
            {"custom_id": custom_id, "params": params}, separators=(",", ":"), ensure_ascii=False
        ).encode()
    )


def choose_lane(meta: Mapping[str, Any], mode: LaneMode, live_deadline_s: float) -> Lane:
    """The routing rule: if a person is waiting, go live; if a machine will read it later, batch it.

    Only ``--lane auto`` reads a line's declaration; ``batch`` and ``live`` send every line one way.
    A line that declares nothing is read later by a machine (it was handed to the batch command).
    """
    if mode != "auto":
        return mode
    lane = meta.get("lane")
    if lane in ("live", "batch"):
        return "live" if lane == "live" else "batch"
    waiting = meta.get("waiting")
    if waiting in ("person", "machine"):
        return "live" if waiting == "person" else "batch"
    deadline = meta.get("deadline_s")
    if isinstance(deadline, (int, float)) and not isinstance(deadline, bool):
        return "live" if deadline < live_deadline_s else "batch"
    return "batch"


def _check_meta(meta: Any) -> list[str]:
    if not isinstance(meta, Mapping):
        return ['"tokenomy" must be an object like {"lane": "live"} or {"deadline_s": 60}']
    out: list[str] = []
    unknown = sorted(set(meta) - _TOKENOMY_KEYS)
    if unknown:
        out.append(
            f'"tokenomy" has unknown key(s) {", ".join(unknown)}; the keys are deadline_s, lane, waiting'
        )
    if "lane" in meta and meta["lane"] not in ("live", "batch", "auto"):
        out.append(f'"tokenomy.lane" is {meta["lane"]!r}; use "live", "batch" or "auto"')
    if "waiting" in meta and meta["waiting"] not in ("person", "machine"):
        out.append(f'"tokenomy.waiting" is {meta["waiting"]!r}; use "person" or "machine"')
    if "deadline_s" in meta:
        d = meta["deadline_s"]
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d) or d < 0:
            out.append(f'"tokenomy.deadline_s" is {d!r}; use a number of seconds >= 0')
    return out


def check_params(params: Mapping[str, Any], lane: Lane) -> list[str]:
    """What the Messages API (and, for the batch lane, the Batches API) would refuse outright,
    in the API's words under ``params.``; the rules are ``tokenomy.validate``'s."""
    try:
        check_messages(params, BATCH, prefix="params.")
        if lane == "batch":
            check_batch_params(params, "params")
    except ApiRequestError as e:
        if e.error_type == "not_found_error":
            model = params.get("model")
            info = resolve(str(model)).info if isinstance(model, str) else None
            if info is not None and info.status == "retired":
                return [f"params.model: {model!r} is retired (since {info.retired}); choose a current model"]
            return [f"params.model: unknown model {model!r}; see `tokenomy prices` for the known ids"]
        return [e.message]
    if params.get("stream") is True:  # the live lane collects each response whole
        return ["params.stream: true is not allowed here (results are collected whole); remove it"]
    if "cache_control" in json.dumps(params):
        return _check_cache_control(params)
    return []


def _check_cache_control(params: Mapping[str, Any]) -> list[str]:
    from tokenomy.blocks import parse_request
    from tokenomy.cache import effective_breakpoints

    try:
        effective_breakpoints(parse_request(params, keep_body=False))
    except CacheControlError as e:
        return [f"params: {e.message}"]
    return []


def _read_lines(path: Path) -> tuple[bytes, list[bytes]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; give the path of a JSONL file of requests") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory; give the path of a JSONL file of requests") from None
    except OSError as e:
        raise InputError(
            f"{path}: cannot be read ({e.strerror}); check the path and its permissions"
        ) from None
    return data, data.split(b"\n")


def read_input(path: str | Path, *, limits: Limits | None = None, lane: LaneMode = "batch") -> BatchInput:
    """Read and validate a whole file; raises ``BatchInputError`` listing every problem."""
    limits = limits or Limits()
    p = Path(path)
    data, raw_lines = _read_lines(p)
    content_hash = hashlib.sha256(data).hexdigest()
    short = content_hash[:10]
    problems: list[str] = []
    items: list[Item] = []
    seen: dict[str, int] = {}
    blank = 0
    for lineno, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            blank += 1
            continue
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            reason = e.msg if isinstance(e, json.JSONDecodeError) else "not UTF-8"
            problems.append(f"line {lineno}: invalid JSON ({reason}); each line must be one JSON object")
            continue
        if not isinstance(obj, dict):
            problems.append(
                f"line {lineno}: a JSON {type(obj).__name__}, not an object; each line is one request"
            )
            continue
        line_problems, item = _read_line(obj, lineno, len(items), short, lane, limits)
        problems.extend(f"line {lineno}: {msg}" for msg in line_problems)
        if item is None:
            continue
        first = seen.get(item.custom_id)
        if first is not None:
            problems.append(
                f"line {lineno}: custom_id {item.custom_id!r} was already used on line {first}; ids must be unique"
            )
            continue
        seen[item.custom_id] = lineno
        if not line_problems:
            items.append(item)
    if not items and not problems:
        problems.append("no requests found; each line must be a JSON request")
    if problems:
        raise BatchInputError(str(p), problems)
    return BatchInput(path=str(p.resolve()), content_hash=content_hash, items=tuple(items), blank_lines=blank)


def _read_line(
    obj: dict[str, Any], lineno: int, index: int, short_hash: str, mode: LaneMode, limits: Limits
) -> tuple[list[str], Item | None]:
    problems: list[str] = []
    meta: Any = obj.get("tokenomy", {})
    api_shape = "params" in obj or "custom_id" in obj
    if api_shape:
        unknown = sorted(set(obj) - _LINE_KEYS)
        if unknown:
            problems.append(
                f"unknown key(s) {', '.join(unknown)} next to custom_id/params; a line is "
                '{"custom_id": …, "params": {…}} or a bare Messages request body'
            )
        params_raw = obj.get("params")
        if not isinstance(params_raw, dict):
            problems.append('"params" is missing or not an object; give the Messages request body there')
            params_raw = {}
        cid = obj.get("custom_id")
        generated = False
        if "custom_id" not in obj:
            cid, generated = f"line{lineno:07d}-{short_hash}", True
        elif not isinstance(cid, str) or not CUSTOM_ID_RE.match(cid):
            problems.append(
                f"custom_id {cid!r} is invalid; use 1-64 letters, digits, '-' or '_' (^[a-zA-Z0-9_-]{{1,64}}$)"
            )
            cid = None
    else:
        params_raw, cid, generated = obj, f"line{lineno:07d}-{short_hash}", True
    if isinstance(params_raw.get("tokenomy"), Mapping) and "tokenomy" not in obj:
        meta = params_raw["tokenomy"]
    problems.extend(_check_meta(meta))
    params = {k: v for k, v in params_raw.items() if k != "tokenomy"}
    lane = choose_lane(meta if isinstance(meta, Mapping) else {}, mode, limits.live_deadline_s)
    problems.extend(check_params(params, lane))
    if cid is None:
        return problems, None
    size = request_bytes(cid, params)
    if lane == "batch" and size + len(b'{"requests":[]}') > limits.max_bytes:
        problems.append(
            f"request is {size:,} bytes, over the batch size limit of {limits.max_bytes:,} bytes; "
            'shorten it or send it live with {"tokenomy": {"lane": "live"}} and --lane auto'
        )
    item = Item(
        index=index, line=lineno, custom_id=cid, params=params, generated_id=generated, lane=lane, size=size
    )
    return problems, item


def chunk_items(items: list[Item], limits: Limits) -> Iterator[list[Item]]:
    """Split requests, in order, into batches of at most ``max_requests`` and ``max_bytes``.

    The byte count is the create call's body: ``{"requests":[…]}`` with a comma between entries.
    """
    chunk: list[Item] = []
    size = len(b'{"requests":[]}')
    for item in items:
        extra = item.size + (1 if chunk else 0)
        if chunk and (len(chunk) >= limits.max_requests or size + extra > limits.max_bytes):
            yield chunk
            chunk, size = [], len(b'{"requests":[]}')
            extra = item.size
        chunk.append(item)
        size += extra
    if chunk:
        yield chunk
