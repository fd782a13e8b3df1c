"""Compaction: replace a long run's old turns with a summary, keeping the recent turns verbatim.

The summary (decisions, findings, open questions, file states) is written by a model call, a
small model by default (``claude-haiku-4-5``), through the caller's own client
(``make_summarizer``) or any callable ``summarize(messages) -> str``. The first user message (the
task) stays verbatim, so the tools + system + task prefix stays cached; the summary follows it
as a user message, then the kept turns, starting at an assistant turn so every ``tool_result``
keeps its ``tool_use``.

Compaction is the largest edit there is: everything after the task is written again, and the
summary call is billed. When it runs is decided like masking (``tokenomy.context.mask``): the
reads it saves over the expected rest of the run must repay the re-write plus the summary call,
and the read cost run up since it first could have run must reach that price. Past
``trigger_tokens`` it runs regardless (the context window is the limit then, not the bill).

In ``tokenomy simulate`` (``CompactTransform``) no model is called: the summary call is billed as
a request on the small model (the rendered old turns in, the summary out), and the summary's
length is modelled as ``summary_ratio`` of the summarised tokens, at least ``summary_floor`` and
at most ``summary_cap`` (defaults 5%, 400, 4,500: Claude Code's own compaction in the spotter
workload turned 142,431 tokens into a summary of about 4,400, 3.1%).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from tokenomy.blocks import canonical_json, parse_request
from tokenomy.cache import CacheResult
from tokenomy.context.mask import CacheView, RunStates, TurnEstimator, carry_tokens, edit_value, price_ratios
from tokenomy.errors import UserError
from tokenomy.model import Request, Usage
from tokenomy.pricing import cost, model_info

__all__ = [
    "SUMMARY_MODEL",
    "SUMMARY_PROMPT",
    "CompactEdit",
    "CompactOptions",
    "CompactState",
    "CompactTransform",
    "compact_body",
    "make_summarizer",
    "render_transcript",
    "summary_body",
]

SUMMARY_MODEL = "claude-haiku-4-5"
SUMMARY_PROMPT = (
    "You compact the history of an agent's run so that it can continue with less context. Write the "
    "summary the agent will read instead of the turns you are given, under four headings: Decisions "
    "(what was decided, and why), Findings (facts learned: errors and their causes, test results, "
    "values), Open questions (what is unresolved or still to do), File states (each file touched: its "
    "path and what it now holds or what changed). Keep exact paths, names, commands and error "
    "messages. Do not add anything that is not in the history."
)
SUMMARY_HEADER = "Summary of the earlier part of this conversation (older turns were compacted):\n\n"


@dataclass(frozen=True, slots=True, kw_only=True)
class CompactOptions:
    """When and how to compact (module docstring)."""

    keep_last: int = 10  # tool-result turns kept verbatim
    min_tokens: int = 20_000  # never compact a shorter prompt
    trigger_tokens: int = 150_000  # always compact a longer one
    aware: bool = True  # False: compact only past trigger_tokens
    summary_model: str = SUMMARY_MODEL
    summary_max_tokens: int = 4096
    summary_ratio: float = 0.05
    summary_floor: int = 400
    summary_cap: int = 4500

    def summary_tokens(self, summarised: int) -> int:
        """The modelled length of a summary of ``summarised`` tokens."""
        return int(min(self.summary_cap, max(self.summary_floor, self.summary_ratio * summarised)))


@dataclass(frozen=True, slots=True, kw_only=True)
class CompactEdit:
    """One compaction: which client messages were replaced, and the prompt before and after."""

    replaced_messages: int  # client messages [1, cut) are now the summary
    cut: int
    tokens_before: int
    tokens_after: int
    summary_tokens: int


@dataclass(slots=True)
class CompactState:
    """Per conversation: the current summary and where the verbatim tail starts in the client's
    full history (``cut``); ``anchor`` checks that the client still sends the same old turns."""

    run_id: str = "default"
    estimator: TurnEstimator = field(default_factory=TurnEstimator)
    cache: CacheView = field(default_factory=CacheView)
    summary: str | None = None
    summary_tokens: int = 0
    cut: int = 0
    anchor: bytes = b""
    rent: float = 0.0
    compactions: int = 0
    last_error: str | None = None

    def observe(self, usage: Usage, at: float) -> None:
        self.cache.observe(usage, at)


# ----------------------------------------------------------------------------------------------
# The summary call


def _block_text(block: Mapping[str, Any]) -> str | None:
    kind = block.get("type", "text")
    if kind == "text":
        return str(block.get("text", ""))
    if kind in ("thinking", "redacted_thinking"):
        return None
    if kind == "tool_use":
        return f"[called {block.get('name', '')}({json.dumps(block.get('input', {}), ensure_ascii=False)})]"
    if kind == "tool_result":
        content = block.get("content", "")
        if isinstance(content, list):
            parts = [_block_text(p) for p in content if isinstance(p, Mapping)]
            content = "\n".join(p for p in parts if p)
        error = " (error)" if block.get("is_error") is True else ""
        return f"[tool result{error}]\n{content}"
    return json.dumps({k: v for k, v in block.items() if k != "cache_control"}, ensure_ascii=False)


def render_transcript(messages: Sequence[Mapping[str, Any]]) -> str:
    """Messages as plain text for the summarizer (tool calls and results inline), so the summary
    request needs no tool definitions."""
    out: list[str] = []
    for msg in messages:
        role = str(msg.get("role", "user")).upper()
        content = msg.get("content")
        if isinstance(content, str):
            out.append(f"{role}: {content}")
        elif isinstance(content, list):
            texts = [t for t in (_block_text(b) for b in content if isinstance(b, Mapping)) if t]
            if texts:
                out.append(f"{role}: " + "\n".join(texts))
    return "\n\n".join(out)


def summary_body(
    messages: Sequence[Mapping[str, Any]], *, model: str = SUMMARY_MODEL, max_tokens: int = 4096
) -> dict[str, Any]:
    """The Messages API body of the summary call."""
    return {
        "model": model,
        "max_tokens": max_tokens,
        "system": SUMMARY_PROMPT,
        "messages": [
            {"role": "user", "content": "The history to summarise:\n\n" + render_transcript(messages)}
        ],
    }


def make_summarizer(
    client: Any, *, model: str = SUMMARY_MODEL, max_tokens: int = 4096
) -> Callable[[Sequence[Mapping[str, Any]]], str]:
    """``summarize(messages) -> str`` through an ``anthropic.Anthropic`` client (or any object with
    the same ``messages.create``): the same client, key and base URL as the agent's own calls."""

    def summarize(messages: Sequence[Mapping[str, Any]]) -> str:
        resp = client.messages.create(**summary_body(messages, model=model, max_tokens=max_tokens))
        text = "".join(getattr(b, "text", "") for b in resp.content if getattr(b, "type", "") == "text")
        if not text.strip():
            raise UserError(
                f"the summary call to {model} returned no text (stop_reason {resp.stop_reason!r}): "
                "raise summary_max_tokens or pick another summary model"
            )
        return text

    return summarize


# ----------------------------------------------------------------------------------------------
# Compacting a body


def _anchor(messages: Sequence[Any]) -> bytes:
    return hashlib.blake2b(canonical_json(list(messages)), digest_size=16).digest()


def _summary_message(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": SUMMARY_HEADER + text}]}


def _cut_point(messages: Sequence[Any], keep_last: int) -> int | None:
    """Index of the assistant message that starts the last ``keep_last`` tool-result turns."""
    turns = [
        i
        for i, m in enumerate(messages)
        if isinstance(m, Mapping)
        and m.get("role") == "user"
        and isinstance(m.get("content"), list)
        and any(isinstance(b, Mapping) and b.get("type") == "tool_result" for b in m["content"])
    ]
    if len(turns) <= keep_last:
        return None
    target = turns[len(turns) - keep_last] if keep_last > 0 else len(messages)
    for i in range(target - 1, 1, -1):
        m = messages[i]
        if isinstance(m, Mapping) and m.get("role") == "assistant":
            return i
    return None


def _view(body: Mapping[str, Any], state: CompactState) -> dict[str, Any]:
    """The body as the model sees it under the state's summary (state reset if the client's
    history no longer starts with the summarised turns)."""
    messages = body.get("messages")
    out = dict(body)
    if state.summary is None or not isinstance(messages, list):
        return out
    if len(messages) <= state.cut or _anchor(messages[: state.cut]) != state.anchor:
        state.summary, state.summary_tokens, state.cut, state.anchor = None, 0, 0, b""
        return out
    out["messages"] = [messages[0], _summary_message(state.summary), *messages[state.cut :]]
    return out


def _view_request(view: Mapping[str, Any], state: CompactState, original: Request) -> Request:
    """``parse_request(view)`` with the summary's tokens as the state has them and the original's
    token counts on every block that did not change."""
    parsed = parse_request(view)
    if state.summary is None:
        return carry_tokens(parsed, original)
    blocks = list(parsed.blocks)
    summary_index = next(
        b.index for b in blocks if b.section == "messages" and len(b.path) == 4 and b.path[1] == 1
    )
    blocks[summary_index] = replace(blocks[summary_index], tokens=state.summary_tokens)
    parsed = replace(parsed, blocks=tuple(blocks))
    tail = len(blocks) - summary_index - 1
    n_old = len(original.blocks)
    mapping = [(i, i) for i in range(summary_index)] + [
        (summary_index + 1 + k, n_old - tail + k) for k in range(tail) if n_old - tail + k >= 0
    ]
    return carry_tokens(parsed, original, mapping)


@lru_cache(maxsize=64)
def _prompt_tokens(model: str) -> int:
    return parse_request(summary_body([], model=model), keep_body=False).total_tokens


def _first_kept_block(request: Request, view_message: int) -> int:
    for b in request.blocks:
        if b.section == "messages" and int(b.path[1]) >= view_message:
            return b.index
    return len(request.blocks)


def _pays(request: Request, state: CompactState, options: CompactOptions, kept_from: int, at: float) -> bool:
    """Compact when the reads saved over the expected rest of the run repay the re-write and the
    summary call, and the read cost run up while waiting has reached that price."""
    total = request.total_tokens
    if total >= options.trigger_tokens:
        return True
    if not options.aware or total < options.min_tokens:
        return False
    info = model_info(request.model)
    if info is None or not info.price_known or not info.input:
        return False
    start_block = _first_kept_block(request, 1)
    start = request.tokens_through(start_block - 1)
    end = request.tokens_through(_first_kept_block(request, kept_from) - 1)
    old = end - start
    summarised = old + _prompt_tokens(options.summary_model)
    summary = options.summary_tokens(summarised)
    call = cost(Usage(input_tokens=summarised, output_tokens=summary), options.summary_model)
    if call is None or old <= summary:
        return False
    per_token = info.input / 1e6
    call_units = call.total / per_token
    remaining = state.estimator.remaining(state.run_id)
    net, now = edit_value(
        start=start, removed=old, added=summary, cached=state.cache.cached(at), total=total,
        remaining=remaining, model=request.model,
    )  # fmt: skip
    if net - call_units > 0 and state.rent >= now + call_units:
        return True
    state.rent += (old - summary) * price_ratios(request.model)[2]
    return False


def compact(
    body: Mapping[str, Any],
    state: CompactState,
    *,
    summarize: Callable[[Sequence[Mapping[str, Any]]], str],
    options: CompactOptions | None = None,
    at: float | None = None,
    request: Request | None = None,
) -> tuple[dict[str, Any], Request, list[CompactEdit]]:
    """``compact_body`` that also returns the parsed view (token counts carried from ``request``)."""
    options = options or CompactOptions()
    now = time.time() if at is None else at
    state.estimator.seen(state.run_id, now)
    original = request if request is not None else parse_request(body)
    messages = body.get("messages")
    view = _view(body, state)
    parsed = _view_request(view, state, original)
    if not isinstance(messages, list) or not messages or not isinstance(messages[0], Mapping):
        return view, parsed, []
    if messages[0].get("role") != "user":
        return view, parsed, []
    cut = _cut_point(messages, options.keep_last)
    if cut is None or cut <= max(state.cut, 1):
        return view, parsed, []
    kept_from = cut - state.cut + 2 if state.summary is not None else cut
    if not _pays(parsed, state, options, kept_from, now):
        return view, parsed, []
    old_messages = view["messages"][1:kept_from]
    try:
        text = summarize(old_messages)
    except Exception as e:  # a failed summary leaves the request as it was; the run goes on
        state.last_error = f"{type(e).__name__}: {e}"
        return view, parsed, []
    before = parsed.total_tokens
    state.summary, state.cut, state.anchor = text, cut, _anchor(messages[:cut])
    state.summary_tokens = 0
    new_view = _view(body, state)
    fresh = parse_request(new_view)
    state.summary_tokens = next(
        b.tokens for b in fresh.blocks if b.section == "messages" and len(b.path) == 4 and b.path[1] == 1
    )
    state.rent = 0.0
    state.compactions += 1
    new_parsed = _view_request(new_view, state, original)
    edit = CompactEdit(
        replaced_messages=cut - 1,
        cut=cut,
        tokens_before=before,
        tokens_after=new_parsed.total_tokens,
        summary_tokens=state.summary_tokens,
    )
    return new_view, new_parsed, [edit]


def compact_body(
    body: Mapping[str, Any],
    state: CompactState,
    *,
    summarize: Callable[[Sequence[Mapping[str, Any]]], str],
    options: CompactOptions | None = None,
    at: float | None = None,
    request: Request | None = None,
) -> tuple[dict[str, Any], list[CompactEdit]]:
    """The body with old turns replaced by the state's summary (a new one when it pays), and the
    compaction made by this call, if any. The input body is never modified; the client keeps
    sending its full history and every later call re-applies the same summary."""
    view, _, edits = compact(body, state, summarize=summarize, options=options, at=at, request=request)
    return view, edits


# ----------------------------------------------------------------------------------------------
# The simulate adapter


class CompactTransform:
    """Compaction as a ``tokenomy simulate`` transform: the summary call is a billed side request
    on the small model and the summary's length is modelled (module docstring)."""

    name = "compact"

    def __init__(self, options: CompactOptions | None = None) -> None:
        self.options = options or CompactOptions()
        self.runs = RunStates(lambda run_id, est: CompactState(run_id=run_id, estimator=est))

    def state(self, run_id: str) -> CompactState:
        return self.runs.get(run_id)

    def transform(
        self, request: Request, *, run_id: str, at: float
    ) -> tuple[Request, Sequence[tuple[Request, int]]]:
        if request.body is None:
            return request, ()
        state = self.state(run_id)
        side: list[tuple[Request, int]] = []
        modelled: list[int] = []

        def summarize(messages: Sequence[Mapping[str, Any]]) -> str:
            call = parse_request(
                summary_body(
                    messages, model=self.options.summary_model, max_tokens=self.options.summary_max_tokens
                ),
                keep_body=False,
            )
            tokens = self.options.summary_tokens(call.total_tokens)
            side.append((call, tokens))
            modelled.append(tokens)
            return f"[summary {state.compactions + 1} of run {run_id}: modelled as {tokens} tokens]"

        view, parsed, edits = compact(
            request.body, state, summarize=summarize, options=self.options, at=at, request=request
        )
        if state.summary is None:
            return request, side
        if edits and modelled:
            state.summary_tokens = modelled[-1]
            parsed = _view_request(view, state, request)
        return parsed, side

    def observe(self, request: Request, *, run_id: str, at: float, result: CacheResult) -> None:
        self.state(run_id).observe(result.usage, at)

    def observe_ping(self, *, run_id: str, at: float, result: CacheResult) -> None:
        self.state(run_id).observe(result.usage, at)
