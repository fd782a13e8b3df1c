"""Turn a Messages API body into a ``Request``: blocks in cache-prefix order.

What counts is what the model sees, not the HTTP bytes: a string ``content`` and a single text
block are the same prompt, JSON whitespace is not part of it, ``cache_control`` markers are not
part of it; key order *inside* tool inputs and tool schemas is rendered, so it is kept.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import msgspec

from tokenomy.model import TTL, Block, Request, Section
from tokenomy.pricing import model_info
from tokenomy.tokens import (
    BLOCK_OVERHEAD,
    DEFAULT_COUNTER,
    IMAGE_TOKENS,
    TOOL_DEF_OVERHEAD,
    TOOL_RESULT_OVERHEAD,
    TOOL_USE_OVERHEAD,
    TokenCounter,
    tokenizer_for,
)

# Blocks that may not carry cache_control (spec §2.2); they still belong to the prefix.
_UNCACHEABLE_KINDS = frozenset(
    {"thinking", "redacted_thinking", "thinking:dropped", "redacted_thinking:dropped"}
)
_RUN_KINDS = frozenset({"tool_use", "tool_result"})
_IMAGE_KINDS = frozenset({"image", "document"})
_HASH_SIZE = 16
# (section, kind, path, canonical bytes, tokens, ttl, role) of one block before hashing
_Raw = tuple[Section, str, tuple[str | int, ...], bytes, int, "TTL | None", str]


_ENCODER = msgspec.json.Encoder()


def canonical_json(value: Any) -> bytes:
    """Compact UTF-8 JSON with key order kept: key order is rendered into the prompt, whitespace
    is not. (msgspec: several times faster than ``json.dumps`` on large system prompts.)"""
    try:
        return _ENCODER.encode(value)
    except (TypeError, msgspec.EncodeError):  # not JSON-shaped (a parsed body never is): be lenient
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


_VERSION = re.compile(r"claude-(?:(\d+)-(\d+)-(\w+)|(\w+)-(\d+)(?:-(\d)(?!\d))?)")


@lru_cache(maxsize=256)
def keeps_prior_thinking(model: str) -> bool:
    """Whether thinking blocks of earlier assistant turns stay in the prompt (spec §3.8).

    "only the last turn on earlier Opus/Sonnet models and all Haiku models; all turns by default
    on Opus 4.5+ and Sonnet 4.6+" — and on every newer family (Fable, Mythos).
    """
    m = _VERSION.search(model)
    if m is None:
        return True
    if m.group(1):  # claude-3-7-sonnet style
        family, version = m.group(3), (int(m.group(1)), int(m.group(2)))
    else:
        family, version = m.group(4), (int(m.group(5)), int(m.group(6) or 0))
    if family == "haiku":
        return False
    if family == "opus":
        return version >= (4, 5)
    if family == "sonnet":
        return version >= (4, 6)
    return True


def _strip_cache_control(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The block without its marker, top-level keys sorted: a block's own fields (``type``,
    ``id``, ``name``, ``input``) are not rendered in the order a client serialised them, while
    the order *inside* ``input`` and ``input_schema`` is, and is kept."""
    return {k: obj[k] for k in sorted(obj) if k != "cache_control"}


def _ttl_of(obj: Any) -> TTL | None:
    if not isinstance(obj, Mapping):
        return None
    cc = obj.get("cache_control")
    if not isinstance(cc, Mapping):
        return None
    return "1h" if cc.get("ttl") == "1h" else "5m"


def _text_of(value: Any) -> str:
    """All text inside a block, for counting: strings, and JSON for everything else."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def block_canonical(block: Mapping[str, Any]) -> tuple[str, bytes]:
    """The kind and canonical bytes of one content block."""
    kind = str(block.get("type", "text"))
    if kind == "text":
        text = block.get("text", "")
        cit = block.get("citations")
        payload = {"text": text, "citations": cit} if cit else {"text": text}
        return kind, canonical_json(payload)
    return kind, canonical_json(_strip_cache_control(block))


def _count_block(kind: str, block: Mapping[str, Any], counter: TokenCounter, tokenizer: str) -> int:
    if kind == "text":
        return BLOCK_OVERHEAD + counter.count_text(str(block.get("text", "")), tokenizer)
    if kind in _IMAGE_KINDS:
        src = block.get("source")
        if kind == "document" and isinstance(src, Mapping) and src.get("type") == "text":
            return BLOCK_OVERHEAD + counter.count_text(str(src.get("data", "")), tokenizer)
        return IMAGE_TOKENS
    if kind == "tool_use" or kind == "server_tool_use":
        return (
            TOOL_USE_OVERHEAD
            + counter.count_text(str(block.get("name", "")), tokenizer)
            + counter.count_text(_text_of(block.get("input", {})), tokenizer)
        )
    if kind == "tool_result" or kind.endswith("_tool_result"):
        content = block.get("content", "")
        if isinstance(content, list):
            n = 0
            for part in content:
                if isinstance(part, Mapping):
                    pk = str(part.get("type", "text"))
                    n += _count_block(pk, part, counter, tokenizer)
            return TOOL_RESULT_OVERHEAD + n
        return TOOL_RESULT_OVERHEAD + counter.count_text(_text_of(content), tokenizer)
    if kind in ("thinking", "redacted_thinking"):
        return BLOCK_OVERHEAD + counter.count_text(
            str(block.get("thinking", block.get("data", ""))), tokenizer
        )
    return BLOCK_OVERHEAD + counter.count_text(_text_of(_strip_cache_control(block)), tokenizer)


def _count_tool(tool: Mapping[str, Any], counter: TokenCounter, tokenizer: str) -> int:
    if tool.get("defer_loading") is True:
        return 0  # not rendered until tool search discovers it (spec §2.7, deferred tools)
    return TOOL_DEF_OVERHEAD + counter.count_text(_text_of(_strip_cache_control(tool)), tokenizer)


def _params(
    body: Mapping[str, Any], betas: Sequence[str], has_images: bool, model: str
) -> dict[Section, bytes]:
    """Prompt-affecting parameters per cache level (spec §2.7).

    The thinking row of §2.7 is model-specific; the documented reading (PC-May26) invalidates
    only messages, which is what this does. Spelling out a default (``tool_choice`` auto,
    ``thinking`` disabled, the model's default effort) is the same as omitting it.
    """
    tool_choice = body.get("tool_choice")
    if tool_choice == {"type": "auto"}:
        tool_choice = None
    thinking = body.get("thinking")
    if thinking == {"type": "disabled"}:
        thinking = None
    output_config = body.get("output_config")
    effort = output_config.get("effort") if isinstance(output_config, Mapping) else None
    if effort is not None:
        info = model_info(model)
        if info is not None and effort == info.default_effort:
            effort = None
    fmt = output_config.get("format") if isinstance(output_config, Mapping) else None
    system_level = {"speed": body.get("speed") if body.get("speed") != "standard" else None}
    messages_level = {
        "tool_choice": tool_choice,
        "thinking": thinking,
        "effort": effort,
        "format": fmt if fmt is not None else body.get("output_format"),
        "context_management": body.get("context_management"),
        "images": has_images,
        "betas": sorted(b for b in betas if b),
    }
    return {
        "tools": b"",
        "system": canonical_json(system_level),
        "messages": canonical_json(messages_level),
    }


def parse_request(
    body: Mapping[str, Any],
    *,
    counter: TokenCounter | None = None,
    betas: Sequence[str] = (),
    keep_body: bool = True,
) -> Request:
    """Parse a Messages API body (assumed structurally valid) into a ``Request``.

    Malformed parts are skipped rather than raised on: validation with the API's own messages
    is the emulator's and gateway's job (``tokenomy.validate``).
    """
    counter = counter or DEFAULT_COUNTER
    model = str(body.get("model", ""))
    tokenizer = tokenizer_for(model)
    raw: list[_Raw] = []

    tools = body.get("tools")
    if isinstance(tools, list):
        for i, tool in enumerate(tools):
            if isinstance(tool, Mapping):
                data = canonical_json(_strip_cache_control(tool))
                raw.append(
                    (
                        "tools",
                        "tool",
                        ("tools", i),
                        data,
                        _count_tool(tool, counter, tokenizer),
                        _ttl_of(tool),
                        "",
                    )
                )

    system = body.get("system")
    if isinstance(system, str):
        if system:
            raw.append(
                (
                    "system",
                    "text",
                    ("system", 0),
                    canonical_json({"text": system}),
                    BLOCK_OVERHEAD + counter.count_text(system, tokenizer),
                    None,
                    "",
                )
            )
    elif isinstance(system, list):
        for i, blk in enumerate(system):
            if isinstance(blk, Mapping):
                kind, data = block_canonical(blk)
                raw.append(
                    (
                        "system",
                        kind,
                        ("system", i),
                        data,
                        _count_block(kind, blk, counter, tokenizer),
                        _ttl_of(blk),
                        "",
                    )
                )

    has_images, n_messages = _message_blocks(body.get("messages"), model, counter, tokenizer, raw)

    blocks: list[Block] = []
    h = hashlib.blake2b(digest_size=_HASH_SIZE)
    position = -1
    prev_kind = ""
    for idx, (section, kind, path, data, tokens, ttl, role) in enumerate(raw):
        if not (kind in _RUN_KINDS and kind == prev_kind):
            position += 1
        prev_kind = kind
        h.update(section.encode())
        h.update(b"\x00")
        h.update(role.encode())
        h.update(b"\x00")
        h.update(kind.encode())
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
        blocks.append(
            Block(
                index=idx,
                section=section,
                kind=kind,
                path=path,
                data=data,
                tokens=tokens,
                position=position,
                prefix_hash=h.copy().digest(),
                cache_ttl=ttl,
                cacheable=kind not in _UNCACHEABLE_KINDS and not (kind == "text" and data == b'{"text":""}'),
            )
        )

    tc = body.get("tool_choice")
    forced = isinstance(tc, Mapping) and tc.get("type") in ("any", "tool")
    thinking = body.get("thinking")
    output_config = body.get("output_config")
    overhead = counter.request_overhead(
        model,
        has_tools=bool(tools),
        forced_tool_choice=forced,
        n_messages=n_messages,
        thinking=isinstance(thinking, Mapping) and thinking.get("type") in ("enabled", "adaptive"),
        output_format=bool(
            (isinstance(output_config, Mapping) and output_config.get("format")) or body.get("output_format")
        ),
    )
    max_tokens = body.get("max_tokens")
    return Request(
        model=model,
        blocks=tuple(blocks),
        overhead_tokens=overhead,
        params=_params(body, betas, has_images, model),
        auto_cache_ttl=_ttl_of(body),
        max_tokens=max_tokens if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) else None,
        stream=body.get("stream") is True,
        body=body if keep_body else None,
    )


def _opens_turn(msg: Any) -> bool:
    """A user message that starts a new turn: text or media, not only tool results."""
    if not isinstance(msg, Mapping) or msg.get("role") != "user":
        return False
    content = msg.get("content")
    if not isinstance(content, list):
        return True
    return any(not (isinstance(b, Mapping) and b.get("type") == "tool_result") for b in content)


def _message_blocks(
    messages: Any, model: str, counter: TokenCounter, tokenizer: str, raw: list[_Raw]
) -> tuple[bool, int]:
    """Append the message content blocks to ``raw``; return (has images, message count)."""
    has_images = False
    n_messages = 0
    if not isinstance(messages, list):
        return has_images, n_messages
    # Thinking of earlier turns is dropped from the prompt on some models (spec §3.8); the
    # current turn (the assistant messages since the last user message that is more than
    # tool results: one tool-use loop) keeps its thinking.
    turn_start = max((i for i, m in enumerate(messages) if _opens_turn(m)), default=-1)
    strip_thinking = not keeps_prior_thinking(model)
    for mi, msg in enumerate(messages):
        if not isinstance(msg, Mapping):
            continue
        n_messages += 1
        role = str(msg.get("role", ""))
        content = msg.get("content")
        if isinstance(content, str):
            data = canonical_json({"text": content})
            raw.append(
                (
                    "messages",
                    "text",
                    ("messages", mi, "content", 0),
                    data,
                    BLOCK_OVERHEAD + counter.count_text(content, tokenizer),
                    None,
                    role,
                )
            )
        elif isinstance(content, list):
            for ci, blk in enumerate(content):
                if not isinstance(blk, Mapping):
                    continue
                kind, data = block_canonical(blk)
                has_images = has_images or kind in _IMAGE_KINDS or _has_image(blk)
                dropped = strip_thinking and kind in _UNCACHEABLE_KINDS and mi < turn_start
                if dropped:  # not in the prompt: what follows it no longer matches (spec §2.7)
                    kind, data = kind + ":dropped", b""
                raw.append(
                    (
                        "messages",
                        kind,
                        ("messages", mi, "content", ci),
                        data,
                        0 if dropped else _count_block(kind, blk, counter, tokenizer),
                        _ttl_of(blk),
                        role,
                    )
                )
    return has_images, n_messages


def _has_image(block: Mapping[str, Any]) -> bool:
    content = block.get("content")
    if isinstance(content, list):
        return any(isinstance(p, Mapping) and p.get("type") in _IMAGE_KINDS for p in content)
    return False


def scale_to_total(request: Request, total: int) -> Request:
    """Spread an exact recorded prompt total over the blocks, keeping their proportions.

    Recorded usage always wins over estimates: after this, ``request.total_tokens == total``.
    """
    est = request.total_tokens
    if total <= 0 or est <= 0 or total == est:
        return request
    factor = total / est
    new_blocks: list[Block] = []
    acc_est = request.overhead_tokens
    acc_new = round(request.overhead_tokens * factor)
    overhead = acc_new
    for b in request.blocks:
        acc_est += b.tokens
        target = round(acc_est * factor)
        new_blocks.append(_replace_tokens(b, target - acc_new))
        acc_new = target
    if new_blocks:
        last = new_blocks[-1]
        new_blocks[-1] = _replace_tokens(last, last.tokens + total - acc_new)
    else:
        overhead = total
    return request.with_blocks(tuple(new_blocks), overhead_tokens=overhead, tokens_exact=True)


def _replace_tokens(b: Block, tokens: int) -> Block:
    from dataclasses import replace

    return replace(b, tokens=max(tokens, 0))
