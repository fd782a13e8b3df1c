"""The cache engine against every worked example of spec §2, and its invariants (hypothesis)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenomy.blocks import parse_request
from tokenomy.cache import CacheEngine, CacheOptions
from tokenomy.errors import CacheControlError
from tokenomy.model import Request
from tokenomy.pricing import cost


def _texts(n: int, tag: str = "") -> list[str]:
    return [f"{tag}block {i}: " + "lorem ipsum dolor sit amet " * 5 for i in range(n)]


def make_request(
    n: int,
    bps: dict[int, str] | None = None,
    *,
    tokens: int | list[int] = 300,
    model: str = "claude-sonnet-4-5",
    tag: str = "",
    overhead: int = 0,
    body_extra: dict[str, Any] | None = None,
) -> Request:
    """One user message of ``n`` text blocks; ``bps`` maps 1-based block number to TTL."""
    bps = bps or {}
    content: list[dict[str, Any]] = []
    for i, text in enumerate(_texts(n, tag), start=1):
        blk: dict[str, Any] = {"type": "text", "text": text}
        if i in bps:
            blk["cache_control"] = {"type": "ephemeral", "ttl": bps[i]}
        content.append(blk)
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": content}],
    }
    body.update(body_extra or {})
    req = parse_request(body)
    sizes = tokens if isinstance(tokens, list) else [tokens] * n
    return replace(
        req,
        blocks=tuple(replace(b, tokens=sizes[i]) for i, b in enumerate(req.blocks)),
        overhead_tokens=overhead,
    )


# -- spec §2.4: the 10 -> 15 -> 35 lookback example ------------------------------------------


def test_lookback_worked_example() -> None:
    eng = CacheEngine()
    r1 = eng.process(make_request(10, {10: "5m"}), at=0)
    assert (r1.usage.cache_read, r1.usage.cache_write_5m) == (0, 3000)

    r2 = eng.process(make_request(15, {15: "5m"}), at=10)
    assert r2.usage.cache_read == 3000  # walked back from 15 and hit the entry at 10
    assert r2.usage.cache_write_5m == 1500
    assert r2.hit_block == 9

    r3 = eng.process(make_request(35, {35: "5m"}), at=20)
    assert r3.usage.cache_read == 0  # the entry at 15 is one position outside the window
    assert r3.usage.cache_write_5m == 35 * 300


def test_second_breakpoint_fixes_the_lookback_example() -> None:
    eng = CacheEngine()
    eng.process(make_request(10, {10: "5m"}), at=0)
    eng.process(make_request(15, {15: "5m"}), at=10)
    r3 = eng.process(make_request(35, {15: "5m", 35: "5m"}), at=20)
    assert r3.usage.cache_read == 15 * 300
    assert r3.usage.cache_write_5m == 20 * 300


def test_lookback_window_counts_the_breakpoint_itself() -> None:
    eng = CacheEngine()
    eng.process(make_request(10, {10: "5m"}), at=0)
    # breakpoint at 29: positions 28..9 (0-based) are the 20 checked -> hits block 9
    assert eng.peek(make_request(29, {29: "5m"}), at=1).usage.cache_read == 3000
    # breakpoint at 30: positions 29..10 -> block 9 is the 21st position back
    assert eng.peek(make_request(30, {30: "5m"}), at=1).usage.cache_read == 0


def test_tool_result_run_is_one_position() -> None:
    def body(n_results: int, bp_last: bool) -> dict[str, Any]:
        results = [
            {"type": "tool_result", "tool_use_id": f"t{i}", "content": "x " * 400} for i in range(n_results)
        ]
        uses = [
            {"type": "tool_use", "id": f"t{i}", "name": "read", "input": {"i": i}} for i in range(n_results)
        ]
        if bp_last:
            results[-1]["cache_control"] = {"type": "ephemeral"}
        return {
            "model": "claude-sonnet-4-5",
            "max_tokens": 10,
            "system": [{"type": "text", "text": "sys " * 1200, "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": uses},
                {"role": "user", "content": results},
            ],
        }

    req = parse_request(body(30, True))
    positions = [b.position for b in req.blocks]
    # system, "go", 30 tool_use -> one position, 30 tool_result -> one position
    assert positions[-1] == 3 and positions[2] == positions[31] == 2
    eng = CacheEngine()
    eng.process(parse_request(body(30, False)), at=0)  # writes only the system entry
    res = eng.peek(req, at=1)
    # walking back from the last tool_result reaches the system entry in 4 positions, not 62 blocks
    assert res.usage.cache_read == req.tokens_through(0)


# -- spec §2.6 / §3.10: mixing TTLs ------------------------------------------------------------


def test_mixed_ttl_billing_example() -> None:
    eng = CacheEngine()
    sizes = [10_000, 30_000, 5_000, 200]
    eng.process(make_request(4, {1: "1h"}, tokens=sizes, model="claude-sonnet-4-6"), at=0)
    res = eng.process(
        make_request(4, {1: "1h", 2: "1h", 3: "5m"}, tokens=sizes, model="claude-sonnet-4-6"), at=60
    )
    u = res.usage
    assert (u.cache_read, u.cache_write_1h, u.cache_write_5m, u.input_tokens) == (10_000, 30_000, 5_000, 200)
    priced = cost(replace(u, output_tokens=300), "claude-sonnet-4-6")
    assert priced is not None and priced.total == pytest.approx(0.20685)


def test_ttl_order_is_validated_with_the_apis_wording() -> None:
    with pytest.raises(CacheControlError) as err:
        CacheEngine().process(make_request(6, {2: "5m", 5: "1h"}), at=0)
    assert err.value.status == 400 and err.value.error_type == "invalid_request_error"
    assert str(err.value) == (
        "messages.0.content.4.cache_control.ttl: a ttl='1h' cache_control block must not come after a "
        "ttl='5m' cache_control block. Note that blocks are processed in the following order: "
        "`tools`, `system`, `messages`."
    )


def test_five_breakpoints_is_a_400() -> None:
    with pytest.raises(
        CacheControlError, match=r"^A maximum of 4 blocks with cache_control may be provided\. Found 5\.$"
    ):
        CacheEngine().process(make_request(6, {1: "5m", 2: "5m", 3: "5m", 4: "5m", 5: "5m"}), at=0)


# -- spec §2.5: minimum cacheable length -------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "minimum"),
    [
        ("claude-sonnet-4-5", 1024),
        ("claude-haiku-4-5", 4096),
        ("claude-opus-4-7", 2048),
        ("claude-opus-5-5", 512),
    ],
)
def test_minimum_cacheable_length(model: str, minimum: int) -> None:
    eng = CacheEngine()
    short = make_request(1, {1: "5m"}, tokens=minimum - 1, model=model)
    assert eng.process(short, at=0).usage.cache_creation_input_tokens == 0
    assert eng.process(short, at=1).usage.cache_read == 0
    assert eng.process(short, at=1).usage.input_tokens == minimum - 1
    enough = make_request(1, {1: "5m"}, tokens=minimum, model=model, tag="b")
    assert eng.process(enough, at=2).usage.cache_write_5m == minimum
    assert eng.process(enough, at=3).usage.cache_read == minimum


# -- spec §2.4: concurrency; §2.6: TTL from request start, refreshed on hit ---------------------


def test_entry_readable_only_after_first_token() -> None:
    eng = CacheEngine()
    req = make_request(10, {10: "5m"})
    eng.process(req, at=100.0, ttft=2.0)
    concurrent = eng.process(req, at=101.0, ttft=2.0)
    assert concurrent.usage.cache_read == 0 and concurrent.usage.cache_write_5m == 3000
    assert concurrent.breakpoints[0].pending_block == 9
    assert eng.process(req, at=104.0).usage.cache_read == 3000


def test_ttl_counts_from_request_start_and_refreshes_on_hit() -> None:
    eng = CacheEngine()
    req = make_request(10, {10: "5m"})
    eng.process(req, at=0)
    assert eng.process(req, at=299).usage.cache_read == 3000  # refreshed to 599
    assert eng.process(req, at=598).usage.cache_read == 3000  # refreshed to 898
    late = eng.process(req, at=898 + 1)
    assert late.usage.cache_read == 0 and late.breakpoints[0].expired_block == 9


def test_one_hour_ttl_survives_a_long_gap() -> None:
    eng = CacheEngine()
    req = make_request(10, {10: "1h"})
    assert eng.process(req, at=0).usage.cache_write_1h == 3000
    assert eng.process(req, at=3000).usage.cache_read == 3000
    assert eng.process(req, at=3000 + 3601).usage.cache_read == 0


# -- spec §2.1: automatic caching ---------------------------------------------------------------


def test_automatic_caching_moves_forward() -> None:
    eng = CacheEngine()
    auto = {"cache_control": {"type": "ephemeral"}}
    assert eng.process(make_request(10, body_extra=auto), at=0).usage.cache_write_5m == 3000
    res = eng.process(make_request(12, body_extra=auto), at=1)
    assert (res.usage.cache_read, res.usage.cache_write_5m) == (3000, 600)
    assert res.breakpoints[0].automatic


def test_automatic_caching_conflicts() -> None:
    auto_1h = {"cache_control": {"type": "ephemeral", "ttl": "1h"}}
    with pytest.raises(CacheControlError):  # last block has a different TTL
        CacheEngine().process(make_request(3, {3: "5m"}, body_extra=auto_1h), at=0)
    with pytest.raises(CacheControlError, match="Found 5"):  # no slot left
        CacheEngine().process(make_request(6, {1: "1h", 2: "1h", 3: "1h", 4: "1h"}, body_extra=auto_1h), at=0)
    # same TTL on the last block: a no-op, one breakpoint
    res = CacheEngine().process(make_request(3, {3: "1h"}, body_extra=auto_1h), at=0)
    assert len(res.breakpoints) == 1


# -- scope and invalidation (spec §2.4, §2.7) -------------------------------------------------------


def test_caches_are_per_model_and_per_workspace() -> None:
    eng = CacheEngine()
    eng.process(make_request(10, {10: "5m"}, model="claude-sonnet-4-5"), at=0)
    assert (
        eng.peek(make_request(10, {10: "5m"}, model="claude-sonnet-4-5-20250929"), at=1).usage.cache_read
        == 3000
    )
    assert eng.peek(make_request(10, {10: "5m"}, model="claude-opus-4-5"), at=1).usage.cache_read == 0
    assert eng.peek(make_request(10, {10: "5m"}), workspace="other", at=1).usage.cache_read == 0


def _body(tool_choice: Any = None, tools_order: tuple[str, ...] = ("a", "b")) -> dict[str, Any]:
    tools = [
        {"name": n, "description": "tool " + n + " " + "words " * 300, "input_schema": {"type": "object"}}
        for n in tools_order
    ]
    tools[-1]["cache_control"] = {"type": "ephemeral"}
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 10,
        "tools": tools,
        "system": [{"type": "text", "text": "system " * 900, "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi " * 900, "cache_control": {"type": "ephemeral"}}],
            }
        ],
    }
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    return body


def test_tool_choice_change_invalidates_messages_only() -> None:
    eng = CacheEngine()
    base = parse_request(_body())
    eng.process(base, at=0)
    changed = parse_request(_body(tool_choice={"type": "any"}))
    res = eng.peek(changed, at=1)
    system_end = next(b.index for b in changed.blocks if b.section == "system")
    assert res.usage.cache_read == changed.tokens_through(system_end)
    # the default tool_choice spelled out is not a change
    assert (
        eng.peek(parse_request(_body(tool_choice={"type": "auto"})), at=1).usage.cache_read
        == base.total_tokens
    )


def test_tool_reorder_invalidates_everything() -> None:
    eng = CacheEngine()
    eng.process(parse_request(_body()), at=0)
    assert eng.peek(parse_request(_body(tools_order=("b", "a"))), at=1).usage.cache_read == 0


def test_string_content_and_one_text_block_are_the_same_prompt() -> None:
    a = parse_request(
        {
            "model": "claude-sonnet-4-5",
            "system": "You are terse.",
            "messages": [{"role": "user", "content": "hi"}],
        }
    )
    b = parse_request(
        {
            "model": "claude-sonnet-4-5",
            "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        }
    )
    assert [x.prefix_hash for x in a.blocks] == [x.prefix_hash for x in b.blocks]


def test_named_options_change_the_reading() -> None:
    eng = CacheEngine(CacheOptions(readable_after="request_start"))
    req = make_request(10, {10: "5m"})
    eng.process(req, at=0, ttft=5)
    assert eng.process(req, at=1).usage.cache_read == 3000
    flat = CacheEngine(CacheOptions(collapse_tool_runs=False, lookback=5))
    flat.process(make_request(10, {10: "5m"}), at=0)
    assert flat.peek(make_request(15, {15: "5m"}), at=1).usage.cache_read == 0


# -- invariants -----------------------------------------------------------------------------


_shapes = st.tuples(
    st.lists(st.integers(min_value=0, max_value=3000), min_size=1, max_size=40),
    st.data(),
)


def _random_request(sizes: list[int], data: st.DataObject, tag: str = "") -> Request:
    n = len(sizes)
    k = data.draw(st.integers(min_value=0, max_value=min(4, n)))
    picks = sorted(data.draw(st.lists(st.integers(1, n), min_size=k, max_size=k, unique=True)))
    n_1h = data.draw(st.integers(0, len(picks)))
    bps = {p: ("1h" if i < n_1h else "5m") for i, p in enumerate(picks)}
    return make_request(n, bps, tokens=sizes, tag=tag)


@settings(max_examples=150, deadline=None)
@given(_shapes, _shapes)
def test_usage_classes_sum_to_the_prompt(first: Any, second: Any) -> None:
    eng = CacheEngine()
    r1 = _random_request(first[0], first[1])
    r2 = _random_request(second[0], second[1])
    for at, req in ((0.0, r1), (30.0, r2), (60.0, r1)):
        u = eng.process(req, at=at).usage
        assert u.input_tokens + u.cache_creation_input_tokens + u.cache_read == req.total_tokens
        assert min(u.input_tokens, u.cache_write_5m, u.cache_write_1h, u.cache_read) >= 0


@settings(max_examples=150, deadline=None)
@given(_shapes, st.floats(min_value=0.0, max_value=299.0))
def test_identical_request_within_ttl_reads_through_its_last_breakpoint(shape: Any, gap: float) -> None:
    req = _random_request(shape[0], shape[1])
    eng = CacheEngine()
    first = eng.process(req, at=0.0)
    qualifying = [b for b in first.breakpoints if b.qualifies]
    second = eng.process(req, at=gap)
    expected = qualifying[-1].tokens if qualifying else 0
    assert second.usage.cache_read == expected
    assert second.usage.cache_creation_input_tokens == 0


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=50, max_value=3000), min_size=2, max_size=30), st.data())
def test_changing_a_byte_before_the_breakpoint_turns_the_read_into_a_write(
    sizes: list[int], data: Any
) -> None:
    n = len(sizes)
    bp = data.draw(st.integers(1, n))
    victim = data.draw(st.integers(0, bp - 1))
    req = make_request(n, {bp: "5m"}, tokens=sizes)
    eng = CacheEngine()
    eng.process(req, at=0.0)
    if req.tokens_through(bp - 1) < 1024:
        return
    body = dict(req.body or {})
    content = [dict(b) for b in body["messages"][0]["content"]]
    content[victim]["text"] = content[victim]["text"] + "!"
    body["messages"] = [{"role": "user", "content": content}]
    mutated = parse_request(body)
    mutated = replace(
        mutated,
        blocks=tuple(replace(b, tokens=sizes[i]) for i, b in enumerate(mutated.blocks)),
        overhead_tokens=0,
    )
    res = eng.process(mutated, at=1.0)
    assert res.usage.cache_read == 0
    assert res.usage.cache_write_5m == req.tokens_through(bp - 1)


# -- review fixes ------------------------------------------------------------------------------


def test_concurrent_rewrite_keeps_the_first_writers_readability() -> None:
    eng = CacheEngine()
    req = make_request(10, {10: "5m"})
    eng.process(req, at=0.0, ttft=10.0)
    assert eng.process(req, at=1.0, ttft=10.0).usage.cache_read == 0  # pending: a miss
    assert eng.process(req, at=10.5).usage.cache_read == 3000  # the first write is readable


def _thinking_turns(model: str, with_third: bool) -> dict[str, Any]:
    big = "context " * 5000
    msgs: list[dict[str, Any]] = [
        {"role": "user", "content": big},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "let me look " * 50, "signature": "sig"},
                {"type": "tool_use", "id": "t1", "name": "read", "input": {"path": "a.py"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": "x = 1",
                    "cache_control": {"type": "ephemeral"},
                }
            ],
        },
    ]
    if with_third:
        msgs += [
            {"role": "assistant", "content": "done"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "next", "cache_control": {"type": "ephemeral"}}],
            },
        ]
    return {
        "model": model,
        "max_tokens": 100,
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "messages": msgs,
    }


@pytest.mark.parametrize(("model", "reads"), [("claude-haiku-4-5", False), ("claude-opus-4-6", True)])
def test_prior_turn_thinking_dropped_by_the_model_breaks_the_prefix(model: str, reads: bool) -> None:
    eng = CacheEngine()
    turn2 = parse_request(_thinking_turns(model, with_third=False))
    assert any(b.kind == "thinking" and b.tokens > 0 for b in turn2.blocks)  # the current turn keeps it
    eng.process(turn2, at=0)
    turn3 = parse_request(_thinking_turns(model, with_third=True))
    assert any(b.kind.startswith("thinking") and (b.tokens == 0) != reads for b in turn3.blocks)
    assert (eng.process(turn3, at=5).usage.cache_read > 0) is reads


def test_cache_control_on_a_thinking_block_caches_nothing() -> None:
    body = _thinking_turns("claude-opus-4-6", with_third=False)
    body["messages"][1]["content"][0]["cache_control"] = {"type": "ephemeral"}
    req = parse_request(body)
    res = CacheEngine().process(req, at=0)
    assert [o.block_index for o in res.breakpoints] == [req.breakpoints[-1]]


def test_spelled_out_defaults_do_not_change_the_prompt() -> None:
    base = {"model": "claude-opus-5-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    plain = parse_request(base)
    assert parse_request({**base, "thinking": {"type": "disabled"}}).params == plain.params
    assert parse_request({**base, "output_config": {"effort": "medium"}}).params == plain.params
    assert parse_request({**base, "output_config": {"effort": "high"}}).params != plain.params


def test_a_blocks_own_key_order_is_not_the_prompt_but_its_inputs_is() -> None:
    def body(block: dict[str, Any]) -> dict[str, Any]:
        return {
            "model": "claude-sonnet-4-6",
            "messages": [{"role": "user", "content": "go"}, {"role": "assistant", "content": [block]}],
        }

    recorded = {"type": "tool_use", "id": "t1", "name": "read", "input": {"path": "a", "line": 3}}
    dumped = {"id": "t1", "input": {"path": "a", "line": 3}, "name": "read", "type": "tool_use"}
    reordered_input = {"type": "tool_use", "id": "t1", "name": "read", "input": {"line": 3, "path": "a"}}
    h = [parse_request(body(b)).blocks[-1].prefix_hash for b in (recorded, dumped, reordered_input)]
    assert h[0] == h[1] and h[0] != h[2]
