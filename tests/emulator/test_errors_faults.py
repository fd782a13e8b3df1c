"""The SDK's own error classes for the emulator's errors, and the fault switches."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import httpx2
import pytest
from emu_support import MODEL, Emu, system_blocks

HELLO = [{"role": "user", "content": "Hello"}]


def _five_breakpoints() -> list[dict[str, Any]]:
    return [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}} for i in range(5)]


def test_bad_requests_raise_sdk_errors(emu: Emu) -> None:
    c = emu.client()
    with pytest.raises(anthropic.BadRequestError) as e:
        c.messages.create(model=MODEL, max_tokens=10, system=_five_breakpoints(), messages=HELLO)
    assert (
        e.value.body["error"]["message"]
        == "A maximum of 4 blocks with cache_control may be provided. Found 5."
    )  # type: ignore[index]
    assert e.value.request_id and e.value.request_id.startswith("req_")

    ttl_order = [
        {"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "b", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    ]
    with pytest.raises(anthropic.BadRequestError, match="must not come after a ttl='5m'"):
        c.messages.create(model=MODEL, max_tokens=10, system=ttl_order, messages=HELLO)
    with pytest.raises(anthropic.NotFoundError, match="model: claude-unknown-9"):
        c.messages.create(model="claude-unknown-9", max_tokens=10, messages=HELLO)
    with pytest.raises(anthropic.BadRequestError, match="maximum allowed number of output tokens"):
        c.messages.create(model=MODEL, max_tokens=10_000_000, messages=HELLO, timeout=30)
    with pytest.raises(anthropic.BadRequestError, match="unexpected `tool_use_id`"):
        c.messages.create(
            model=MODEL,
            max_tokens=10,
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "1"}],
                }
            ],
        )
    with pytest.raises(anthropic.BadRequestError, match="without `tool_result`"):
        c.messages.create(
            model=MODEL,
            max_tokens=10,
            messages=[
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}],
                },
                {"role": "user", "content": "ignored the tool"},
            ],
        )
    with pytest.raises(anthropic.BadRequestError, match="messages.0.role"):
        c.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "robot", "content": "x"}])  # type: ignore[misc,list-item]
    with pytest.raises(anthropic.BadRequestError, match="non-empty"):
        c.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": ""}])
    with pytest.raises(anthropic.BadRequestError, match="cache pre-warming"):
        c.messages.create(model=MODEL, max_tokens=0, messages=HELLO, stream=True)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"max_tokens": 5, "messages": HELLO}, "model: Field required"),
        ({"model": MODEL, "messages": HELLO}, "max_tokens: Field required"),
        ({"model": MODEL, "max_tokens": 5}, "messages: Field required"),
        ({"model": MODEL, "max_tokens": -1, "messages": HELLO}, "greater than or equal to 0"),
        (
            {"model": MODEL, "max_tokens": 5, "messages": HELLO, "system": [{"type": "image"}]},
            "system.0.type",
        ),
    ],
)
def test_required_fields(emu: Emu, body: dict[str, Any], fragment: str) -> None:
    r = httpx.post(
        f"{emu.url}/v1/messages", json=body, headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}
    )
    assert r.status_code == 400
    err = r.json()
    assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error"
    assert fragment in err["error"]["message"]


@pytest.mark.parametrize("emu", [{"faults": "429:times=1:retry-after=0.05"}], indirect=True)
def test_rate_limit_retry_after_is_honoured_by_sdk_retries(emu: Emu) -> None:
    c = emu.client(max_retries=2)
    m = c.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    assert m.content
    assert emu.app.stats.get("POST /v1/messages 429") == 1
    assert emu.app.stats.get("POST /v1/messages 200") == 1


def test_header_faults_per_request(emu: Emu) -> None:
    c = emu.client()
    with pytest.raises(anthropic.RateLimitError) as e:
        c.messages.create(
            model=MODEL,
            max_tokens=10,
            messages=HELLO,
            extra_headers={"x-tokenomy-fault": "429:retry-after=7"},
        )
    assert e.value.response.headers["retry-after"] == "7"
    with pytest.raises(anthropic.OverloadedError):
        c.messages.create(
            model=MODEL, max_tokens=10, messages=HELLO, extra_headers={"x-tokenomy-fault": "529"}
        )
    with pytest.raises(anthropic.InternalServerError):
        c.messages.create(
            model=MODEL, max_tokens=10, messages=HELLO, extra_headers={"x-tokenomy-fault": "500"}
        )
    # times=1 in a header counts the SDK's attempts of one request: the retry succeeds
    retrying = emu.client(max_retries=1)
    ok = retrying.messages.create(
        model=MODEL,
        max_tokens=10,
        messages=HELLO,
        extra_headers={"x-tokenomy-fault": "529:times=1", "retry-after-ms": "1"},
    )
    assert ok.content
    with pytest.raises(anthropic.BadRequestError, match="unknown fault"):
        c.messages.create(
            model=MODEL, max_tokens=10, messages=HELLO, extra_headers={"x-tokenomy-fault": "explode"}
        )


def test_dropped_and_truncated_streams(emu: Emu) -> None:
    c = emu.client()
    with pytest.raises((anthropic.APIConnectionError, httpx2.RemoteProtocolError)):
        with c.messages.stream(
            model=MODEL,
            max_tokens=200,
            system=system_blocks(),
            messages=HELLO,
            extra_headers={"x-tokenomy-fault": "drop"},
        ) as s:
            for _ in s:
                pass
    raw = c.messages.create(
        model=MODEL,
        max_tokens=200,
        system=system_blocks(),
        messages=HELLO,
        stream=True,
        extra_headers={"x-tokenomy-fault": "truncate:after=3"},
    )
    kinds = [e.type for e in raw]
    assert kinds[0] == "message_start" and "message_stop" not in kinds and len(kinds) <= 3


def test_slow_first_token_is_real_time(emu: Emu) -> None:
    c = emu.client(timeout=0.3)
    with pytest.raises(anthropic.APITimeoutError):
        c.messages.create(
            model=MODEL, max_tokens=10, messages=HELLO, extra_headers={"x-tokenomy-fault": "slow:delay=1"}
        )
