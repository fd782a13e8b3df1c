"""The doctor's evidence helpers: pricing a miss, telling models and parameters apart, timing.

Kept apart from ``doctor`` so the state machine there reads as the decision it is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tokenomy.cache import CacheResult
from tokenomy.model import Request, Section, Usage
from tokenomy.pricing import cost, resolve

if TYPE_CHECKING:
    from tokenomy.analysis._doctor_diff import Change
    from tokenomy.model import Turn

# Body fields that change the rendered prompt without touching a block (spec §2.7), in the
# order a reader would look for them.
_PARAM_FIELDS = (
    "tool_choice",
    "thinking",
    "output_config",
    "output_format",
    "context_management",
    "speed",
)


def price_miss(usage: Usage, model: str, missed: int) -> tuple[int, float | None]:
    """Tokens billed instead of read, and what that cost over reading them.

    The missed tokens sit right after the read point, so they were billed as 1h writes first,
    then 5m writes, then plain input (spec §2.6's A/B/C split). The cost is the request's cost
    minus the same request with those tokens read instead, so tier, region and long-context
    rates all apply; ``None`` when the model's price is unknown.
    """
    w1 = min(missed, usage.cache_write_1h)
    w5 = min(missed - w1, usage.cache_write_5m)
    inp = min(missed - w1 - w5, usage.input_tokens)
    moved = w1 + w5 + inp
    if moved <= 0:
        return 0, 0.0
    counterfactual = replace(
        usage,
        cache_write_1h=usage.cache_write_1h - w1,
        cache_write_5m=usage.cache_write_5m - w5,
        input_tokens=usage.input_tokens - inp,
        cache_read=usage.cache_read + moved,
    )
    paid, would = cost(usage, model), cost(counterfactual, model)
    if paid is None or would is None:
        return moved, None
    return moved, max(paid.total - would.total, 0.0)


def ttft_of(turn: Turn, default_s: float) -> float:
    if turn.ttft_s is not None:
        return max(turn.ttft_s, 0.0)
    if turn.latency_s is not None:
        return max(min(turn.latency_s, default_s), 0.0)
    return default_s


def same_model(a: str, b: str) -> bool:
    """Whether two ids share one cache: the engine's rule (exact ids and aliases of one model do)."""
    if a == b or not a or not b:
        return True
    return _cache_scope(a) == _cache_scope(b)


def _cache_scope(model: str) -> str:
    res = resolve(model)
    return res.info.id if res.info is not None and res.exact else model


_LEVEL_ORDER: tuple[Section, ...] = ("tools", "system", "messages")


def changed_params(p: Request, cur: Request, pb: int | None) -> tuple[str, str, str] | None:
    """The first prompt-affecting parameter that changed at a level the cached prefix covers."""
    if pb is None:
        return None
    last_section = p.blocks[pb].section
    covered = _LEVEL_ORDER[: _LEVEL_ORDER.index(last_section) + 1]
    changed = [lvl for lvl in covered if p.params.get(lvl, b"") != cur.params.get(lvl, b"")]
    if not changed:
        return None
    pbody: Mapping[str, Any] = p.body or {}
    cbody: Mapping[str, Any] = cur.body or {}
    for name in _PARAM_FIELDS:
        if _norm_param(name, pbody.get(name)) != _norm_param(name, cbody.get(name)):
            return name, _show(pbody.get(name)), _show(cbody.get(name))
    if b'"images":true' in p.params.get("messages", b"") or b'"images":true' in cur.params.get(
        "messages", b""
    ):
        return (
            "images",
            "present" if b'"images":true' in p.params.get("messages", b"") else "absent",
            ("present" if b'"images":true' in cur.params.get("messages", b"") else "absent"),
        )
    return "anthropic-beta", "one set of beta headers", "another"


def _norm_param(name: str, value: Any) -> Any:
    if name == "tool_choice" and value == {"type": "auto"}:
        return None
    if name == "speed" and value == "standard":
        return None
    return value


def _show(value: Any) -> str:
    return "(not set)" if value is None else json.dumps(value, separators=(",", ":"))


def ttl_or_pending(result: CacheResult) -> tuple[str, int, float] | None:
    """The nearest expired or not-yet-readable entry met above the read point, if any."""
    hit = result.hit_block if result.hit_block is not None else -1
    best: tuple[str, int, float] | None = None
    for o in result.breakpoints:
        for what, block, when in (
            ("expired", o.expired_block, o.expired_at),
            ("pending", o.pending_block, o.pending_until),
        ):
            if block is not None and when is not None and block > hit and (best is None or block > best[1]):
                best = (what, block, when)
    return best


def change_detail(change: Change, p: Request, pb: int) -> str:
    text = change.summary or f"{change.location} changed"
    if change.before or change.after:
        text += f": {change.before!r} → {change.after!r}"
    return text + f", before the breakpoint at {p.blocks[pb].doc_path}"


def duration(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 90:
        return f"{seconds:.0f}s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.1f} min"
    return f"{minutes / 60:.1f} h"
