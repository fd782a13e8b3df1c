"""Observation masking that respects the prompt cache.

Old tool results are most of a long agent run's context, and each one is re-read on every later
turn. Replacing them with a short placeholder ("observation masking", the baseline of "The
Complexity Trap", 2025) shrinks every later read, but it edits an earlier turn: the cached
prefix from the first masked result on is gone, and everything after it is written again at the
write price. Masking every turn (the naive variant) pays that re-write on every request.

The cache-aware variant masks only in chunks large enough to repay the re-write. At each request
it compares, in input-price units (``edit_value``):

- the saving: tokens removed x read price x (expected remaining turns + 1), the remaining turns
  estimated online from the runs seen so far (``TurnEstimator``);
- the cost: the cached tokens after the edit point written again (write price instead of read
  price), from what the cache holds now (``CacheView``, fed by each response's usage).

It masks when the edit pays over the expected rest of the run *and* the read cost the candidates
have already run up since they became maskable reaches the re-write cost (the rent-or-buy rule:
waiting for a larger chunk is cheaper than editing every turn, and this waits exactly as long as
the optimal fixed period would). A lapsed cache makes the re-write free, so masking then is
immediate. Once a result is masked it stays masked, so later requests share the new prefix.

Everything here is a pure function of the body and a small state object, so the gateway and
``wrap()`` call ``mask_body`` per request, and ``tokenomy simulate`` replays it (``MaskTransform``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Generic, TypeVar

from tokenomy.blocks import parse_request
from tokenomy.cache import CacheResult
from tokenomy.model import TTL_SECONDS, Request, Usage
from tokenomy.pricing import model_info

__all__ = [
    "CacheView",
    "MaskEdit",
    "MaskOptions",
    "MaskState",
    "MaskTransform",
    "ToolResult",
    "TurnEstimator",
    "carry_tokens",
    "edit_value",
    "mask_body",
    "placeholder_text",
    "price_ratios",
    "replace_results",
    "text_result_tokens",
    "tool_results",
]

PLACEHOLDER = (
    "[old tool output removed to save context ({tokens} tokens); run the tool again if it is needed]"
)


# ----------------------------------------------------------------------------------------------
# The economics shared by masking, context editing and compaction


def price_ratios(model: str) -> tuple[float, float, float]:
    """(5m write, 1h write, read) per token as a fraction of the input price; the API's published
    multipliers (1.25, 2, 0.1) when the model's price is unknown."""
    info = model_info(model)
    if info is None or not info.price_known or not info.input:
        return 1.25, 2.0, 0.1
    assert info.cache_write_5m is not None and info.cache_write_1h is not None and info.cache_read is not None
    return info.cache_write_5m / info.input, info.cache_write_1h / info.input, info.cache_read / info.input


def edit_value(
    *, start: int, removed: int, added: int, cached: int, total: int, remaining: float, model: str
) -> tuple[float, float]:
    """``(net, now)`` of replacing ``removed`` tokens after prompt position ``start`` by ``added``.

    In input-price units (multiply by the input price per token for dollars). ``now`` is what the
    edit adds to this request's bill: with ``cached`` tokens of the prefix cached, the unedited
    request reads them and writes the rest; the edited one reads only up to ``start`` and writes
    everything after it. ``net`` adds the reads the smaller prompt saves on each of the
    ``remaining`` later turns (which hit the new prefix) and subtracts ``now``.
    """
    w5, _, rd = price_ratios(model)
    saved = removed - added
    new_total = total - saved
    read_before = min(cached, total)
    unedited = read_before * rd + (total - read_before) * w5
    read_after = min(cached, start)
    edited = read_after * rd + (new_total - read_after) * w5
    now = edited - unedited
    return saved * rd * remaining - now, now


class TurnEstimator:
    """Expected remaining turns of a run, learned online from the runs seen so far.

    A run silent for ``ended_after_s`` counts as finished and its length is remembered. With at
    least ``min_runs`` finished runs that reached the current turn, the estimate is their mean
    remaining length; before that it is the run's own age (a scale-free prior: a run that has
    lasted t turns is as likely as not to last t more, Gott's delta-t argument).
    """

    def __init__(
        self, *, ended_after_s: float = 3600.0, min_runs: int = 3, history: int | None = None
    ) -> None:
        self.ended_after_s = ended_after_s
        self.min_runs = min_runs
        # run -> (turns seen, last seen at), least recently seen first: a gateway serving
        # thousands of runs checks only the oldest ones for having finished
        self._runs: dict[str, tuple[int, float]] = {}
        # the finished runs' lengths (only the newest ``history`` of them in a long-lived gateway)
        self._lengths: deque[int] = deque(maxlen=history)

    def seen(self, run_id: str, at: float) -> int:
        """Count one more turn of ``run_id`` at ``at``; return the turns seen so far (this one too)."""
        n = self._runs.pop(run_id, (0, at))[0] + 1
        while self._runs:
            rid, (m, last) = next(iter(self._runs.items()))
            if at - last <= self.ended_after_s:
                break
            self._lengths.append(m)
            del self._runs[rid]
        self._runs[run_id] = (n, at)
        return n

    def remaining(self, run_id: str) -> float:
        """Expected turns after the current one."""
        t = self._runs.get(run_id, (1, 0.0))[0]
        reached = [n - t for n in self._lengths if n >= t]
        if len(reached) >= self.min_runs:
            return sum(reached) / len(reached)
        return float(t)

    def finished(self) -> list[int]:
        return list(self._lengths)


_S = TypeVar("_S")


class RunStates(Generic[_S]):
    """One state per run, all sharing one ``TurnEstimator``: the bookkeeping every simulate
    transform (masking, context editing, compaction) needs."""

    def __init__(self, make: Callable[[str, TurnEstimator], _S]) -> None:
        self.estimator = TurnEstimator()
        self._make = make
        self._states: dict[str, _S] = {}

    def get(self, run_id: str) -> _S:
        st = self._states.get(run_id)
        if st is None:
            st = self._states[run_id] = self._make(run_id, self.estimator)
        return st


@dataclass(slots=True)
class CacheView:
    """What the cache holds for one conversation, as the last response's usage tells it.

    ``tokens`` is the prefix through the request's last breakpoint (read + written), which the
    cache holds until ``expires`` (the TTL counts from the request's start and is refreshed by
    every hit, keep-alive pings included).
    """

    tokens: int = 0
    expires: float = 0.0

    def observe(self, usage: Usage, at: float) -> None:
        cached = usage.cache_read + usage.cache_creation_input_tokens
        ttl = "1h" if usage.cache_write_1h and not usage.cache_write_5m else "5m"
        if cached:
            self.tokens = cached
            self.expires = (
                max(self.expires, at + TTL_SECONDS[ttl]) if usage.cache_read else at + TTL_SECONDS[ttl]
            )
        elif usage.prompt_tokens:
            self.tokens = 0

    def cached(self, at: float) -> int:
        return self.tokens if at < self.expires else 0


# ----------------------------------------------------------------------------------------------
# Finding and replacing tool results


@dataclass(frozen=True, slots=True)
class ToolResult:
    """One ``tool_result`` block of a body, with its place in the parsed request."""

    block: int  # index in request.blocks
    message: int
    content: int
    tool_use_id: str
    tool_name: str
    tokens: int
    turn: int  # which tool-result message (0 = oldest) it belongs to


def tool_results(body: Mapping[str, Any], request: Request) -> list[ToolResult]:
    """Every tool result of the body in prompt order, numbered by tool-result message."""
    names: dict[str, str] = {}
    messages = body.get("messages")
    if not isinstance(messages, list):
        return []
    for msg in messages:
        content = msg.get("content") if isinstance(msg, Mapping) else None
        if isinstance(content, list):
            for blk in content:
                if isinstance(blk, Mapping) and blk.get("type") == "tool_use":
                    names[str(blk.get("id", ""))] = str(blk.get("name", ""))
    out: list[ToolResult] = []
    turn = -1
    last_message = -1
    for b in request.blocks:
        if b.kind != "tool_result" or b.section != "messages" or len(b.path) != 4:
            continue
        mi, ci = int(b.path[1]), int(b.path[3])
        raw = messages[mi]["content"][ci]
        if mi != last_message:
            turn += 1
            last_message = mi
        tid = str(raw.get("tool_use_id", ""))
        out.append(ToolResult(b.index, mi, ci, tid, names.get(tid, ""), b.tokens, turn))
    return out


def placeholder_text(tokens: int) -> str:
    """The text a masked result is replaced with: fixed wording, so every later turn re-sends the
    same bytes and reads them from cache."""
    return PLACEHOLDER.format(tokens=f"{tokens:,}")


def _masked_block(raw: Mapping[str, Any], text: str) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "tool_result", "tool_use_id": raw.get("tool_use_id"), "content": text}
    if raw.get("is_error") is True:
        out["is_error"] = True
    if "cache_control" in raw:
        out["cache_control"] = raw["cache_control"]
    return out


@lru_cache(maxsize=4096)
def text_result_tokens(model: str, text: str) -> int:
    """Tokens of a tool_result block holding ``text``, counted as ``parse_request`` counts it."""
    probe = {"model": model, "messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "x", "content": text}
    ]}]}  # fmt: skip
    return parse_request(probe, keep_body=False).blocks[0].tokens


def replace_results(body: Mapping[str, Any], texts: Mapping[tuple[int, int], str]) -> dict[str, Any]:
    """A copy of ``body`` whose tool results at ``(message, content)`` hold the given texts.

    Only the messages that change are copied; the rest is shared with the input.
    """
    out = dict(body)
    messages = list(body["messages"])
    for mi in sorted({mi for mi, _ in texts}):
        msg = dict(messages[mi])
        content = list(msg["content"])
        for (m, ci), text in texts.items():
            if m == mi:
                content[ci] = _masked_block(content[ci], text)
        msg["content"] = content
        messages[mi] = msg
    out["messages"] = messages
    return out


def carry_tokens(new: Request, old: Request, mapping: Iterable[tuple[int, int]] | None = None) -> Request:
    """``new`` with the token counts of ``old`` on the blocks that did not change.

    Recorded runs may carry exact counts (``scale_to_total``); a rewrite must not replace them by
    estimates. ``mapping`` pairs ``(new_index, old_index)``; by default blocks are paired by index.
    A block is carried only when its bytes are the same.
    """
    pairs = mapping if mapping is not None else ((i, i) for i in range(min(len(new.blocks), len(old.blocks))))
    blocks = list(new.blocks)
    changed = False
    for ni, oi in pairs:
        nb, ob = blocks[ni], old.blocks[oi]
        if nb.data == ob.data and nb.kind == ob.kind and nb.tokens != ob.tokens:
            blocks[ni] = replace(nb, tokens=ob.tokens)
            changed = True
    out = replace(new, blocks=tuple(blocks)) if changed else new
    if old.tokens_exact:
        out = replace(out, tokens_exact=True)
    return out


# ----------------------------------------------------------------------------------------------
# Masking


@dataclass(frozen=True, slots=True, kw_only=True)
class MaskOptions:
    """Knobs of masking. ``keep_last`` tool-result turns are never masked (the Complexity Trap's
    window is 10 turns); results saving fewer than ``min_saving`` tokens are left alone."""

    keep_last: int = 10
    aware: bool = True
    min_saving: int = 32
    exclude_tools: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MaskEdit:
    """One tool result replaced by its placeholder."""

    path: str  # messages.4.content.0
    tool_use_id: str
    tokens_before: int
    tokens_after: int


@dataclass(slots=True)
class MaskState:
    """What masking remembers about one conversation between requests.

    Keep one per conversation (the gateway keys it by conversation, ``wrap()`` by client); share
    one ``TurnEstimator`` across conversations so finished runs teach the estimate.
    """

    run_id: str = "default"
    estimator: TurnEstimator = field(default_factory=TurnEstimator)
    cache: CacheView = field(default_factory=CacheView)
    masked: dict[str, int] = field(default_factory=dict)  # tool_use_id -> tokens it had
    rent: float = 0.0  # read cost run up by maskable results since the last chunk (input units)
    chunks: int = 0

    def observe(self, usage: Usage, at: float) -> None:
        """Feed the response's usage: it says how much of the prompt is cached now."""
        self.cache.observe(usage, at)


def _apply_masks(body: Mapping[str, Any], request: Request, state: MaskState) -> tuple[dict[str, Any], bool]:
    texts = {
        (r.message, r.content): placeholder_text(state.masked[r.tool_use_id])
        for r in tool_results(body, request)
        if r.tool_use_id in state.masked
    }
    if not texts:
        return dict(body), False
    return replace_results(body, texts), True


def _candidates(
    body: Mapping[str, Any], request: Request, state: MaskState, options: MaskOptions
) -> list[tuple[ToolResult, int]]:
    """Maskable results with the tokens each would save: older than the window, not yet masked."""
    results = tool_results(body, request)
    if not results:
        return []
    last_turn = results[-1].turn
    out: list[tuple[ToolResult, int]] = []
    for r in results:
        if r.turn > last_turn - options.keep_last or r.tool_use_id in state.masked or not r.tool_use_id:
            continue
        if r.tool_name and r.tool_name in options.exclude_tools:
            continue
        saving = r.tokens - text_result_tokens(request.model, placeholder_text(r.tokens))
        if saving >= options.min_saving:
            out.append((r, saving))
    return out


def mask_body(
    body: Mapping[str, Any],
    state: MaskState,
    *,
    options: MaskOptions | None = None,
    at: float | None = None,
    request: Request | None = None,
) -> tuple[dict[str, Any], list[MaskEdit]]:
    """The body with old tool results masked, and the results newly masked by this call.

    Results masked by earlier calls on ``state`` are masked again (the client keeps its full
    history; the prompt must not flip back). ``request`` may pass ``parse_request(body)`` when
    the caller has it. The input body is never modified.
    """
    options = options or MaskOptions()
    now = time.time() if at is None else at
    turns = state.estimator.seen(state.run_id, now)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return dict(body), []
    parsed = request if request is not None else parse_request(body)
    current, changed = _apply_masks(body, parsed, state)
    if changed:
        parsed = carry_tokens(parse_request(current), parsed)
    found = _candidates(current, parsed, state, options)
    if not found:
        return current, []
    if options.aware and not _pays(parsed, found, state, now, turns):
        return current, []
    texts: dict[tuple[int, int], str] = {}
    edits: list[MaskEdit] = []
    for r, saving in found:
        state.masked[r.tool_use_id] = r.tokens
        texts[(r.message, r.content)] = placeholder_text(r.tokens)
        edits.append(
            MaskEdit(
                path=f"messages.{r.message}.content.{r.content}",
                tool_use_id=r.tool_use_id,
                tokens_before=r.tokens,
                tokens_after=r.tokens - saving,
            )
        )
    state.rent = 0.0
    state.chunks += 1
    return replace_results(current, texts), edits


def _pays(
    request: Request, found: Sequence[tuple[ToolResult, int]], state: MaskState, at: float, turns: int
) -> bool:
    """Mask now when the chunk repays its re-write over the expected rest of the run and the
    reads it has cost since it became maskable reach that re-write (rent or buy)."""
    saved = sum(s for _, s in found)
    first = found[0][0].block
    start = request.tokens_through(first - 1)
    total = request.total_tokens
    cached = state.cache.cached(at)
    remaining = state.estimator.remaining(state.run_id)
    net, now = edit_value(
        start=start,
        removed=saved,
        added=0,
        cached=cached,
        total=total,
        remaining=remaining,
        model=request.model,
    )
    _, _, rd = price_ratios(request.model)
    if net > 0 and state.rent >= now:
        return True
    state.rent += saved * rd
    return False


# ----------------------------------------------------------------------------------------------
# The simulate adapter


class MaskTransform:
    """Masking as a ``tokenomy simulate`` request transform (one state per run, one estimator).

    The recorded requests carry each turn's full, unmasked history; every one is masked with
    what the run has masked so far plus what this turn decides, so a result masked once stays
    masked in every later request. Requests without a body (usage-only logs) pass unchanged.
    """

    def __init__(self, options: MaskOptions | None = None, *, name: str = "mask") -> None:
        self.name = name
        self.options = options or MaskOptions()
        self.runs = RunStates(lambda run_id, est: MaskState(run_id=run_id, estimator=est))

    def state(self, run_id: str) -> MaskState:
        return self.runs.get(run_id)

    def transform(
        self, request: Request, *, run_id: str, at: float
    ) -> tuple[Request, Sequence[tuple[Request, int]]]:
        if request.body is None:
            return request, ()
        new_body, _ = mask_body(
            request.body, self.state(run_id), options=self.options, at=at, request=request
        )
        if not self.state(run_id).masked:
            return request, ()
        return carry_tokens(_reparse(new_body, request), request), ()

    def observe(self, request: Request, *, run_id: str, at: float, result: CacheResult) -> None:
        self.state(run_id).observe(result.usage, at)

    def observe_ping(self, *, run_id: str, at: float, result: CacheResult) -> None:
        self.state(run_id).observe(result.usage, at)


def _reparse(body: Mapping[str, Any], like: Request) -> Request:
    out = parse_request(body)
    return replace(out, overhead_tokens=like.overhead_tokens) if len(out.blocks) == len(like.blocks) else out
