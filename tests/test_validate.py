"""The one request validator: bad bodies → the API's status, error type and exact words, and
how the emulator's, the gateway's and the batch runner's rules differ."""

from __future__ import annotations

from typing import Any

import pytest

from tokenomy.errors import ApiRequestError
from tokenomy.validate import (
    BATCH,
    EMULATOR,
    GATEWAY,
    Rules,
    check_batch_entry,
    check_body_size,
    check_messages,
    parse_json_body,
)

MODEL = "claude-sonnet-4-6"
HELLO = [{"role": "user", "content": "Hello"}]


def body(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"model": MODEL, "max_tokens": 10, "messages": HELLO}
    out.update(changes)
    return {k: v for k, v in out.items() if v is not ...}


def user(*blocks: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(blocks)}]


TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}
INVALID = "invalid_request_error"

# (body, status, error type, message): the same for every caller's rules
CASES: list[tuple[Any, int, str, str]] = [
    ([1], 400, INVALID, "body: Input should be a valid dictionary"),
    (body(model=...), 400, INVALID, "model: Field required"),
    (body(model=5), 400, INVALID, "model: Input should be a valid string"),
    (body(max_tokens=...), 400, INVALID, "max_tokens: Field required"),
    (body(max_tokens="9"), 400, INVALID, "max_tokens: Input should be a valid integer"),
    (body(max_tokens=True), 400, INVALID, "max_tokens: Input should be a valid integer"),
    (body(max_tokens=-1), 400, INVALID, "max_tokens: Input should be greater than or equal to 0"),
    (body(messages=...), 400, INVALID, "messages: Field required"),
    (body(messages="hi"), 400, INVALID, "messages: Input should be a valid list"),
    (body(messages=[]), 400, INVALID, "messages: at least one message is required"),
    (body(messages=[3]), 400, INVALID, "messages.0: Input should be a valid dictionary"),
    (
        body(messages=[{"role": "robot", "content": "x"}]),
        400,
        INVALID,
        "messages.0.role: Input should be 'user' or 'assistant'",
    ),
    (body(messages=[{"role": "user"}]), 400, INVALID, "messages.0.content: Field required"),
    (
        body(messages=[{"role": "user", "content": 3}]),
        400,
        INVALID,
        "messages.0.content: Input should be a valid string or a list of content blocks",
    ),
    (
        body(messages=[{"role": "user", "content": ""}]),
        400,
        INVALID,
        "messages.0: all messages must have non-empty content except for the optional final assistant message",
    ),
    (
        body(messages=user("x")),
        400,
        INVALID,
        "messages.0.content.0: Input should be a valid dictionary or object to extract fields from",
    ),
    (body(messages=user({"text": "x"})), 400, INVALID, "messages.0.content.0.type: Field required"),
    (body(messages=user({"type": "text"})), 400, INVALID, "messages.0.content.0.text: Field required"),
    (
        body(messages=user({"type": "text", "text": 4})),
        400,
        INVALID,
        "messages.0.content.0.text: Input should be a valid string",
    ),
    (
        body(messages=user({"type": "text", "text": ""})),
        400,
        INVALID,
        "messages: text content blocks must be non-empty",
    ),
    (
        body(
            messages=user(
                {"type": "text", "text": "a"},
                {"type": "text", "text": "b"},
                {"type": "text", "text": "c"},
                {"type": "text", "text": "d"},
                {"type": "text", "text": "e", "cache_control": {"type": "ephemeral", "ttl": "2h"}},
            )
        ),
        400,
        INVALID,
        "messages.0.content.4.cache_control.ttl: Input should be '5m' or '1h'",
    ),
    (
        body(messages=user({"type": "text", "text": "a", "cache_control": {"type": "persistent"}})),
        400,
        INVALID,
        "messages.0.content.0.cache_control.type: Input should be 'ephemeral'",
    ),
    (
        body(
            messages=[
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [{**TOOL_USE, "input": []}]},
            ]
        ),
        400,
        INVALID,
        "messages.1.content.0.input: Input should be a valid dictionary",
    ),
    (
        body(messages=user({"type": "tool_result", "tool_use_id": "toolu_x", "content": "1"})),
        400,
        INVALID,
        "messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_x. Each "
        "`tool_result` block must have a corresponding `tool_use` block in the previous message.",
    ),
    (
        body(
            messages=[
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [TOOL_USE]},
                {"role": "user", "content": "no"},
            ]
        ),
        400,
        INVALID,
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1. "
        "Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
    ),
    (
        body(messages=user({"type": "tool_result", "tool_use_id": 3})),
        400,
        INVALID,
        "messages.0.content.0.tool_use_id: Field required",
    ),
    (
        body(
            messages=[
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "thinking",
                            "thinking": "t",
                            "signature": "s",
                            "cache_control": {"type": "ephemeral"},
                        }
                    ],
                },
            ]
        ),
        400,
        INVALID,
        "messages.1.content.0.cache_control: Extra inputs are not permitted",
    ),
    (body(system=5), 400, INVALID, "system: Input should be a valid string or a list of text blocks"),
    (body(system=[{"type": "image"}]), 400, INVALID, "system.0.type: Input should be 'text'"),
    (
        body(system=[{"type": "text", "text": ""}]),
        400,
        INVALID,
        "system: text content blocks must be non-empty",
    ),
    (body(tools={}), 400, INVALID, "tools: Input should be a valid list"),
    (body(tools=[{"input_schema": {}}]), 400, INVALID, "tools.0.name: Field required"),
    (body(tools=[{"name": "t"}]), 400, INVALID, "tools.0.custom.input_schema: Field required"),
    (
        body(tools=[{"name": "t", "input_schema": {}}, {"name": "t", "input_schema": {}}]),
        400,
        INVALID,
        "tools: Tool names must be unique.",
    ),
    (body(stream="yes"), 400, INVALID, "stream: Input should be a valid boolean"),
    (body(top_k=1.5), 400, INVALID, "top_k: Input should be a valid integer"),
    (body(metadata=[]), 400, INVALID, "metadata: Input should be a valid dictionary"),
    (body(temperature=True), 400, INVALID, "temperature: Input should be a valid number"),
    (body(temperature=1.5), 400, INVALID, "temperature: Input should be less than or equal to 1"),
    (body(temperature=-0.5), 400, INVALID, "temperature: Input should be greater than or equal to 0"),
    (body(stop_sequences=[1]), 400, INVALID, "stop_sequences: Input should be a valid list of strings"),
    (
        body(thinking={"type": "enabled", "budget_tokens": 100}),
        400,
        INVALID,
        "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
    ),
    (
        body(max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 2000}),
        400,
        INVALID,
        "max_tokens: `max_tokens` must be greater than `thinking.budget_tokens`",
    ),
    (
        body(max_tokens=0, stream=True),
        400,
        INVALID,
        "max_tokens: max_tokens=0 (cache pre-warming) cannot be combined with stream: true",
    ),
    (
        body(max_tokens=0, tool_choice={"type": "any"}),
        400,
        INVALID,
        "max_tokens: max_tokens=0 (cache pre-warming) cannot be combined with tool_choice 'any' or 'tool'",
    ),
    (body(inference_geo="eu"), 400, INVALID, "inference_geo: Input should be 'global' or 'us'"),
    (
        body(cache_control={"type": "ephemeral", "ttl": "10m"}),
        400,
        INVALID,
        "cache_control.ttl: Input should be '5m' or '1h'",
    ),
]


@pytest.mark.parametrize("rules", [EMULATOR, GATEWAY, BATCH], ids=["emulator", "gateway", "batch"])
@pytest.mark.parametrize(("bad", "status", "error_type", "message"), CASES, ids=[c[3][:60] for c in CASES])
def test_bad_bodies_get_the_apis_error(
    bad: Any, status: int, error_type: str, message: str, rules: Rules
) -> None:
    with pytest.raises(ApiRequestError) as e:
        check_messages(bad, rules)
    assert (e.value.status, e.value.error_type, e.value.message) == (status, error_type, message)


def test_good_bodies_pass_and_name_their_model() -> None:
    good = body(
        system=[{"type": "text", "text": "s", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        tools=[
            {"name": "t", "input_schema": {"type": "object"}},
            {"type": "web_search_20250305", "name": "web"},
        ],
        messages=[
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [TOOL_USE]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "ok"}],
                    }
                ],
            },
            {"role": "assistant", "content": ""},  # an empty final assistant message is a prefill
        ],
        temperature=0,
        stream=False,
        max_tokens=0,
    )
    info = check_messages(good, EMULATOR)
    assert info is not None and info.id == MODEL
    assert check_messages(good, GATEWAY) is None  # the gateway does not look models up


def test_models_exact_resolved_or_left_to_the_upstream() -> None:
    unknown = body(model="claude-nope-9")
    for rules in (EMULATOR, BATCH):
        with pytest.raises(ApiRequestError) as e:
            check_messages(unknown, rules)
        assert (e.value.status, e.value.error_type, e.value.message) == (
            404,
            "not_found_error",
            "model: claude-nope-9",
        )
    assert check_messages(unknown, GATEWAY) is None
    dated = body(model="claude-sonnet-4-6-20990101")  # not an id the API knows; pricing could guess it
    for rules in (EMULATOR, BATCH):  # a paid batch is not submitted on a guess
        with pytest.raises(ApiRequestError, match="model: claude-sonnet-4-6-20990101"):
            check_messages(dated, rules)
    assert check_messages(body(model=MODEL), BATCH) is not None


def test_model_limits_only_where_the_model_is_known() -> None:
    huge = body(max_tokens=10_000_000)
    with pytest.raises(ApiRequestError, match=r"max_tokens: 10000000 > \d+, which is the maximum allowed"):
        check_messages(huge, EMULATOR)
    assert check_messages(huge, GATEWAY) is None  # a beta header may raise the ceiling: upstream decides


def test_unknown_block_types_closed_or_open_world() -> None:
    newer = body(messages=user({"type": "hologram", "data": "x"}))
    with pytest.raises(ApiRequestError, match="Input tag 'hologram' found using 'type'"):
        check_messages(newer, EMULATOR)
    assert check_messages(newer, GATEWAY) is None


def test_count_tokens_needs_no_max_tokens_and_prefixes_paths() -> None:
    assert check_messages(body(max_tokens=...), EMULATOR, count_tokens=True) is not None
    with pytest.raises(ApiRequestError, match=r"^requests\.2\.params\.messages\.0\.role: "):
        check_messages(body(messages=[{"role": "x", "content": "y"}]), EMULATOR, prefix="requests.2.params.")


def test_batch_entries() -> None:
    seen: set[str] = set()
    assert check_batch_entry(0, {"custom_id": "a-1", "params": body()}, seen)[0] == "a-1"
    cases: list[tuple[Any, str]] = [
        (
            {"custom_id": "a-1", "params": body()},
            "requests: custom_id values must be unique within a batch; 'a-1' appears more than once",
        ),
        (
            {"custom_id": "a b", "params": body()},
            "requests.0.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'",
        ),
        (
            {"custom_id": "x" * 65, "params": body()},
            "requests.0.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'",
        ),
        ({"params": body()}, "requests.0.custom_id: Field required"),
        ({"custom_id": "b"}, "requests.0.params: Field required"),
        (
            {"custom_id": "c", "params": body(stream=True)},
            "requests.0.params.stream: streaming is not supported in Message Batches",
        ),
        (
            {"custom_id": "d", "params": body(speed="fast")},
            "requests.0.params.speed: fast mode is not supported in Message Batches",
        ),
        (
            {"custom_id": "e", "params": body(max_tokens=0)},
            "requests.0.params.max_tokens: 0 is not supported in Message Batches (cache pre-warming is live only)",
        ),
        ("x", "requests.0: Input should be a valid dictionary"),
    ]
    for item, message in cases:
        with pytest.raises(ApiRequestError) as e:
            check_batch_entry(0, item, seen)
        assert (e.value.status, e.value.message) == (400, message)


def test_json_bodies_and_size() -> None:
    assert parse_json_body(b'{"a": 1}') == {"a": 1}
    with pytest.raises(
        ApiRequestError, match="^There was an error parsing the body of your request: invalid JSON"
    ):
        parse_json_body(b'{"a": ')
    with pytest.raises(
        ApiRequestError, match=r"^Input should be a valid dictionary \(the body is a JSON list\)\.$"
    ):
        parse_json_body(b"[1]")
    with pytest.raises(ApiRequestError, match="error parsing"):
        parse_json_body(b"\xff\xfe")
    check_body_size(10, 10)
    with pytest.raises(ApiRequestError) as e:
        check_body_size(11, 10)
    assert (e.value.status, e.value.error_type, e.value.message) == (
        413,
        "request_too_large",
        "Request exceeds the maximum allowed number of bytes (10).",
    )


def test_field_errors_come_before_pairing_errors() -> None:
    stray_then_bad_role = body(
        messages=[
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x"}]},
            {"role": "robot", "content": "x"},
        ]
    )
    with pytest.raises(ApiRequestError, match=r"^messages\.1\.role: "):
        check_messages(stray_then_bad_role, EMULATOR)


def test_sampling_parameters_on_newer_models() -> None:
    """Claude 4.7+ refuses non-default sampling parameters (spec §3.2); older models take them."""
    with pytest.raises(ApiRequestError, match=r"^temperature: claude-opus-4-7 does not accept a non-default"):
        check_messages(body(model="claude-opus-4-7", temperature=0.2), EMULATOR)
    with pytest.raises(ApiRequestError, match=r"^params\.top_k: "):
        check_messages(body(model="claude-opus-5", top_k=5), BATCH, prefix="params.")
    assert check_messages(body(model="claude-opus-4-7", temperature=1), EMULATOR) is not None
    assert check_messages(body(model="claude-sonnet-4-6", temperature=0.2), EMULATOR) is not None
    assert check_messages(body(model="claude-opus-4-7", temperature=0.2), GATEWAY) is None  # the API decides
