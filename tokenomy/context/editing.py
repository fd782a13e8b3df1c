"""A cache-aware trigger for the API's server-side context editing (``clear_tool_uses_20250919``).

With context editing the client keeps its full history and the API clears old tool results
before the prompt reaches the model (spec §6.1). Clearing rewrites the cached prefix from the
first cleared result on, so the API offers ``clear_at_least``: clear only when at least that many
tokens go. This module decides *when* to turn clearing on and with which ``clear_at_least``,
from the same break-even as masking (``tokenomy.context.mask.edit_value``).

How the server is modelled (spec §6.1 leaves the details open; these are the readings):

- ``context_management`` is a prompt-affecting parameter of the messages level (spec §2.7,
  ``tokenomy.blocks``): the request that first carries it re-writes the whole messages section,
  so the trigger emits the edit once and then repeats the very same bytes on every request.
- The server is stateless: on every request whose full input exceeds ``trigger`` it clears every
  tool result outside the last ``keep`` tool uses, if that clears at least ``clear_at_least``
  tokens. The client re-sends the full history, so once active the cleared boundary moves with
  each new tool use and the ``keep`` window is re-written on every request; the decision prices
  that in (a per-turn re-write against a per-turn growing saving).
- A cleared result becomes a short fixed placeholder (``SERVER_PLACEHOLDER``, about 10 tokens).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tokenomy.blocks import parse_request
from tokenomy.cache import CacheResult
from tokenomy.context.mask import (
    CacheView,
    RunStates,
    ToolResult,
    TurnEstimator,
    carry_tokens,
    edit_value,
    price_ratios,
    replace_results,
    text_result_tokens,
    tool_results,
)
from tokenomy.model import Request, Usage

__all__ = [
    "BETA",
    "EDIT_TYPE",
    "SERVER_PLACEHOLDER",
    "ClearingEdit",
    "EditingOptions",
    "EditingState",
    "EditingTransform",
    "clearing_config",
    "context_editing_body",
    "server_clear",
]

EDIT_TYPE = "clear_tool_uses_20250919"
BETA = "context-management-2025-06-27"  # the anthropic-beta header the edit needs
SERVER_PLACEHOLDER = "[tool result cleared]"


@dataclass(frozen=True, slots=True, kw_only=True)
class EditingOptions:
    """``keep`` recent tool uses are never cleared (the same window as masking by default);
    ``round_to`` rounds the emitted token thresholds."""

    keep: int = 10
    exclude_tools: tuple[str, ...] = ()
    round_to: int = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class ClearingEdit:
    """The decision to turn server-side clearing on: the edit emitted and why it pays."""

    config: dict[str, Any]
    beta: str
    clearable_tokens: int
    clear_at_least: int
    trigger: int


@dataclass(slots=True)
class EditingState:
    """Per conversation: the emitted ``context_management`` (None until the trigger fires)."""

    run_id: str = "default"
    estimator: TurnEstimator = field(default_factory=TurnEstimator)
    cache: CacheView = field(default_factory=CacheView)
    config: dict[str, Any] | None = None
    rent: float = 0.0

    def observe(self, usage: Usage, at: float) -> None:
        self.cache.observe(usage, at)


def clearing_config(
    *, trigger: int, keep: int, clear_at_least: int, exclude_tools: Sequence[str] = ()
) -> dict[str, Any]:
    """The ``context_management`` body field for one ``clear_tool_uses_20250919`` edit."""
    edit: dict[str, Any] = {
        "type": EDIT_TYPE,
        "trigger": {"type": "input_tokens", "value": int(trigger)},
        "keep": {"type": "tool_uses", "value": int(keep)},
        "clear_at_least": {"type": "input_tokens", "value": int(clear_at_least)},
    }
    if exclude_tools:
        edit["exclude_tools"] = list(exclude_tools)
    return {"edits": [edit]}


def _edit_of(config: Mapping[str, Any]) -> Mapping[str, Any] | None:
    edits = config.get("edits")
    if isinstance(edits, list):
        for e in edits:
            if isinstance(e, Mapping) and e.get("type") == EDIT_TYPE:
                return e
    return None


def _value(edit: Mapping[str, Any], key: str, default: int) -> int:
    v = edit.get(key)
    if isinstance(v, Mapping) and isinstance(v.get("value"), int):
        return int(v["value"])
    return default


def _clearable(
    body: Mapping[str, Any], request: Request, keep: int, exclude: Sequence[str]
) -> list[ToolResult]:
    results = tool_results(body, request)
    old = results[: max(len(results) - keep, 0)]
    return [r for r in old if not (r.tool_name and r.tool_name in exclude)]


def server_clear(body: Mapping[str, Any], request: Request | None = None) -> tuple[dict[str, Any], int, int]:
    """What the API is modelled to show the model for a body carrying a clearing edit:
    ``(body as seen, cleared tool uses, cleared input tokens)`` (module docstring)."""
    config = body.get("context_management")
    edit = _edit_of(config) if isinstance(config, Mapping) else None
    if edit is None:
        return dict(body), 0, 0
    parsed = request if request is not None else parse_request(body)
    if parsed.total_tokens <= _value(edit, "trigger", 100_000):
        return dict(body), 0, 0
    exclude = edit.get("exclude_tools")
    excluded = tuple(str(x) for x in exclude) if isinstance(exclude, list) else ()
    clear = _clearable(body, parsed, _value(edit, "keep", 3), excluded)
    tokens = sum(r.tokens for r in clear)
    if not clear or tokens < _value(edit, "clear_at_least", 0):
        return dict(body), 0, 0
    seen = replace_results(body, {(r.message, r.content): SERVER_PLACEHOLDER for r in clear})
    return seen, len(clear), tokens


def _round_up(v: float, step: int) -> int:
    return int(-(-v // step) * step) if step > 0 else int(v)


def context_editing_body(
    body: Mapping[str, Any],
    state: EditingState,
    *,
    options: EditingOptions | None = None,
    at: float | None = None,
    request: Request | None = None,
) -> tuple[dict[str, Any], list[ClearingEdit]]:
    """The body with the clearing edit added once it pays, and the edit when it is new.

    Once emitted, the same ``context_management`` goes on every later request of the
    conversation. A body that already carries ``context_management`` is the client's choice and
    is returned unchanged. Send the ``anthropic-beta: context-management-2025-06-27`` header
    (``BETA``) with any body that carries the edit.
    """
    options = options or EditingOptions()
    now = time.time() if at is None else at
    state.estimator.seen(state.run_id, now)
    out = dict(body)
    if "context_management" in body:
        return out, []
    if state.config is not None:
        out["context_management"] = state.config
        return out, []
    parsed = request if request is not None else parse_request(body)
    clear = _clearable(body, parsed, options.keep, options.exclude_tools)
    if not clear:
        return out, []
    placeholder = text_result_tokens(parsed.model, SERVER_PLACEHOLDER)
    saved = sum(max(r.tokens - placeholder, 0) for r in clear)
    total = parsed.total_tokens
    start = parsed.tokens_through(_base_end(parsed))  # the new parameter re-writes all messages
    remaining = state.estimator.remaining(state.run_id)
    cached = state.cache.cached(now)
    net, cost_now = edit_value(
        start=start,
        removed=saved,
        added=0,
        cached=cached,
        total=total,
        remaining=remaining,
        model=parsed.model,
    )
    w5, _, rd = price_ratios(parsed.model)
    results = tool_results(body, parsed)
    window = total - parsed.tokens_through(clear[-1].block)  # re-written each turn once active
    per_result = sum(r.tokens for r in results) / len(results)
    ongoing = per_result * rd * remaining * (remaining + 1) / 2 - window * (w5 - rd) * remaining
    if net + ongoing <= 0 or state.rent < cost_now:
        state.rent += saved * rd
        return out, []
    lost = max(min(cached, total) - start, 0)
    least = lost * (w5 - rd) / (rd * remaining + w5)
    at_least = min(_round_up(least, options.round_to), saved)
    trigger = max(int(0.9 * total) // options.round_to * options.round_to, 1)
    state.config = clearing_config(
        trigger=trigger, keep=options.keep, clear_at_least=at_least, exclude_tools=options.exclude_tools
    )
    out["context_management"] = state.config
    edit = ClearingEdit(
        config=state.config, beta=BETA, clearable_tokens=saved, clear_at_least=at_least, trigger=trigger
    )
    return out, [edit]


def _base_end(request: Request) -> int:
    last = -1
    for b in request.blocks:
        if b.section == "messages":
            break
        last = b.index
    return last


class EditingTransform:
    """Context editing as a ``tokenomy simulate`` transform: the trigger decides on the client's
    full history, and the engine sees what the server is modelled to show the model."""

    name = "context_editing"

    def __init__(self, options: EditingOptions | None = None) -> None:
        self.options = options or EditingOptions()
        self.runs = RunStates(lambda run_id, est: EditingState(run_id=run_id, estimator=est))

    def state(self, run_id: str) -> EditingState:
        return self.runs.get(run_id)

    def transform(
        self, request: Request, *, run_id: str, at: float
    ) -> tuple[Request, Sequence[tuple[Request, int]]]:
        if request.body is None:
            return request, ()
        state = self.state(run_id)
        body, _ = context_editing_body(request.body, state, options=self.options, at=at, request=request)
        if state.config is None:
            return request, ()
        seen, _, _ = server_clear(body, request)
        return carry_tokens(parse_request(seen), request), ()

    def observe(self, request: Request, *, run_id: str, at: float, result: CacheResult) -> None:
        self.state(run_id).observe(result.usage, at)

    def observe_ping(self, *, run_id: str, at: float, result: CacheResult) -> None:
        self.state(run_id).observe(result.usage, at)
