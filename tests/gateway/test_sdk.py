"""The official SDK through the gateway to the emulator, unchanged: sync, async, streaming,
batches, count_tokens, models; and a recorded real request passes through byte for byte."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import anthropic
import httpx
from gw_support import Stack, serve_with_lifespan, stack

from tokenomy.gateway import GatewaySettings, create_app

MODEL = "claude-sonnet-4-6"
HELLO = [{"role": "user", "content": "Hello there"}]


def test_sync_async_stream_count_models(gw: Stack) -> None:
    c = anthropic.Anthropic(base_url=gw.url, api_key="sk-test", max_retries=0)
    raw = c.messages.with_raw_response.create(model=MODEL, max_tokens=50, messages=HELLO)
    msg = raw.parse()
    assert msg.type == "message" and msg.usage.input_tokens > 0
    assert raw.headers["x-tokenomy-cache"].startswith("source=response; read=0")
    assert raw.headers["x-tokenomy-run"].startswith("run_")
    assert raw.headers["request-id"]  # the upstream's own id passes through

    with c.messages.stream(model=MODEL, max_tokens=50, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.usage.output_tokens > 0

    assert c.messages.count_tokens(model=MODEL, messages=HELLO).input_tokens > 0
    assert any(m.id for m in c.models.list())

    async def run_async() -> int:
        a = anthropic.AsyncAnthropic(base_url=gw.url, api_key="sk-test", max_retries=0)
        r = await a.messages.create(model=MODEL, max_tokens=50, messages=HELLO)
        async with a.messages.stream(model=MODEL, max_tokens=50, messages=HELLO) as s:
            await s.get_final_message()
        await a.close()
        return r.usage.output_tokens

    assert asyncio.run(run_async()) > 0
    c.close()


def test_batches(gw: Stack) -> None:
    c = anthropic.Anthropic(base_url=gw.url, api_key="sk-test", max_retries=0)
    batch = c.messages.batches.create(
        requests=[
            {"custom_id": f"r{i}", "params": {"model": MODEL, "max_tokens": 20, "messages": HELLO}}
            for i in range(3)
        ]
    )
    got = c.messages.batches.retrieve(batch.id)
    assert got.id == batch.id
    assert [b.id for b in c.messages.batches.list(limit=5)]
    c.close()


def test_ledger_rows_for_everything(tmp_path: Path) -> None:

    with stack(tmp_path) as s:
        c = anthropic.Anthropic(base_url=s.url, api_key="sk-test", max_retries=0)
        c.messages.create(model=MODEL, max_tokens=20, messages=HELLO)
        with c.messages.stream(model=MODEL, max_tokens=20, messages=HELLO) as st:
            st.get_final_message()
        c.messages.count_tokens(model=MODEL, messages=HELLO)
        c.close()
    rows = s.rows()
    assert [r.endpoint for r in rows] == ["/v1/messages", "/v1/messages", "/v1/messages/count_tokens"]
    msg, streamed = rows[0], rows[1]
    assert msg.outcome == "ok" and msg.input_tokens > 0 and msg.output_tokens > 0 and msg.model == MODEL
    assert streamed.stream and streamed.ttft_s is not None and streamed.output_tokens > 0
    assert msg.blocks and json.loads(msg.blocks)[0][1] > 0
    assert msg.request_body is None  # no --store-bodies


def test_recorded_request_passes_intact(workloads: Path, tmp_path: Path) -> None:
    """Real recorded bodies (tools, thinking, images, cache_control) reach the upstream as sent."""
    pairs = workloads / "pydantic-ai-anthropic-cassettes" / "anthropic_api_pairs.jsonl"
    bodies = []
    for line in pairs.read_text().splitlines():
        rec = json.loads(line)
        if rec["endpoint"] == "messages" and rec["request"].get("tools") and rec["request"].get("system"):
            bodies.append(rec["request"])
        if len(bodies) >= 5:
            break
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return httpx.Response(
            200, json={"id": "msg_1", "type": "message", "usage": {"input_tokens": 5, "output_tokens": 1}}
        )

    app = create_app(
        GatewaySettings(upstream="http://upstream.invalid", db_path=str(tmp_path / "l.db")),
        transport=httpx.MockTransport(handler),
    )
    with serve_with_lifespan(app) as url:
        with httpx.Client(base_url=url) as h:
            for body in bodies:
                raw = json.dumps(body).encode()
                r = h.post(
                    "/v1/messages", content=raw, headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}
                )
                assert r.status_code == 200, r.text
                assert seen[-1] == raw
    assert len(seen) == len(bodies) == 5
