"""What the gateway refuses before anything goes upstream: only what would make the API refuse
the request for certain, or what the gateway itself cannot read.

The gateway does not second-guess the API beyond that (an unknown model id may be newer than
our price table; the API is the judge). Messages follow the API's wording and paths
(``messages.0.content.4.cache_control.ttl: ...``). Breakpoint count and TTL order are the cache
engine's rules: ``effective_breakpoints`` raises them, nothing here repeats them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tokenomy.errors import ApiRequestError

__all__ = ["check_messages_body", "parse_json_body"]

_ROLES = ("user", "assistant", "system")


def _bad(message: str) -> ApiRequestError:
    return ApiRequestError(message, status=400, error_type="invalid_request_error")


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or the API's 400."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise _bad(f"There was an error parsing the body of your request: invalid JSON ({e}).") from None
    if not isinstance(body, dict):
        raise _bad(f"Input should be a valid dictionary (the body is a JSON {type(body).__name__}).")
    return body


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _cache_control(obj: Mapping[str, Any], path: str) -> None:
    if "cache_control" not in obj:
        return
    cc = obj["cache_control"]
    where = f"{path}.cache_control" if path else "cache_control"
    if cc is None:
        return
    if not isinstance(cc, Mapping) or cc.get("type") != "ephemeral":
        raise _bad(f"{where}.type: Input should be 'ephemeral'")
    ttl = cc.get("ttl")
    if ttl is not None and ttl not in ("5m", "1h"):
        raise _bad(f"{where}.ttl: Input should be '5m' or '1h'")


def _content_blocks(blocks: list[Any], path: str) -> None:
    for i, blk in enumerate(blocks):
        where = f"{path}.{i}"
        if not isinstance(blk, Mapping):
            raise _bad(f"{where}: Input should be a valid dictionary")
        if not isinstance(blk.get("type"), str):
            raise _bad(f"{where}.type: Field required")
        if blk.get("type") == "text" and not isinstance(blk.get("text"), str):
            raise _bad(f"{where}.text: Input should be a valid string")
        _cache_control(blk, where)
        inner = blk.get("content")
        if blk.get("type") == "tool_result" and inner is not None and not isinstance(inner, (str, list)):
            raise _bad(f"{where}.content: Input should be a valid string or list")


def _check_optional(body: Mapping[str, Any]) -> None:
    checks: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
        ("stream", bool, "a valid boolean"),
        ("temperature", (int, float), "a valid number"),
        ("top_p", (int, float), "a valid number"),
        ("top_k", int, "a valid integer"),
        ("metadata", dict, "a valid dictionary"),
        ("tool_choice", dict, "a valid dictionary"),
        ("thinking", dict, "a valid dictionary"),
        ("stop_sequences", list, "a valid list"),
        ("service_tier", str, "a valid string"),
    )
    for key, kind, what in checks:
        v = body.get(key)
        if v is None:
            continue
        if not isinstance(v, kind) or (kind is not bool and isinstance(v, bool)):
            raise _bad(f"{key}: Input should be {what}")
    stops = body.get("stop_sequences")
    if isinstance(stops, list) and not all(isinstance(s, str) for s in stops):
        raise _bad("stop_sequences: Input should be a list of strings")


def check_messages_body(body: Mapping[str, Any], *, count_tokens: bool = False) -> None:
    """Raise the API's 400 for a Messages (or count_tokens) body the gateway cannot pass on."""
    model = body.get("model")
    if model is None:
        raise _bad("model: Field required")
    if not isinstance(model, str) or not model:
        raise _bad("model: Input should be a valid string")
    if not count_tokens:
        mt = body.get("max_tokens")
        if mt is None:
            raise _bad("max_tokens: Field required")
        if not _is_int(mt):
            raise _bad("max_tokens: Input should be a valid integer")
        if mt < 0:
            raise _bad("max_tokens: Input should be greater than or equal to 0")
    _check_messages(body.get("messages"))
    _check_system_tools(body)
    _cache_control(body, "")
    _check_optional(body)


def _check_messages(messages: Any) -> None:
    if messages is None:
        raise _bad("messages: Field required")
    if not isinstance(messages, list):
        raise _bad("messages: Input should be a valid list")
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping):
            raise _bad(f"messages.{i}: Input should be a valid dictionary")
        if msg.get("role") not in _ROLES:
            raise _bad(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = msg.get("content")
        if isinstance(content, list):
            _content_blocks(content, f"messages.{i}.content")
        elif not isinstance(content, str):
            raise _bad(f"messages.{i}.content: Input should be a valid string or a list of content blocks")


def _check_system_tools(body: Mapping[str, Any]) -> None:
    system = body.get("system")
    if isinstance(system, list):
        _content_blocks(system, "system")
    elif system is not None and not isinstance(system, str):
        raise _bad("system: Input should be a valid string or a list of text blocks")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad("tools: Input should be a valid list")
        for i, tool in enumerate(tools):
            if not isinstance(tool, Mapping):
                raise _bad(f"tools.{i}: Input should be a valid dictionary")
            if not isinstance(tool.get("name"), str):
                raise _bad(f"tools.{i}.name: Field required")
            _cache_control(tool, f"tools.{i}")
