"""Plans applied to parsed requests and to raw bodies, and each simple policy's placement."""

from __future__ import annotations

from typing import Any

from tokenomy.analysis.policies import (
    AutoPolicy,
    LiteLLMInjectionPolicy,
    NonePolicy,
    Plan,
    PlanContext,
    SystemOnlyPolicy,
    apply_plan,
    apply_plan_to_body,
    base_index,
    order_ttls,
    top_index,
)
from tokenomy.blocks import parse_request
from tokenomy.cache import effective_breakpoints

CTX = PlanContext(run_id="r", turn_index=0, at=0.0)


def _body() -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 10,
        "system": "You are terse.",
        "tools": [{"name": "t", "description": "d", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": "hello"},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
            },
            {"role": "user", "content": "more"},
        ],
    }


def test_apply_plan_to_body_places_markers_and_keeps_the_prompt() -> None:
    body = _body()
    req = parse_request(body)
    plan = Plan(breakpoints=((base_index(req), "1h"), (top_index(req), "5m")))
    out = apply_plan_to_body(body, req, plan)
    assert out["system"] == [
        {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    ]
    assert out["messages"][2]["content"] == [
        {"type": "text", "text": "more", "cache_control": {"type": "ephemeral"}}
    ]
    assert "cache_control" not in out["messages"][1]["content"][0]  # the recorded marker is dropped
    assert body["system"] == "You are terse."  # the input body is not touched
    again = parse_request(out)
    assert [b.prefix_hash for b in again.blocks] == [b.prefix_hash for b in req.blocks]
    assert again.breakpoints == tuple(sorted(i for i, _ in plan.breakpoints))
    assert apply_plan(req, plan).breakpoints == again.breakpoints


def test_auto_plan_sets_top_level_marker() -> None:
    body = _body()
    req = parse_request(body)
    plan = AutoPolicy().plan(req, CTX)
    out = apply_plan_to_body(body, req, plan)
    assert out["cache_control"] == {"type": "ephemeral"}
    assert effective_breakpoints(apply_plan(req, plan)) == [(top_index(req), "5m", True)]


def test_simple_policies_place_where_documented() -> None:
    req = parse_request(_body())
    assert NonePolicy().plan(req, CTX).breakpoints == ()
    assert apply_plan(req, NonePolicy().plan(req, CTX)).breakpoints == ()
    system_idx = next(b.index for b in req.blocks if b.section == "system")
    assert SystemOnlyPolicy().plan(req, CTX).breakpoints == ((system_idx, "5m"),)
    assert LiteLLMInjectionPolicy().plan(req, CTX).breakpoints == ((system_idx, "5m"),)
    no_system = parse_request({k: v for k, v in _body().items() if k != "system"})
    assert LiteLLMInjectionPolicy().plan(no_system, CTX).breakpoints == ()
    assert SystemOnlyPolicy().plan(no_system, CTX).breakpoints == ((0, "5m"),)  # the last tool


def test_order_ttls_puts_1h_first() -> None:
    assert order_ttls({1: "5m", 5: "1h", 9: "5m"}) == ((1, "1h"), (5, "1h"), (9, "5m"))
