"""Turning a reply and its cache result into the API's Message, its SSE events, and diagnostics.

Output tokens are counted by the same estimator as input (``tokenomy.tokens``). The SSE event
order is spec §7.4: message_start (with the cache usage), a ping, per block
content_block_start / deltas / content_block_stop, message_delta (cumulative usage),
message_stop.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tokenomy.blocks import canonical_json
from tokenomy.cache._rules import scope_model
from tokenomy.emulator._responses import Reply
from tokenomy.model import Request, Usage
from tokenomy.tokens import TOOL_USE_OVERHEAD, TokenCounter

__all__ = ["Diagnostics", "Generated", "generate", "message_body", "new_id", "sse_events"]

DELTA_CHARS = 48  # characters per text delta: small like the API's, few enough to stay cheap
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def new_id(prefix: str) -> str:
    """An id shaped like the API's (``msg_01…``, ``req_011C…``, ``toolu_01…``, ``msgbatch_01…``)."""
    raw = secrets.token_bytes(18)
    return prefix + "".join(_ALNUM[b % 62] for b in raw)


@dataclass(frozen=True, slots=True)
class Generated:
    """An assistant turn cut to ``max_tokens`` and counted."""

    content: tuple[Mapping[str, Any], ...]
    stop_reason: str
    stop_sequence: str | None
    output_tokens: int


def _block_tokens(block: Mapping[str, Any], counter: TokenCounter, tokenizer: str) -> int:
    kind = block.get("type")
    if kind == "text":
        return counter.count_text(str(block.get("text", "")), tokenizer)
    if kind in ("tool_use", "server_tool_use"):
        return (
            TOOL_USE_OVERHEAD
            + counter.count_text(str(block.get("name", "")), tokenizer)
            + counter.count_text(canonical_json(block.get("input", {})).decode(), tokenizer)
        )
    if kind == "thinking":
        return counter.count_text(str(block.get("thinking", "")), tokenizer)
    return counter.count_text(canonical_json(block).decode(), tokenizer)


def _cut_text(text: str, budget: int, counter: TokenCounter, tokenizer: str) -> str:
    """The longest word-prefix of ``text`` that fits ``budget`` tokens."""
    words = text.split(" ")
    lo, hi = 0, len(words)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if counter.count_text(" ".join(words[:mid]), tokenizer) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


def _apply_stop_sequences(content: list[Mapping[str, Any]], stops: Sequence[str]) -> str | None:
    for i, blk in enumerate(content):
        if blk.get("type") != "text":
            continue
        text = str(blk.get("text", ""))
        found = [(text.find(s), s) for s in stops if s and s in text]
        if found:
            pos, seq = min(found)
            content[i] = {**blk, "text": text[:pos]}
            del content[i + 1 :]
            return seq
    return None


def generate(reply: Reply, body: Mapping[str, Any], counter: TokenCounter, tokenizer: str) -> Generated:
    """Cut a reply at stop sequences and ``max_tokens``; count its output tokens."""
    max_tokens = body.get("max_tokens")
    limit = max_tokens if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) else 1 << 30
    if limit == 0:  # cache pre-warm: no output at all (spec §2.9)
        return Generated(content=(), stop_reason="max_tokens", stop_sequence=None, output_tokens=0)
    content: list[Mapping[str, Any]] = [dict(b) for b in reply.content]
    stops = body.get("stop_sequences")
    stop_seq = _apply_stop_sequences(content, stops) if isinstance(stops, list) else None
    out: list[Mapping[str, Any]] = []
    used = 0
    truncated = False
    for blk in content:
        n = _block_tokens(blk, counter, tokenizer)
        if used + n <= limit:
            out.append(blk)
            used += n
            continue
        truncated = True
        if blk.get("type") == "text":
            cut = _cut_text(str(blk.get("text", "")), limit - used, counter, tokenizer)
            if cut:
                out.append({**blk, "text": cut})
                used += counter.count_text(cut, tokenizer)
        break
    if truncated:
        stop_reason = "max_tokens"
        stop_seq = None
    elif stop_seq is not None:
        stop_reason = "stop_sequence"
    elif reply.stop_reason:
        stop_reason = reply.stop_reason
    else:
        stop_reason = "tool_use" if any(b.get("type") == "tool_use" for b in out) else "end_turn"
    # "output_tokens will be non-zero, even for an empty string response" (spec §7.3)
    return Generated(
        content=tuple(out), stop_reason=stop_reason, stop_sequence=stop_seq, output_tokens=max(used, 1)
    )


def message_body(
    msg_id: str, model: str, gen: Generated, usage: Usage, diagnostics: Mapping[str, Any] | None | bool
) -> dict[str, Any]:
    """The non-streaming Message (spec §7.3); ``diagnostics`` False means not requested."""
    body: dict[str, Any] = {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": list(gen.content),
        "stop_reason": gen.stop_reason,
        "stop_sequence": gen.stop_sequence,
        "stop_details": None,
        "usage": usage.to_api(),
    }
    if diagnostics is not False:
        body["diagnostics"] = diagnostics
    return body


def _event(kind: str, data: Mapping[str, Any]) -> bytes:
    return (
        b"event: " + kind.encode() + b"\ndata: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"
    )


_PING = _event("ping", {"type": "ping"})


def _chunks(text: str, size: int = DELTA_CHARS) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _block_events(index: int, blk: Mapping[str, Any]) -> list[bytes]:
    kind = blk.get("type")
    out: list[bytes] = []
    if kind == "text":
        start: Mapping[str, Any] = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": c} for c in _chunks(str(blk.get("text", "")))]
    elif kind in ("tool_use", "server_tool_use"):
        start = {"type": kind, "id": blk.get("id"), "name": blk.get("name"), "input": {}}
        partial = json.dumps(blk.get("input", {}), separators=(",", ":"), ensure_ascii=False)
        deltas = [{"type": "input_json_delta", "partial_json": ""}]
        deltas += [{"type": "input_json_delta", "partial_json": c} for c in _chunks(partial)]
    elif kind == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": c} for c in _chunks(str(blk.get("thinking", "")))]
        deltas.append({"type": "signature_delta", "signature": str(blk.get("signature", ""))})
    else:  # server-tool results and the rest arrive whole in content_block_start
        start, deltas = blk, []
    out.append(
        _event("content_block_start", {"type": "content_block_start", "index": index, "content_block": start})
    )
    for d in deltas:
        out.append(_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}))
    out.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    return out


def sse_events(message: Mapping[str, Any]) -> list[bytes]:
    """The whole event sequence for one Message, each event a separate byte string."""
    usage = message["usage"]
    start_msg = {**message, "content": [], "stop_reason": None, "stop_sequence": None, "stop_details": None}
    start_msg["usage"] = {**usage, "output_tokens": min(1, usage["output_tokens"])}
    events = [_event("message_start", {"type": "message_start", "message": start_msg})]
    content = message["content"]
    for i, blk in enumerate(content):
        block_events = _block_events(i, blk)
        events.extend(block_events[:1])
        if i == 0:
            events.append(_PING)
        events.extend(block_events[1:])
    if not content:
        events.append(_PING)
    final_usage = {
        "input_tokens": usage["input_tokens"],
        "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
        "cache_read_input_tokens": usage["cache_read_input_tokens"],
        "output_tokens": usage["output_tokens"],
    }
    delta = {
        "stop_reason": message["stop_reason"],
        "stop_sequence": message["stop_sequence"],
        "stop_details": None,
    }
    events.append(_event("message_delta", {"type": "message_delta", "delta": delta, "usage": final_usage}))
    events.append(_event("message_stop", {"type": "message_stop"}))
    return events


PING_EVENT = _PING


def error_event(error_type: str, message: str) -> bytes:
    return _event("error", {"type": "error", "error": {"type": error_type, "message": message}})


# -- cache diagnostics (spec §2.10) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Fingerprint:
    workspace: str
    model: str
    tools: bytes
    system: bytes
    params: bytes
    message_hashes: tuple[bytes, ...]
    message_tokens: tuple[int, ...]  # prompt tokens through each message block
    before_system: int  # prompt tokens before the first system block
    before_messages: int  # prompt tokens before the first message block
    total: int


def _fingerprint(request: Request, workspace: str) -> _Fingerprint:
    tools = hashlib.blake2b(digest_size=16)
    system = hashlib.blake2b(digest_size=16)
    hashes: list[bytes] = []
    tokens: list[int] = []
    run = request.overhead_tokens
    before = before_system = run
    for b in request.blocks:
        run += b.tokens
        if b.section == "tools":
            tools.update(b.data + b"\x00")
            before = before_system = run
        elif b.section == "system":
            system.update(b.data + b"\x00")
            before = run
        else:
            hashes.append(b.prefix_hash)
            tokens.append(run)
    params = request.params.get("system", b"") + b"|" + request.params.get("messages", b"")
    return _Fingerprint(
        workspace=workspace,
        model=scope_model(request.model),
        tools=tools.digest(),
        system=system.digest(),
        params=params,
        message_hashes=tuple(hashes),
        message_tokens=tuple(tokens),
        before_system=before_system,
        before_messages=before,
        total=request.total_tokens,
    )


def _common_prefix(a: Sequence[bytes], b: Sequence[bytes]) -> int:
    """Blocks the two share from the start; prefix hashes are cumulative, so bisect."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[mid - 1] == b[mid - 1]:
            lo = mid
        else:
            hi = mid - 1
    return lo


class Diagnostics:
    """Fingerprints of recent responses, keyed by message id, for ``cache_miss_reason``.

    Only requests that opt in (a ``diagnostics`` field) are fingerprinted, as the API stores
    them only for a while: this keeps the newest ``capacity``.
    """

    def __init__(self, capacity: int = 50_000) -> None:
        self.capacity = capacity
        self._store: OrderedDict[str, _Fingerprint] = OrderedDict()

    def diagnose(self, previous_id: Any, request: Request, workspace: str) -> Mapping[str, Any] | None:
        """The response's ``diagnostics``: None on a first turn or when nothing diverged."""
        if previous_id is None:
            return None
        prev = self._store.get(str(previous_id))
        if prev is None or prev.workspace != workspace:
            return {"cache_miss_reason": {"type": "previous_message_not_found"}}
        cur = _fingerprint(request, workspace)
        if cur.model != prev.model:
            return _reason("model_changed", prev.total)
        if cur.system != prev.system:
            return _reason("system_changed", prev.total - prev.before_system)
        if cur.tools != prev.tools:
            return _reason("tools_changed", prev.total)
        if cur.params != prev.params:
            return {"cache_miss_reason": {"type": "unavailable"}}
        common = _common_prefix(prev.message_hashes, cur.message_hashes)
        if common < len(prev.message_hashes):
            through = prev.message_tokens[common - 1] if common else prev.before_messages
            return _reason("messages_changed", prev.total - through)
        return None

    def remember(self, msg_id: str, request: Request, workspace: str) -> None:
        self._store[msg_id] = _fingerprint(request, workspace)
        if len(self._store) > self.capacity:
            self._store.popitem(last=False)


def _reason(kind: str, missed: int) -> Mapping[str, Any]:
    return {"cache_miss_reason": {"type": kind, "cache_missed_input_tokens": max(int(missed), 0)}}
