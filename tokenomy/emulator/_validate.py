"""Request validation with the API's own statuses, error types and wording (spec §7.5).

Everything here raises ``ApiRequestError``; the app renders it as the API's error JSON. The
cache-control rules (more than 4 breakpoints, TTL order) are not here: the cache engine holds
them and raises ``CacheControlError`` when it prices the request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from tokenomy.errors import ApiRequestError
from tokenomy.pricing import ModelInfo, all_models

__all__ = ["check_batch_params", "check_count_tokens", "check_messages", "known_model", "model_catalogue"]

ROLES = ("user", "assistant", "system")
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
BLOCK_TYPES = frozenset(
    {
        "text",
        "image",
        "document",
        "search_result",
        "thinking",
        "redacted_thinking",
        "tool_use",
        "tool_result",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "tool_reference",
        "container_upload",
        "compaction",
        "mcp_tool_use",
        "mcp_tool_result",
        "tool_addition",
    }
)


@lru_cache(maxsize=1)
def model_catalogue() -> dict[str, ModelInfo]:
    """Every id and alias the price table knows, lower-cased, to its model."""
    out: dict[str, ModelInfo] = {}
    for m in all_models():
        out[m.id.lower()] = m
        for alias in m.aliases:
            out[alias.lower()] = m
    return out


def known_model(model: str) -> ModelInfo | None:
    """The model an id names exactly (id or alias), or None: the API does no fuzzy matching."""
    return model_catalogue().get(model.lower())


def _bad(message: str, status: int = 400, error_type: str = "invalid_request_error") -> ApiRequestError:
    return ApiRequestError(message, status=status, error_type=error_type)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_model(body: Mapping[str, Any], prefix: str, allow_retired: bool) -> ModelInfo:
    model = body.get("model")
    if model is None:
        raise _bad(f"{prefix}model: Field required")
    if not isinstance(model, str):
        raise _bad(f"{prefix}model: Input should be a valid string")
    info = known_model(model)
    if info is None or (info.status == "retired" and not allow_retired):
        raise _bad(f"model: {model}", 404, "not_found_error")
    return info


def _check_cache_control(obj: Mapping[str, Any], path: str) -> None:
    cc = obj.get("cache_control")
    if cc is None:
        return
    path = f"{path}." if path else ""
    if not isinstance(cc, Mapping) or cc.get("type") != "ephemeral":
        raise _bad(f"{path}cache_control.type: Input should be 'ephemeral'")
    ttl = cc.get("ttl")
    if ttl is not None and ttl not in ("5m", "1h"):
        raise _bad(f"{path}cache_control.ephemeral.ttl: Input should be '5m' or '1h'")


def _check_block(block: Any, path: str) -> None:
    if not isinstance(block, Mapping):
        raise _bad(f"{path}: Input should be a valid dictionary or object to extract fields from")
    kind = block.get("type")
    if not isinstance(kind, str):
        raise _bad(f"{path}.type: Field required")
    if kind not in BLOCK_TYPES:
        raise _bad(f"{path}: Input tag '{kind}' found using 'type' does not match any of the expected tags")
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str):
            raise _bad(
                f"{path}.text: Field required"
                if text is None
                else f"{path}.text: Input should be a valid string"
            )
        if not text:
            raise _bad("messages: text content blocks must be non-empty")
    elif kind == "tool_use":
        for key in ("id", "name"):
            if not isinstance(block.get(key), str):
                raise _bad(f"{path}.{key}: Field required")
        if not isinstance(block.get("input"), Mapping):
            raise _bad(f"{path}.input: Input should be a valid dictionary")
    elif kind == "tool_result" and not isinstance(block.get("tool_use_id"), str):
        raise _bad(f"{path}.tool_use_id: Field required")
    elif kind in ("thinking", "redacted_thinking") and "cache_control" in block:
        raise _bad(f"{path}.cache_control: Extra inputs are not permitted")
    _check_cache_control(block, path)


def _check_system(system: Any, prefix: str) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise _bad(f"{prefix}system: Input should be a valid string or a list of text blocks")
    for i, blk in enumerate(system):
        path = f"{prefix}system.{i}"
        if not isinstance(blk, Mapping) or blk.get("type") != "text":
            raise _bad(f"{path}.type: Input should be 'text'")
        if not isinstance(blk.get("text"), str) or not blk["text"]:
            raise _bad("system: text content blocks must be non-empty")
        _check_cache_control(blk, path)


def _check_tools(tools: Any, prefix: str) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _bad(f"{prefix}tools: Input should be a valid list")
    names: set[str] = set()
    for i, tool in enumerate(tools):
        path = f"{prefix}tools.{i}"
        if not isinstance(tool, Mapping):
            raise _bad(f"{path}: Input should be a valid dictionary")
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise _bad(f"{path}.name: Field required")
        if tool.get("type") in (None, "custom") and not isinstance(tool.get("input_schema"), Mapping):
            raise _bad(f"{path}.custom.input_schema: Field required")
        if name in names:
            raise _bad(f"{prefix}tools: Tool names must be unique.")
        names.add(name)
        _check_cache_control(tool, path)


def _tool_ids(content: Any, kind: str, key: str) -> list[str]:
    if not isinstance(content, list):
        return []
    return [str(b.get(key)) for b in content if isinstance(b, Mapping) and b.get("type") == kind]


def _check_messages_list(messages: Any, prefix: str) -> None:
    if messages is None:
        raise _bad(f"{prefix}messages: Field required")
    if not isinstance(messages, list):
        raise _bad(f"{prefix}messages: Input should be a valid list")
    if not messages:
        raise _bad(f"{prefix}messages: at least one message is required")
    last = len(messages) - 1
    for i, msg in enumerate(messages):
        path = f"{prefix}messages.{i}"
        if not isinstance(msg, Mapping):
            raise _bad(f"{path}: Input should be a valid dictionary")
        role = msg.get("role")
        if role not in ROLES:
            raise _bad(f"{path}.role: Input should be 'user', 'assistant' or 'system'")
        if "content" not in msg:
            raise _bad(f"{path}.content: Field required")
        content = msg["content"]
        if isinstance(content, str):
            if not content and not (i == last and role == "assistant"):
                raise _bad(
                    f"{prefix}messages.{i}: all messages must have non-empty content except for the "
                    "optional final assistant message"
                )
        elif isinstance(content, list):
            if not content and not (i == last and role == "assistant"):
                raise _bad(
                    f"{prefix}messages.{i}: all messages must have non-empty content except for the "
                    "optional final assistant message"
                )
            for j, blk in enumerate(content):
                _check_block(blk, f"{path}.content.{j}")
        else:
            raise _bad(f"{path}.content: Input should be a valid string or a list of content blocks")
    _check_tool_pairs(messages, prefix)


def _check_tool_pairs(messages: list[Any], prefix: str) -> None:
    """Each tool_use needs a tool_result in the next message, and each tool_result a tool_use
    in the previous one (the API's two messages, verbatim)."""
    prev_uses: list[str] = []
    for i, msg in enumerate(messages):
        content = msg.get("content")
        results = _tool_ids(content, "tool_result", "tool_use_id")
        stray = [r for r in results if r not in prev_uses]
        if stray:
            raise _bad(
                f"{prefix}messages.{i}.content.0: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{', '.join(stray)}. Each `tool_result` block must have a corresponding `tool_use` block "
                "in the previous message."
            )
        if prev_uses and i > 0:
            missing = [u for u in prev_uses if u not in results]
            if missing:
                raise _bad(
                    f"{prefix}messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                    "corresponding `tool_result` block in the next message."
                )
        prev_uses = _tool_ids(content, "tool_use", "id") if msg.get("role") == "assistant" else []


def _check_max_tokens(body: Mapping[str, Any], info: ModelInfo, prefix: str) -> int:
    if "max_tokens" not in body:
        raise _bad(f"{prefix}max_tokens: Field required")
    n = body["max_tokens"]
    if not _is_int(n):
        raise _bad(f"{prefix}max_tokens: Input should be a valid integer")
    if n < 0:
        raise _bad(f"{prefix}max_tokens: Input should be greater than or equal to 0")
    if info.max_output is not None and n > info.max_output:
        raise _bad(
            f"{prefix}max_tokens: {n} > {info.max_output}, which is the maximum allowed number of output "
            f"tokens for {info.id}"
        )
    return int(n)


def _check_generation(body: Mapping[str, Any], max_tokens: int, prefix: str) -> None:
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad(f"{prefix}stream: Input should be a valid boolean")
    thinking = body.get("thinking")
    if isinstance(thinking, Mapping) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1024:
            raise _bad(
                f"{prefix}thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
            )
        if max_tokens and budget >= max_tokens:
            raise _bad(f"{prefix}max_tokens: `max_tokens` must be greater than `thinking.budget_tokens`")
    temperature = body.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, (int, float))
        or isinstance(temperature, bool)
        or not 0 <= temperature <= 1
    ):
        raise _bad(f"{prefix}temperature: Input should be less than or equal to 1")
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        raise _bad(f"{prefix}stop_sequences: Input should be a valid list of strings")
    if max_tokens == 0:
        _check_prewarm(body, prefix)


def _check_prewarm(body: Mapping[str, Any], prefix: str) -> None:
    """``max_tokens: 0`` (cache pre-warm) refuses streaming, extended thinking, forced tools and formats (§2.9)."""
    tc = body.get("tool_choice")
    output_config = body.get("output_config")
    thinking = body.get("thinking")
    conflicts = [
        ("stream: true", body.get("stream") is True),
        ("thinking.type: 'enabled'", isinstance(thinking, Mapping) and thinking.get("type") == "enabled"),
        (
            "output_config.format",
            isinstance(output_config, Mapping) and output_config.get("format") is not None,
        ),
        ("tool_choice 'any' or 'tool'", isinstance(tc, Mapping) and tc.get("type") in ("any", "tool")),
    ]
    for what, present in conflicts:
        if present:
            raise _bad(f"{prefix}max_tokens: max_tokens=0 (cache pre-warming) cannot be combined with {what}")


def _check_geo(body: Mapping[str, Any], info: ModelInfo, prefix: str) -> None:
    geo = body.get("inference_geo")
    if geo is None:
        return
    if geo not in ("global", "us"):
        raise _bad(f"{prefix}inference_geo: Input should be 'global' or 'us'")
    if geo == "us" and not info.geo_us_multiplier_applies:
        raise _bad(f"{prefix}inference_geo: inference_geo is not supported for model {info.id}")


def check_messages(body: Any, *, allow_retired: bool = False, prefix: str = "") -> ModelInfo:
    """Validate a Messages create body; returns the model it names."""
    if not isinstance(body, Mapping):
        raise _bad("body: Input should be a valid dictionary")
    info = _check_model(body, prefix, allow_retired)
    max_tokens = _check_max_tokens(body, info, prefix)
    _check_messages_list(body.get("messages"), prefix)
    _check_system(body.get("system"), prefix)
    _check_tools(body.get("tools"), prefix)
    _check_generation(body, max_tokens, prefix)
    _check_geo(body, info, prefix)
    _check_cache_control(body, prefix.rstrip("."))
    return info


def check_count_tokens(body: Any, *, allow_retired: bool = False) -> ModelInfo:
    """Validate a count_tokens body: Messages create minus the generation parameters."""
    if not isinstance(body, Mapping):
        raise _bad("body: Input should be a valid dictionary")
    info = _check_model(body, "", allow_retired)
    _check_messages_list(body.get("messages"), "")
    _check_system(body.get("system"), "")
    _check_tools(body.get("tools"), "")
    return info


def check_batch_params(index: int, item: Any, seen: set[str]) -> tuple[str, Mapping[str, Any]]:
    """Shape of one batch entry (spec §4.2): the custom_id rule and the params batches refuse.

    Errors inside ``params`` that the Messages API would raise are not raised here: they end
    that request ``errored`` in the results, as the API does.
    """
    path = f"requests.{index}"
    if not isinstance(item, Mapping):
        raise _bad(f"{path}: Input should be a valid dictionary")
    cid = item.get("custom_id")
    if not isinstance(cid, str):
        raise _bad(f"{path}.custom_id: Field required")
    if not CUSTOM_ID.match(cid):
        raise _bad(f"{path}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
    if cid in seen:
        raise _bad(
            f"requests: custom_id values must be unique within a batch; {cid!r} appears more than once"
        )
    seen.add(cid)
    params = item.get("params")
    if not isinstance(params, Mapping):
        raise _bad(f"{path}.params: Field required")
    if params.get("stream") is True:
        raise _bad(f"{path}.params.stream: streaming is not supported in Message Batches")
    if "speed" in params and params.get("speed") != "standard":
        raise _bad(f"{path}.params.speed: fast mode is not supported in Message Batches")
    if params.get("max_tokens") == 0:
        raise _bad(
            f"{path}.params.max_tokens: max_tokens=0 (cache pre-warming) is not supported in Message Batches"
        )
    return cid, params
