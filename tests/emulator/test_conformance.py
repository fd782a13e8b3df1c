"""The official SDK against the emulator over real loopback HTTP: caching, streaming, counting."""

from __future__ import annotations

import asyncio

import anthropic
import httpx
from emu_support import LONG_SYSTEM, MODEL, Emu, system_blocks

HELLO = [{"role": "user", "content": "Hello, what can you do?"}]


def test_cache_write_read_change_and_ttl(emu: Emu) -> None:
    c = emu.client()
    first = c.messages.create(model=MODEL, max_tokens=200, system=system_blocks(), messages=HELLO)
    written = first.usage.cache_creation_input_tokens
    assert written > 1024
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == written
    assert first.usage.cache_read_input_tokens == 0

    second = c.messages.create(model=MODEL, max_tokens=200, system=system_blocks(), messages=HELLO)
    assert second.usage.cache_read_input_tokens == written
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.input_tokens == first.usage.input_tokens

    changed = LONG_SYSTEM[:-1] + "!"  # one byte
    third = c.messages.create(model=MODEL, max_tokens=200, system=system_blocks(changed), messages=HELLO)
    assert third.usage.cache_read_input_tokens == 0
    assert third.usage.cache_creation_input_tokens > 1024

    emu.clock.advance(299)  # a read refreshes the 5m lifetime ...
    assert (
        c.messages.create(
            model=MODEL, max_tokens=200, system=system_blocks(), messages=HELLO
        ).usage.cache_read_input_tokens
        == written
    )
    emu.clock.advance(301)  # ... and past it the entry is gone
    after = c.messages.create(model=MODEL, max_tokens=200, system=system_blocks(), messages=HELLO)
    assert after.usage.cache_read_input_tokens == 0
    assert after.usage.cache_creation_input_tokens == written


def test_one_hour_ttl_survives_five_minutes(emu: Emu) -> None:
    c = emu.client()
    first = c.messages.create(model=MODEL, max_tokens=50, system=system_blocks(ttl="1h"), messages=HELLO)
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == first.usage.cache_creation_input_tokens > 0
    emu.clock.advance(1800)
    again = c.messages.create(model=MODEL, max_tokens=50, system=system_blocks(ttl="1h"), messages=HELLO)
    assert again.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens


def test_caches_are_per_key_and_per_model(emu: Emu) -> None:
    a, b = emu.client("sk-key-a"), emu.client("sk-key-b")
    w = a.messages.create(model=MODEL, max_tokens=50, system=system_blocks(), messages=HELLO).usage
    assert w.cache_creation_input_tokens > 0
    other_key = b.messages.create(model=MODEL, max_tokens=50, system=system_blocks(), messages=HELLO).usage
    assert other_key.cache_read_input_tokens == 0 and other_key.cache_creation_input_tokens > 0
    other_model = a.messages.create(
        model="claude-opus-4-8", max_tokens=50, system=system_blocks(), messages=HELLO
    ).usage
    assert other_model.cache_read_input_tokens == 0 and other_model.cache_creation_input_tokens > 0
    same = a.messages.create(model=MODEL, max_tokens=50, system=system_blocks(), messages=HELLO).usage
    assert same.cache_read_input_tokens == w.cache_creation_input_tokens


def test_below_minimum_is_not_cached(emu: Emu) -> None:
    short = emu.client().messages.create(
        model=MODEL, max_tokens=20, system=system_blocks("Be brief."), messages=HELLO
    )
    assert short.usage.cache_creation_input_tokens == 0 and short.usage.cache_read_input_tokens == 0


def test_async_client(emu: Emu) -> None:
    async def run() -> tuple[anthropic.types.Usage, anthropic.types.Usage]:
        async with emu.async_client() as c:
            one = await c.messages.create(model=MODEL, max_tokens=64, system=system_blocks(), messages=HELLO)
            two = await c.messages.create(model=MODEL, max_tokens=64, system=system_blocks(), messages=HELLO)
            return one.usage, two.usage

    one, two = asyncio.run(run())
    assert (
        one.cache_creation_input_tokens > 0 and two.cache_read_input_tokens == one.cache_creation_input_tokens
    )


def test_stream_helper_and_event_order(emu: Emu) -> None:
    c = emu.client()
    with c.messages.stream(model=MODEL, max_tokens=300, system=system_blocks(), messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[0].text and text.startswith("Echo")
    assert final.usage.cache_creation_input_tokens > 0 and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 1

    body = {"model": MODEL, "max_tokens": 300, "system": system_blocks(), "messages": HELLO, "stream": True}
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    wire = httpx.post(f"{emu.url}/v1/messages", json=body, headers=headers)
    assert wire.headers["content-type"].startswith("text/event-stream")
    kinds = [line[len("event: ") :] for line in wire.text.splitlines() if line.startswith("event: ")]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds[1:3] == ["content_block_start", "ping"]
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 1
    assert "content_block_delta" in kinds


def test_stream_message_start_carries_cache_usage(emu: Emu) -> None:
    c = emu.client()
    c.messages.create(model=MODEL, max_tokens=50, system=system_blocks(), messages=HELLO)
    events = list(
        c.messages.create(model=MODEL, max_tokens=50, system=system_blocks(), messages=HELLO, stream=True)
    )
    start = events[0]
    assert start.type == "message_start"
    assert start.message.usage.cache_read_input_tokens > 0 and start.message.stop_reason is None
    delta = [e for e in events if e.type == "message_delta"][0]
    assert delta.usage.cache_read_input_tokens == start.message.usage.cache_read_input_tokens


def test_count_tokens_matches_billed_prompt(emu: Emu) -> None:
    c = emu.client()
    counted = c.messages.count_tokens(model=MODEL, system=system_blocks(), messages=HELLO).input_tokens
    u = c.messages.create(model=MODEL, max_tokens=20, system=system_blocks(), messages=HELLO).usage
    assert counted == u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens


def test_tool_use_round_trip_and_automatic_caching(emu: Emu) -> None:
    tools = [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    messages = [
        {"role": "user", "content": LONG_SYSTEM},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "12 C"}]},
    ]
    c = emu.client()
    first = c.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=tools,
        messages=messages,
        extra_body={"cache_control": {"type": "ephemeral"}},
    )
    assert first.usage.cache_creation_input_tokens > 0
    second = c.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=tools,
        messages=messages,
        extra_body={"cache_control": {"type": "ephemeral"}},
    )
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens


def test_max_tokens_cuts_and_prewarm(emu: Emu) -> None:
    c = emu.client()
    long_user = [{"role": "user", "content": " ".join(f"word{i}" for i in range(200))}]
    cut = c.messages.create(model=MODEL, max_tokens=5, messages=long_user)
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens <= 5
    warm = c.messages.create(model=MODEL, max_tokens=0, system=system_blocks(), messages=HELLO)
    assert warm.content == [] and warm.stop_reason == "max_tokens" and warm.usage.output_tokens == 0
    assert warm.usage.cache_creation_input_tokens > 0
    stopped = c.messages.create(model=MODEL, max_tokens=100, messages=HELLO, stop_sequences=["what"])
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "what"


def test_headers_beta_query_and_models(emu: Emu) -> None:
    c = emu.client()
    raw = c.messages.with_raw_response.create(model=MODEL, max_tokens=20, messages=HELLO)
    assert raw.headers["request-id"].startswith("req_")
    for kind in ("requests", "input-tokens", "output-tokens", "tokens"):
        assert int(raw.headers[f"anthropic-ratelimit-{kind}-limit"]) > 0
        assert raw.headers[f"anthropic-ratelimit-{kind}-reset"].endswith("Z")
    beta = c.beta.messages.create(
        model=MODEL, max_tokens=20, messages=HELLO, betas=["extended-cache-ttl-2025-04-11"]
    )
    assert beta.usage.output_tokens > 0
    models = list(c.models.list(limit=3))
    assert len(models) > 3 and models[0].type == "model"  # the SDK pages through
    assert c.models.retrieve(MODEL).id == MODEL


def test_inference_geo_and_response_model(emu: Emu) -> None:
    c = emu.client()
    m = c.messages.create(model=MODEL, max_tokens=20, messages=HELLO, extra_body={"inference_geo": "us"})
    assert m.usage.inference_geo == "us" and m.model == MODEL


def test_diagnostics_cache_miss_reason(emu: Emu) -> None:
    c = emu.client()

    def call(system: str, prev: str | None, model: str = MODEL) -> anthropic.types.Message:
        return c.messages.create(
            model=model,
            max_tokens=20,
            system=system_blocks(system),
            messages=HELLO,
            extra_body={"diagnostics": {"previous_message_id": prev}},
        )

    def reason(m: anthropic.types.Message) -> anthropic.types.CacheMissReason | None:
        assert m.diagnostics is not None
        return m.diagnostics.cache_miss_reason

    first = call(LONG_SYSTEM, None)
    assert first.diagnostics is None
    same = call(LONG_SYSTEM, first.id)
    assert same.diagnostics is None  # nothing diverged
    changed = reason(call(LONG_SYSTEM + " Extra rule.", same.id))
    assert changed is not None and changed.type == "system_changed"
    assert changed.cache_missed_input_tokens > 1000  # type: ignore[union-attr]
    switched = reason(call(LONG_SYSTEM, same.id, "claude-opus-4-8"))
    assert switched is not None and switched.type == "model_changed"
    missing = reason(call(LONG_SYSTEM, "msg_unknown"))
    assert missing is not None and missing.type == "previous_message_not_found"
    longer = c.messages.create(
        model=MODEL,
        max_tokens=20,
        system=system_blocks(),
        diagnostics={"previous_message_id": same.id},
        messages=[{"role": "user", "content": "A different first question"}],
    )
    edited = reason(longer)
    assert edited is not None and edited.type == "messages_changed"
    plain = c.messages.with_raw_response.create(model=MODEL, max_tokens=20, messages=HELLO)
    assert "diagnostics" not in plain.http_response.json()


def test_raw_http_requires_key_and_version(emu: Emu) -> None:
    body = {"model": MODEL, "max_tokens": 10, "messages": HELLO}
    r = httpx.post(f"{emu.url}/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert r.headers["request-id"] == r.json()["request_id"]
    r = httpx.post(f"{emu.url}/v1/messages", json=body, headers={"x-api-key": "k"})
    assert r.status_code == 400 and "anthropic-version" in r.json()["error"]["message"]
    r = httpx.post(
        f"{emu.url}/v1/messages?beta=true",
        content=b"{not json",
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
    )
    assert r.status_code == 400 and r.json()["type"] == "error"
    r = httpx.get(f"{emu.url}/v1/nothing", headers={"x-api-key": "k", "anthropic-version": "2023-06-01"})
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
