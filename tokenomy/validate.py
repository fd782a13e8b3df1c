"""Request validation in the API's own statuses, error types and words (spec §7.5), in one place.

The emulator, the gateway and the batch runner all refuse bad Messages bodies before doing
anything with them; each rule lives here once and ``Rules`` says how a caller differs:

- the emulator stands in for the API, so an id the price table does not hold exactly is a
  404 and an unknown block type a 400 (``EMULATOR``);
- the gateway forwards to the real API, which may know newer models and block types than we
  do: those pass, and only what the API would refuse for certain is refused (``GATEWAY``);
- the batch runner is as strict as the emulator on models (an exact id or alias, not retired):
  a paid batch is not submitted on a guess; it reports its findings per input line (``BATCH``).

Everything raises ``ApiRequestError`` with paths like ``messages.0.content.4.cache_control.ttl``.
The cache-control rules that need the whole prompt (more than 4 breakpoints, TTL order) are the
cache engine's: ``tokenomy.cache.effective_breakpoints`` raises them, nothing here repeats them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from tokenomy.errors import ApiRequestError
from tokenomy.pricing import ModelInfo, all_models

__all__ = [
    "BATCH",
    "BATCH_MAX_BYTES",
    "BATCH_MAX_REQUESTS",
    "CUSTOM_ID_RE",
    "EMULATOR",
    "GATEWAY",
    "MESSAGES_MAX_BYTES",
    "Rules",
    "check_batch_entry",
    "check_batch_params",
    "check_body_size",
    "check_messages",
    "known_model",
    "model_catalogue",
    "parse_json_body",
]

MESSAGES_MAX_BYTES = 32 * 1024 * 1024  # Messages and count_tokens bodies (spec §7.1)
BATCH_MAX_BYTES = 256 * 1024 * 1024  # one batch create call (spec §4.3)
BATCH_MAX_REQUESTS = 100_000  # requests in one batch (spec §4.3)
CUSTOM_ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # spec §4.2

ModelPolicy = Literal["exact", "any"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Rules:
    """How one caller differs from the API's own strictness.

    ``models``: ``exact`` (an id or alias of the price table, else 404 as the API answers),
    ``any`` (a string is enough; the upstream judges). Limits tied to a model (``max_tokens`` ceiling,
    ``inference_geo``) are checked only when the model is known. ``known_blocks``: content block
    types outside the set below are refused (the emulator), or passed on (the gateway).
    """

    models: ModelPolicy = "exact"
    allow_retired: bool = False
    known_blocks: bool = True


EMULATOR = Rules()
GATEWAY = Rules(models="any", known_blocks=False)
# A batch is paid for and waited on: an id the price table does not know exactly, or a retired
# one, is reported with its line number before anything is submitted.
BATCH = Rules(models="exact", allow_retired=False)

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
# Optional top-level fields and the JSON type each must have when present (and not null).
_OPTIONAL_TYPES: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
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
_MAP = (dict, Mapping)  # a parsed body holds dicts: testing dict first skips the ABC check
_NON_EMPTY = "all messages must have non-empty content except for the optional final assistant message"


def _bad(message: str, status: int = 400, error_type: str = "invalid_request_error") -> ApiRequestError:
    return ApiRequestError(message, status=status, error_type=error_type)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# -- bodies ------------------------------------------------------------------------------------


def check_body_size(size: int, limit: int) -> None:
    """The API's 413 for a body over ``limit`` bytes."""
    if size > limit:
        raise _bad(
            f"Request exceeds the maximum allowed number of bytes ({limit}).", 413, "request_too_large"
        )


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or the API's 400."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise _bad(f"There was an error parsing the body of your request: invalid JSON ({e}).") from None
    if not isinstance(body, dict):
        raise _bad(f"Input should be a valid dictionary (the body is a JSON {type(body).__name__}).")
    return body


# -- models ------------------------------------------------------------------------------------


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


def _check_model(body: Mapping[str, Any], prefix: str, rules: Rules) -> ModelInfo | None:
    model = body.get("model")
    if model is None:
        raise _bad(f"{prefix}model: Field required")
    if not isinstance(model, str) or not model:
        raise _bad(f"{prefix}model: Input should be a valid string")
    if rules.models == "any":
        return None
    info = known_model(model)
    if info is None or (info.status == "retired" and not rules.allow_retired):
        raise _bad(f"model: {model}", 404, "not_found_error")
    return info


# -- content -----------------------------------------------------------------------------------


def _check_cache_control(obj: Mapping[str, Any], path: str) -> None:
    cc = obj.get("cache_control")
    if cc is None:
        return
    where = f"{path}.cache_control" if path else "cache_control"
    if not isinstance(cc, _MAP) or cc.get("type") != "ephemeral":
        raise _bad(f"{where}.type: Input should be 'ephemeral'")
    ttl = cc.get("ttl")
    if ttl is not None and ttl not in ("5m", "1h"):
        raise _bad(f"{where}.ttl: Input should be '5m' or '1h'")


def _check_block(block: Any, at: str, j: int, rules: Rules) -> str:
    """One content block of ``messages.N.content`` (``at`` is ``messages.N``); returns its type.
    Paths are formatted only on error: this runs for every block of every request."""
    if not isinstance(block, _MAP):
        raise _bad(f"{at}.content.{j}: Input should be a valid dictionary or object to extract fields from")
    kind = block.get("type")
    if not isinstance(kind, str):
        raise _bad(f"{at}.content.{j}.type: Field required")
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str):
            what = "Field required" if text is None else "Input should be a valid string"
            raise _bad(f"{at}.content.{j}.text: {what}")
        if not text:
            raise _bad("messages: text content blocks must be non-empty")
    elif kind == "tool_use":
        for key in ("id", "name"):
            if not isinstance(block.get(key), str):
                raise _bad(f"{at}.content.{j}.{key}: Field required")
        if not isinstance(block.get("input"), _MAP):
            raise _bad(f"{at}.content.{j}.input: Input should be a valid dictionary")
    elif kind == "tool_result":
        if not isinstance(block.get("tool_use_id"), str):
            raise _bad(f"{at}.content.{j}.tool_use_id: Field required")
        inner = block.get("content")
        if inner is not None and not isinstance(inner, (str, list)):
            raise _bad(f"{at}.content.{j}.content: Input should be a valid string or list")
    elif rules.known_blocks and kind not in BLOCK_TYPES:
        raise _bad(
            f"{at}.content.{j}: Input tag '{kind}' found using 'type' does not match any of the expected tags"
        )
    elif kind in ("thinking", "redacted_thinking") and "cache_control" in block:
        raise _bad(f"{at}.content.{j}.cache_control: Extra inputs are not permitted")
    if "cache_control" in block:
        _check_cache_control(block, f"{at}.content.{j}")
    return kind


def _check_system(system: Any, prefix: str) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise _bad(f"{prefix}system: Input should be a valid string or a list of text blocks")
    for i, blk in enumerate(system):
        if not isinstance(blk, _MAP) or blk.get("type") != "text":
            raise _bad(f"{prefix}system.{i}.type: Input should be 'text'")
        if not isinstance(blk.get("text"), str) or not blk["text"]:
            raise _bad("system: text content blocks must be non-empty")
        _check_cache_control(blk, f"{prefix}system.{i}")


def _check_tools(tools: Any, prefix: str) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _bad(f"{prefix}tools: Input should be a valid list")
    names: set[str] = set()
    for i, tool in enumerate(tools):
        if not isinstance(tool, _MAP):
            raise _bad(f"{prefix}tools.{i}: Input should be a valid dictionary")
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise _bad(f"{prefix}tools.{i}.name: Field required")
        if tool.get("type") in (None, "custom") and not isinstance(tool.get("input_schema"), _MAP):
            raise _bad(f"{prefix}tools.{i}.custom.input_schema: Field required")
        if name in names:
            raise _bad(f"{prefix}tools: Tool names must be unique.")
        names.add(name)
        _check_cache_control(tool, f"{prefix}tools.{i}")


def _check_messages_list(messages: Any, prefix: str, rules: Rules) -> None:
    """Every message and block, then the tool_use/tool_result pairing: the shape is checked in
    full before a pairing error is raised, as the API reports field errors first."""
    if messages is None:
        raise _bad(f"{prefix}messages: Field required")
    if not isinstance(messages, list):
        raise _bad(f"{prefix}messages: Input should be a valid list")
    if not messages:
        raise _bad(f"{prefix}messages: at least one message is required")
    last = len(messages) - 1
    pairing: ApiRequestError | None = None
    prev_uses: list[str] = []  # tool_use ids of the previous (assistant) message
    for i, msg in enumerate(messages):
        at = f"{prefix}messages.{i}"
        if not isinstance(msg, _MAP):
            raise _bad(f"{at}: Input should be a valid dictionary")
        role = msg.get("role")
        if role != "user" and role != "assistant":
            raise _bad(f"{at}.role: Input should be 'user' or 'assistant'")
        if "content" not in msg:
            raise _bad(f"{at}.content: Field required")
        content = msg["content"]
        if not isinstance(content, (str, list)):
            raise _bad(f"{at}.content: Input should be a valid string or a list of content blocks")
        if not content and not (i == last and role == "assistant"):
            raise _bad(f"{at}: {_NON_EMPTY}")
        uses: list[str] = []
        results: list[str] = []
        if isinstance(content, list):
            for j, blk in enumerate(content):
                kind = _check_block(blk, at, j, rules)
                if kind == "tool_use":
                    uses.append(blk["id"])
                elif kind == "tool_result":
                    results.append(blk["tool_use_id"])
        if pairing is None:
            pairing = _pairing_error(prev_uses, results, i, prefix)
        prev_uses = uses if role == "assistant" else []
    if pairing is not None:
        raise pairing


def _pairing_error(prev_uses: list[str], results: list[str], i: int, prefix: str) -> ApiRequestError | None:
    """Each tool_use needs a tool_result in the next message, and each tool_result a tool_use
    in the previous one (the API's two messages, verbatim)."""
    stray = [r for r in results if r not in prev_uses]
    if stray:
        return _bad(
            f"{prefix}messages.{i}.content.0: unexpected `tool_use_id` found in `tool_result` blocks: "
            f"{', '.join(stray)}. Each `tool_result` block must have a corresponding `tool_use` block "
            "in the previous message."
        )
    missing = [u for u in prev_uses if u not in results]
    if missing:
        return _bad(
            f"{prefix}messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks "
            f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
            "corresponding `tool_result` block in the next message."
        )
    return None


# -- generation parameters ---------------------------------------------------------------------


def _check_max_tokens(body: Mapping[str, Any], info: ModelInfo | None, prefix: str) -> int:
    if "max_tokens" not in body or body["max_tokens"] is None:
        raise _bad(f"{prefix}max_tokens: Field required")
    n = body["max_tokens"]
    if not _is_int(n):
        raise _bad(f"{prefix}max_tokens: Input should be a valid integer")
    if n < 0:
        raise _bad(f"{prefix}max_tokens: Input should be greater than or equal to 0")
    if info is not None and info.max_output is not None and n > info.max_output:
        raise _bad(
            f"{prefix}max_tokens: {n} > {info.max_output}, which is the maximum allowed number of output "
            f"tokens for {info.id}"
        )
    return int(n)


def _check_types(body: Mapping[str, Any], prefix: str) -> None:
    for key, kind, what in _OPTIONAL_TYPES:
        v = body.get(key)
        if v is None:
            continue
        if not isinstance(v, kind) or (kind is not bool and isinstance(v, bool)):
            raise _bad(f"{prefix}{key}: Input should be {what}")
    stops = body.get("stop_sequences")
    if isinstance(stops, list) and not all(isinstance(s, str) for s in stops):
        raise _bad(f"{prefix}stop_sequences: Input should be a valid list of strings")
    temperature = body.get("temperature")
    if temperature is not None and not temperature >= 0:
        raise _bad(f"{prefix}temperature: Input should be greater than or equal to 0")
    if temperature is not None and not temperature <= 1:
        raise _bad(f"{prefix}temperature: Input should be less than or equal to 1")


def _check_sampling(body: Mapping[str, Any], info: ModelInfo | None, prefix: str) -> None:
    """Claude 4.7 and later take no sampling parameters but the defaults (spec §3.2, DEP)."""
    if info is None or not info.fixed_sampling:
        return
    for key in ("temperature", "top_p", "top_k"):
        value = body.get(key)
        if value is None or (key == "temperature" and value == 1):
            continue
        raise _bad(
            f"{prefix}{key}: {info.id} does not accept a non-default {key}; remove it from the request"
        )


def _check_thinking(body: Mapping[str, Any], max_tokens: int | None, prefix: str) -> None:
    thinking = body.get("thinking")
    if not isinstance(thinking, _MAP) or thinking.get("type") != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1024:
        raise _bad(f"{prefix}thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
    if max_tokens and budget >= max_tokens:
        raise _bad(f"{prefix}max_tokens: `max_tokens` must be greater than `thinking.budget_tokens`")


def _check_prewarm(body: Mapping[str, Any], prefix: str) -> None:
    """``max_tokens: 0`` (cache pre-warm) refuses streaming, extended thinking, forced tools and formats (§2.9)."""
    tc = body.get("tool_choice")
    output_config = body.get("output_config")
    thinking = body.get("thinking")
    conflicts = [
        ("stream: true", body.get("stream") is True),
        ("thinking.type: 'enabled'", isinstance(thinking, _MAP) and thinking.get("type") == "enabled"),
        (
            "output_config.format",
            isinstance(output_config, _MAP) and output_config.get("format") is not None,
        ),
        ("tool_choice 'any' or 'tool'", isinstance(tc, _MAP) and tc.get("type") in ("any", "tool")),
    ]
    for what, present in conflicts:
        if present:
            raise _bad(f"{prefix}max_tokens: max_tokens=0 (cache pre-warming) cannot be combined with {what}")


def _check_geo(body: Mapping[str, Any], info: ModelInfo | None, prefix: str) -> None:
    geo = body.get("inference_geo")
    if geo is None:
        return
    if geo not in ("global", "us"):
        raise _bad(f"{prefix}inference_geo: Input should be 'global' or 'us'")
    if geo == "us" and info is not None and not info.geo_us_multiplier_applies:
        raise _bad(f"{prefix}inference_geo: inference_geo is not supported for model {info.id}")


def check_messages(
    body: Any, rules: Rules = EMULATOR, *, count_tokens: bool = False, prefix: str = ""
) -> ModelInfo | None:
    """Validate a Messages create (or ``count_tokens``) body; returns the model it names, when
    ``rules`` look models up. ``prefix`` goes before every field path (``requests.3.params.``)."""
    if not isinstance(body, Mapping):
        raise _bad(f"{prefix.rstrip('.') or 'body'}: Input should be a valid dictionary")
    info = _check_model(body, prefix, rules)
    max_tokens = None if count_tokens else _check_max_tokens(body, info, prefix)
    _check_messages_list(body.get("messages"), prefix, rules)
    _check_system(body.get("system"), prefix)
    _check_tools(body.get("tools"), prefix)
    _check_types(body, prefix)
    _check_thinking(body, max_tokens, prefix)
    if max_tokens == 0:
        _check_prewarm(body, prefix)
    _check_geo(body, info, prefix)
    _check_sampling(body, info, prefix)
    _check_cache_control(body, prefix.rstrip("."))
    return info


# -- batches -----------------------------------------------------------------------------------


def check_batch_params(params: Mapping[str, Any], path: str) -> None:
    """What the Batches API refuses inside ``params`` that a live call accepts (spec §4.2)."""
    if params.get("stream") is True:
        raise _bad(f"{path}.stream: streaming is not supported in Message Batches")
    if "speed" in params and params.get("speed") not in (None, "standard"):
        raise _bad(f"{path}.speed: fast mode is not supported in Message Batches")
    if params.get("max_tokens") == 0 and _is_int(params.get("max_tokens")):
        raise _bad(
            f"{path}.max_tokens: 0 is not supported in Message Batches (cache pre-warming is live only)"
        )


def check_batch_entry(index: int, item: Any, seen: set[str]) -> tuple[str, Mapping[str, Any]]:
    """Shape of one entry of a batch create call: ``custom_id`` (pattern, unique) and ``params``.

    Errors inside ``params`` that the Messages API would raise are not raised here: they end
    that request ``errored`` in the results, as the API does.
    """
    path = f"requests.{index}"
    if not isinstance(item, Mapping):
        raise _bad(f"{path}: Input should be a valid dictionary")
    cid = item.get("custom_id")
    if not isinstance(cid, str):
        raise _bad(f"{path}.custom_id: Field required")
    if not CUSTOM_ID_RE.match(cid):
        raise _bad(f"{path}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
    if cid in seen:
        raise _bad(
            f"requests: custom_id values must be unique within a batch; {cid!r} appears more than once"
        )
    seen.add(cid)
    params = item.get("params")
    if not isinstance(params, Mapping):
        raise _bad(f"{path}.params: Field required")
    check_batch_params(params, f"{path}.params")
    return cid, params
