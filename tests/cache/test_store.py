"""The engine's store: entries are kept per scope (workspace, model, the section's parameters),
and sweeping, peeking or the scope memo never change what a later request is billed."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tokenomy.blocks import parse_request
from tokenomy.cache import CacheEngine, CacheResult
from tokenomy.model import TTL, Request

SYSTEM = " ".join(f"rule {i}: keep the prefix stable." for i in range(300))


def _request(turns: int, marks: dict[int, TTL], tool_choice: str | None, auto: bool) -> Request:
    messages: list[dict[str, Any]] = []
    for i in range(turns):
        messages.append({"role": "user", "content": f"question {i} " + "detail " * 120})
        messages.append({"role": "assistant", "content": f"answer {i} " + "words " * 80})
    messages.append({"role": "user", "content": "go on"})
    body: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 10, "system": SYSTEM}
    body["messages"] = messages
    if tool_choice is not None:
        body["tools"] = [{"name": "t", "description": "a tool", "input_schema": {"type": "object"}}]
        body["tool_choice"] = {"type": tool_choice}
    req = parse_request(body)
    blocks = tuple(replace(b, cache_ttl=marks.get(b.index)) for b in req.blocks)
    return replace(req, blocks=blocks, auto_cache_ttl="5m" if auto else None)


def _outcome(r: CacheResult) -> tuple[Any, ...]:
    """The bill and what each breakpoint did; not the expired entries met on the way, which a
    sweep is there to drop."""
    bps = tuple(b._replace(expired_block=None, expired_at=None) for b in r.breakpoints)
    return (r.usage, r.read_tokens, bps, r.written, r.hit_block)


_step = st.tuples(
    st.integers(min_value=0, max_value=6),  # turns
    st.floats(min_value=0.0, max_value=900.0),  # gap before it
    st.sampled_from(["default", "other"]),  # workspace
    st.sampled_from([None, "auto", "any"]),  # tool_choice: a messages-level parameter
    st.booleans(),  # top-level automatic caching
    st.lists(st.tuples(st.integers(min_value=0, max_value=14), st.sampled_from(["1h", "5m"])), max_size=3),
    st.booleans(),  # sweep the second engine first
)


@settings(max_examples=120, deadline=None)
@given(st.lists(_step, min_size=1, max_size=14))
def test_sweep_peek_and_scopes_never_change_a_later_bill(steps: list[Any]) -> None:
    plain, busy = CacheEngine(), CacheEngine()
    at = 0.0
    for turns, gap, workspace, tool_choice, auto, marks, sweep in steps:
        at += gap
        req = _request(turns, {}, tool_choice, auto)
        valid = {i: ttl for i, ttl in marks if i < len(req.blocks) and req.blocks[i].cacheable}
        ordered = dict(sorted(valid.items()))
        # the API wants 1h breakpoints before 5m ones: keep the marks in an order it accepts
        ttls = sorted(ordered.values(), key=lambda t: t != "1h")
        last = max(b.index for b in req.blocks if b.cacheable)
        auto = auto and len(valid) < 4 and last not in valid
        req = _request(turns, dict(zip(ordered, ttls, strict=True)), tool_choice, auto)
        if sweep:
            busy.sweep(at)
        peeked = busy.peek(req, workspace=workspace, at=at)
        a = plain.process(req, workspace=workspace, at=at, ttft=1.0)
        b = busy.process(req, workspace=workspace, at=at, ttft=1.0)
        assert _outcome(a) == _outcome(b)
        assert (peeked.usage, peeked.read_tokens) == (a.usage, a.read_tokens)
        for idx in a.written:
            entry = busy.entry_for(req, idx, workspace=workspace)
            assert entry is not None and entry.expires_at > at


def test_sweep_drops_expired_entries_only_and_keeps_scopes_apart() -> None:
    eng = CacheEngine()
    req = _request(3, {}, None, True)
    eng.process(req, at=0.0, ttft=1.0)
    eng.process(req, workspace="other", at=200.0, ttft=1.0)
    changed = _request(3, {}, "any", True)  # another tool_choice: same system, other messages scope
    assert eng.process(changed, at=210.0).read_tokens == 0
    assert len(eng) == 3
    assert eng.sweep(400.0) == 1  # the first workspace's entry (written at 0 s) is gone
    assert len(eng) == 2
    assert eng.entry_for(req, req.blocks[-1].index) is None
    assert eng.process(req, workspace="other", at=450.0).read_tokens == req.total_tokens
    assert eng.sweep(10_000.0) == 2 and len(eng) == 0
    assert eng.process(req, at=10_001.0).read_tokens == 0  # a swept scope is made again
    assert eng.process(req, at=10_010.0, ttft=0.0).read_tokens == req.total_tokens
