"""Claude Code transcripts (``~/.claude/projects/<project>/<session>.jsonl``) → ``Run``s.

Why it looks the way it does:

- One API response is written as several lines (one per content block), each repeating
  ``message.id``, ``requestId`` and ``usage``. Each response is counted once, keyed on
  ``(message.id, requestId)`` (or whichever exists); its largest ``output_tokens`` is kept, because
  most lines hold the stream-start value and only some later line the final count.
- Speed: each line is decoded by a msgspec Struct that declares only the fields used, so the rest
  of a line (tool output, progress payloads) is skipped in C. A scan yields a ``FileState`` (the
  per-response aggregates so far plus where it stopped), which ``_index`` stores so a re-run reads
  only appended bytes, and which several processes can compute in parallel.
- Timestamps are when Claude Code *wrote* the response's first line (the first streamed block
  arrived), not when the request was sent: ``Turn.started_at`` is a little late by the time to
  first token.
- Exactness: cache read/write are exact. When no line of a response carries a ``stop_reason`` and
  ``output_tokens`` never grew past its first value, the transcript kept only the stream-start
  usage, so input and output are marked ``lower_bound`` (never raised by guesswork).
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, cast

import msgspec

from tokenomy.model import Exactness, Run, Turn, Usage
from tokenomy.sources._lines import MAX_LINE_BYTES, LineStats, iter_blocks, iter_lines
from tokenomy.sources._sift import sift
from tokenomy.sources._summary import PARSER_VERSION, is_exact, run_identity, run_meta, service_tier
from tokenomy.tokens import (
    BLOCK_OVERHEAD,
    DEFAULT_COUNTER,
    IMAGE_TOKENS,
    MESSAGE_OVERHEAD,
    V2_FACTOR,
    tokenizer_for,
)

SOURCE = "claude_code"
HEAD_BYTES = 4096

# ---- the typed line shape: only what is used is declared; everything else is skipped in C ----


class _CacheCreation(msgspec.Struct):
    ephemeral_5m_input_tokens: int | None = None
    ephemeral_1h_input_tokens: int | None = None


class _ServerToolUse(msgspec.Struct):
    web_search_requests: int | None = None


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation: _CacheCreation | None = None
    service_tier: str | None = None
    inference_geo: str | None = None
    server_tool_use: _ServerToolUse | None = None


class _Message(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    stop_reason: str | None = None
    usage: _Usage | None = None


class _MessageWithContent(_Message):
    content: msgspec.Raw = msgspec.Raw()


class _Line(msgspec.Struct):
    type: str | None = None
    subtype: str | None = None
    timestamp: str | None = None
    sessionId: str | None = None
    agentId: str | None = None
    version: str | None = None
    cwd: str | None = None
    gitBranch: str | None = None
    isSidechain: bool | None = None
    isVisibleInTranscriptOnly: bool | None = None
    requestId: str | None = None
    summary: str | None = None
    message: _Message | None = None


class _LineWithContent(_Line):
    message: _MessageWithContent | None = None


_DECODER = msgspec.json.Decoder(_Line)
_DECODER_CONTENT = msgspec.json.Decoder(_LineWithContent)


class _Part(msgspec.Struct):
    type: str | None = None
    text: str | None = None
    thinking: str | None = None
    name: str | None = None
    input: msgspec.Raw = msgspec.Raw()
    content: msgspec.Raw = msgspec.Raw()


_CONTENT_DECODER = msgspec.json.Decoder(str | list[_Part] | None)

# ---- what a scan keeps: msgpack-encoded in the index and between processes ----


class Resp(msgspec.Struct, array_like=True):
    """One deduplicated API response of a file, as aggregated over its lines."""

    line_key: str  # the key of a response with neither id (its line's position); else "": see ident()
    started_at: float | None
    model: str
    request_id: str | None
    message_id: str | None
    input_tokens: int
    cache_write_5m: int
    cache_write_1h: int
    cache_read: int
    output_tokens: int
    first_output: int
    service_tier: str | None
    inference_geo: str | None
    web_search: int
    final: bool  # some line carried a stop_reason: its usage is the final one
    sidechain: bool
    compaction_before: bool
    visible: int  # legacy-tokenizer estimate of visible messages sent so far; -1 if not computed

    def ident(self) -> str:
        """The key the response is counted once by: its ids, or its line's position. Not stored
        when the ids make it (most of a state's bytes would be the ids twice over)."""
        return self.line_key or _ids_key(self.message_id, self.request_id)


class FileState(msgspec.Struct):
    """The result of scanning one file up to ``offset``; enough to resume from there."""

    path: str
    size: int
    mtime_ns: int
    offset: int
    head_len: int
    head_hash: bytes
    with_visible: bool
    parser: int = PARSER_VERSION
    session_id: str | None = None
    agent_id: str | None = None
    version: str | None = None
    cwd: str | None = None
    git_branch: str | None = None
    title: str | None = None
    skipped: int = 0
    synthetic: int = 0
    pending_compact: bool = False
    running_visible: int = 0
    running_visible_side: int = 0
    resps: list[Resp] = msgspec.field(default_factory=list)
    first_ts: float | None = None
    lines: int = 0  # lines decoded
    tail_skipped: int = 0  # an unterminated last line that does not decode (yet): not consumed


STATE_ENCODER = msgspec.msgpack.Encoder()
STATE_DECODER = msgspec.msgpack.Decoder(FileState)


def head_hash(path: str, length: int) -> bytes:
    with open(path, "rb") as fh:
        return hashlib.blake2b(fh.read(length), digest_size=16).digest()


def _epoch(ts: str | None) -> float | None:
    if not ts:
        return None
    try:
        return datetime.fromisoformat(ts).timestamp()
    except ValueError:
        return None


def _count(text: str) -> int:
    return DEFAULT_COUNTER.count_text(text)


def _parts_tokens(raw: msgspec.Raw) -> int:
    """Legacy-tokenizer estimate of a message's ``content`` (string or list of blocks)."""
    if not raw:
        return 0
    try:
        content = _CONTENT_DECODER.decode(raw)
    except msgspec.DecodeError:
        return 0
    if content is None:
        return 0
    if isinstance(content, str):
        return BLOCK_OVERHEAD + _count(content)
    n = 0
    for p in content:
        kind = p.type or "text"
        if p.text is not None:
            n += BLOCK_OVERHEAD + _count(p.text)
        elif p.thinking is not None:
            n += BLOCK_OVERHEAD + _count(p.thinking)
        elif kind in ("image", "document"):
            n += IMAGE_TOKENS
        if p.name:
            n += _count(p.name)
        if p.input:
            n += _count(bytes(p.input).decode("utf-8", "replace"))
        if p.content:
            n += _parts_tokens(p.content)
    return n


def new_state(path: str, size: int, mtime_ns: int, with_visible: bool) -> FileState:
    return FileState(
        path=path,
        size=size,
        mtime_ns=mtime_ns,
        offset=0,
        head_len=0,
        head_hash=b"",
        with_visible=with_visible,
    )


def scan_file(state: FileState, *, max_line_bytes: int = MAX_LINE_BYTES) -> tuple[FileState, list[str]]:
    """Read ``state.path`` from ``state.offset`` to EOF and fold every line into ``state``; return
    it with its responses' ``ident()`` in order (the fold's keys: ``summarize`` hashes them).

    Lines are sifted (``_sift``: progress lines dropped; unless their content is wanted, user
    lines cut to their prefix and assistant content blocks left out) and decoded a block at a
    time (``decode_lines``: one C call per few megabytes); a block holding a line that does not
    decode is decoded again line by line, whole, so each bad line is counted and skipped on its own. A line is taken whole or not at all (one holding two objects
    back to back, two writes that lost their newline, yields both). A complete JSON object on an
    unterminated last line is taken; an unterminated line that does not decode is counted as
    skipped for now and not consumed, so a re-run re-reads it once the writer has finished it.
    """
    with_visible = state.with_visible
    decoder = _DECODER_CONTENT if with_visible else _DECODER
    keys = {r.ident(): i for i, r in enumerate(state.resps)}
    stats = LineStats()
    st = state
    st.tail_skipped = 0
    pos = _Pos()
    with open(st.path, "rb") as fh:
        for base, block in iter_blocks(fh, start=st.offset, max_line_bytes=max_line_bytes, stats=stats):
            values: list[_Line] | None
            sifted, dropped = sift(block, with_visible)
            try:
                values = cast("list[_Line]", decoder.decode_lines(sifted))
            except (msgspec.DecodeError, UnicodeDecodeError):
                values = None
            if values is not None:
                pos.block, pos.base = block, base
                _fold_lines(st, values, keys, pos, with_visible)
                st.lines += len(values) + dropped
                continue
            for off, raw in iter_lines(io.BytesIO(block), max_line_bytes=max_line_bytes, stats=LineStats()):
                _fold_raw(st, decoder, raw, keys, pos.at(base + off), with_visible)
        if stats.tail:
            try:
                tail = cast("list[_Line]", decoder.decode_lines(stats.tail))
            except (msgspec.DecodeError, UnicodeDecodeError):
                st.tail_skipped = 1
            else:
                st.lines += len(tail)
                _fold_lines(st, tail, keys, pos.at(stats.end_offset), with_visible)
                stats.end_offset += len(stats.tail)
        st.skipped += stats.oversized
        st.offset = stats.end_offset
        fh.seek(0)
        head = fh.read(HEAD_BYTES)
    if st.head_len == 0 or len(head) > st.head_len:
        st.head_len = len(head)
        st.head_hash = hashlib.blake2b(head, digest_size=16).digest()
    idents = list(keys)
    if len(idents) != len(st.resps):  # never, as the fold keys each response once; but cheap to keep honest
        idents = [r.ident() for r in st.resps]
    return st, idents


class _Pos:
    """Where the line being folded is; only a response without ids asks (its key must be unique).

    Line by line it is the line's offset; in a block it is the block's offset plus the value's
    index, which stays inside the block's byte range, so keys never collide within a file.
    """

    __slots__ = ("base", "block", "index", "offset")

    def __init__(self) -> None:
        self.block = b""
        self.base = 0
        self.index = 0
        self.offset = 0  # the exact offset, when block is empty; else the index-th value of block

    def at(self, offset: int) -> _Pos:
        self.offset = offset
        self.block = b""
        return self

    def resolve(self) -> int:
        return self.offset if not self.block else self.base + self.index


def _fold_raw(
    st: FileState, decoder: msgspec.json.Decoder[Any], raw: bytes, keys: dict[str, int], pos: _Pos, vis: bool
) -> None:
    try:
        lines = decoder.decode_lines(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        st.skipped += 1
        return
    st.lines += len(lines)
    _fold_lines(st, lines, keys, pos, vis)


def _fold_lines(
    st: FileState, lines: list[_Line], keys: dict[str, int], pos: _Pos, with_visible: bool
) -> None:
    """Apply decoded lines to the file state, in order.

    The hot loop of a scan: one test for most lines, and for an assistant line that repeats a
    response already seen (most do: one per content block) a lookup and two comparisons.
    """
    _fold_meta(st, lines)
    resps = st.resps
    get = keys.get
    for i, line in enumerate(lines):
        kind = line.type
        if kind == "assistant":
            msg = line.message
            if msg is None:
                continue
            usage = msg.usage
            if msg.model == "<synthetic>":
                st.synthetic += 1
            elif usage is not None:
                # _ids_key, inlined: this runs once per assistant line
                mid, rid = msg.id, line.requestId
                key = f"{mid}:{rid}" if mid and rid else (mid or rid or "")
                line_key = ""
                if not key:
                    pos.index = i
                    key = line_key = f"line:{st.path}:{pos.resolve()}"
                idx = get(key)
                if idx is None:
                    keys[key] = len(resps)
                    resps.append(
                        _new_resp(st, line_key, line, msg, usage, bool(line.isSidechain), with_visible)
                    )
                    st.pending_compact = False
                else:
                    r = resps[idx]
                    out = usage.output_tokens
                    if out is not None and out > r.output_tokens:
                        r.output_tokens = out
                    if msg.stop_reason is not None:
                        r.final = True
            if with_visible and not line.isVisibleInTranscriptOnly:
                _add_visible(st, line, bool(line.isSidechain))
        elif kind == "user":
            if with_visible:
                _fold_other(st, line, with_visible)
        elif kind == "system" or kind == "summary":
            _fold_other(st, line, with_visible)


def _fold_meta(st: FileState, lines: Sequence[_Line]) -> None:
    """Version and branch as last written; session, agent and cwd as first written (not progress lines)."""
    for attr, name in (("version", "version"), ("gitBranch", "git_branch")):
        for line in reversed(lines):
            value = getattr(line, attr)
            if value and line.type != "progress":
                setattr(st, name, value)
                break
    if st.session_id is None:
        st.session_id = next((x.sessionId for x in lines if x.sessionId and x.type != "progress"), None)
    if st.agent_id is None:
        st.agent_id = next((x.agentId for x in lines if x.agentId and x.type != "progress"), None)
    if st.cwd is None:
        st.cwd = next((x.cwd for x in lines if x.cwd and x.type != "progress"), None)


def _fold_other(st: FileState, line: _Line, with_visible: bool) -> None:
    kind = line.type
    if kind == "user":
        if with_visible and not line.isVisibleInTranscriptOnly:
            _add_visible(st, line, bool(line.isSidechain))
    elif kind == "system":
        if line.subtype == "compact_boundary":
            st.pending_compact = True
            if line.isSidechain:
                st.running_visible_side = 0
            else:
                st.running_visible = 0
    elif kind == "summary" and line.summary:
        st.title = line.summary


def _ids_key(message_id: str | None, request_id: str | None) -> str:
    """A response's key from its ids ("" when it has neither)."""
    if message_id and request_id:
        return f"{message_id}:{request_id}"
    return message_id or request_id or ""


def _new_resp(
    st: FileState, line_key: str, line: _Line, msg: _Message, u: _Usage, side: bool, with_visible: bool
) -> Resp:
    total_write = u.cache_creation_input_tokens or 0
    split = u.cache_creation
    if split is not None and (
        split.ephemeral_5m_input_tokens is not None or split.ephemeral_1h_input_tokens is not None
    ):
        w1 = split.ephemeral_1h_input_tokens or 0
        w5 = split.ephemeral_5m_input_tokens or 0
        if total_write and w5 + w1 != total_write:
            w5 = max(total_write - w1, 0)
    else:
        w5, w1 = total_write, 0
    started = _epoch(line.timestamp)
    if started is not None and (st.first_ts is None or started < st.first_ts):
        st.first_ts = started
    out = u.output_tokens or 0
    visible = -1
    if with_visible:
        visible = st.running_visible_side if side else st.running_visible
    sto = u.server_tool_use
    return Resp(  # positional, in field order: this runs once per response
        line_key,
        started,
        msg.model or "",
        line.requestId,
        msg.id,
        u.input_tokens or 0,
        w5,
        w1,
        u.cache_read_input_tokens or 0,
        out,
        out,
        u.service_tier,
        u.inference_geo,
        (sto.web_search_requests or 0) if sto is not None else 0,
        msg.stop_reason is not None,
        side,
        st.pending_compact,
        visible,
    )


def _add_visible(st: FileState, line: _Line, side: bool) -> None:
    msg = line.message
    if not isinstance(msg, _MessageWithContent):
        return
    n = _parts_tokens(msg.content)
    if line.type == "user" or msg.usage is None:
        n += MESSAGE_OVERHEAD
    if side:
        st.running_visible_side += n
    else:
        st.running_visible += n


# ---- assembling runs ----

_EXACT: Mapping[str, Exactness] = MappingProxyType(
    {"input": "exact", "cache_write": "exact", "cache_read": "exact", "output": "exact"}
)
_LOWER: Mapping[str, Exactness] = MappingProxyType(
    {"input": "lower_bound", "cache_write": "exact", "cache_read": "exact", "output": "lower_bound"}
)
_NO_META: Mapping[str, Any] = MappingProxyType({})


def build_runs(states: Iterable[FileState], *, with_requests: bool) -> tuple[list[Run], dict[str, int]]:
    """Runs from scanned files, each response counted once across all files.

    The same response can appear in several files (a resumed session copies the earlier
    conversation); it is kept in the file where it appears first by time. Returns the runs and
    counters for the notes.
    """
    ordered = sorted(states, key=lambda s: (s.first_ts if s.first_ts is not None else math.inf, s.path))
    best: dict[str, Resp] = {}
    owner: dict[str, int] = {}
    dupes = 0
    for i, st in enumerate(ordered):
        for r in st.resps:
            key = r.ident()
            prev = best.get(key)
            if prev is None:
                best[key] = r
                owner[key] = i
            else:
                dupes += 1
                if r.output_tokens > prev.output_tokens:
                    prev.output_tokens = r.output_tokens
                prev.final = prev.final or r.final
    counters = {"duplicates": dupes, "lower_bound": 0, "responses": 0, "synthetic": 0}
    runs: list[Run] = []
    for i, st in enumerate(ordered):
        counters["synthetic"] += st.synthetic
        ident = run_identity(st.path, st.session_id, st.cwd)
        kind, run_id, parent_id = ident.kind, ident.run_id, ident.parent_id
        main: list[Turn] = []
        side: list[Turn] = []
        for r in st.resps:
            if owner.get(r.ident()) != i:
                continue
            turn = _turn(r, with_requests, kind == "compaction")
            if turn.quality is _LOWER:
                counters["lower_bound"] += 1
            counters["responses"] += 1
            (side if r.sidechain and kind == "session" else main).append(turn)
        meta = run_meta(st.version, st.cwd, st.git_branch, st.agent_id)
        project = ident.project
        if main:
            runs.append(
                Run(
                    run_id=run_id,
                    turns=tuple(main),
                    source=SOURCE,
                    kind=kind,
                    parent_id=parent_id,
                    project=project,
                    title=st.title,
                    path=st.path,
                    meta=meta,
                )
            )
        if side:
            runs.append(
                Run(
                    run_id=ident.side_id,
                    turns=tuple(side),
                    source=SOURCE,
                    kind="subagent",
                    parent_id=run_id,
                    project=project,
                    path=st.path,
                    meta=meta,
                )
            )
    return runs, counters


def _turn(r: Resp, with_requests: bool, is_compaction: bool) -> Turn:
    quality = _EXACT if is_exact(r) else _LOWER
    meta = _NO_META
    if with_requests and r.visible >= 0:
        visible = r.visible
        if tokenizer_for(r.model) == "v2":
            visible = math.ceil(visible * V2_FACTOR)
        meta = {"visible_tokens": visible}
    tier = service_tier(r)
    return Turn(
        model=r.model,
        usage=Usage(
            input_tokens=r.input_tokens,
            cache_write_5m=r.cache_write_5m,
            cache_write_1h=r.cache_write_1h,
            cache_read=r.cache_read,
            output_tokens=r.output_tokens,
            service_tier=tier,  # type: ignore[arg-type]
            inference_geo=r.inference_geo,
            web_search_requests=r.web_search,
        ),
        started_at=r.started_at,
        request_id=r.request_id,
        message_id=r.message_id,
        compaction_before=r.compaction_before,
        is_compaction=is_compaction,
        quality=quality,
        meta=meta,
    )
