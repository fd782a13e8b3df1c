"""Bad input gets the API's 400 (413 for size) from the gateway itself: nothing goes upstream,
and the ledger still has a row with the error. The request parser is fuzzed for no 500s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from gw_support import serve_with_lifespan
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenomy.errors import ApiRequestError
from tokenomy.gateway import GatewaySettings, Inspector, create_app
from tokenomy.ledger.requests import read_rows

MODEL = "claude-sonnet-4-6"
HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01", "content-type": "application/json"}


def _blocks(n: int, ttl: str | None = None) -> list[dict[str, Any]]:
    cc: dict[str, str] = {"type": "ephemeral"} if ttl is None else {"type": "ephemeral", "ttl": ttl}
    return [{"type": "text", "text": f"block {i}", "cache_control": cc} for i in range(n)]


CASES: list[tuple[bytes, int, str]] = [
    (b'{"model": "x", ', 400, "error parsing the body"),
    (b"[1, 2]", 400, "valid dictionary"),
    (json.dumps({"model": MODEL, "max_tokens": "100", "messages": []}).encode(), 400, "max_tokens"),
    (json.dumps({"model": 5, "max_tokens": 1, "messages": []}).encode(), 400, "model"),
    (json.dumps({"model": MODEL, "max_tokens": 1, "messages": "hi"}).encode(), 400, "messages"),
    (
        json.dumps({"model": MODEL, "max_tokens": 1, "messages": [{"role": "user", "content": 3}]}).encode(),
        400,
        "messages.0.content",
    ),
    (
        json.dumps(
            {"model": MODEL, "max_tokens": 1, "messages": [{"role": "user", "content": _blocks(5)}]}
        ).encode(),
        400,
        "A maximum of 4 blocks with cache_control may be provided. Found 5.",
    ),
    (
        json.dumps(
            {
                "model": MODEL,
                "max_tokens": 1,
                "system": _blocks(1, "5m"),
                "messages": [{"role": "user", "content": _blocks(1, "1h")}],
            }
        ).encode(),
        400,
        "must not come after a ttl='5m'",
    ),
    (
        json.dumps(
            {
                "model": MODEL,
                "max_tokens": 1,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "a", "cache_control": {"type": "ephemeral", "ttl": "2h"}}
                        ],
                    }
                ],
            }
        ).encode(),
        400,
        "messages.0.content.0.cache_control.ttl",
    ),
]


def test_bad_input_never_reaches_upstream(tmp_path: Path) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"usage": {"input_tokens": 1, "output_tokens": 1}})

    app = create_app(
        GatewaySettings(
            upstream="http://upstream.invalid", db_path=str(tmp_path / "l.db"), max_body_bytes=4096
        ),
        transport=httpx.MockTransport(handler),
    )
    with serve_with_lifespan(app) as url, httpx.Client(base_url=url) as h:
        for raw, status, needle in CASES:
            r = h.post("/v1/messages", content=raw, headers=HEADERS)
            assert r.status_code == status, (raw, r.text)
            body = r.json()
            assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
            assert needle in body["error"]["message"], body
            assert body["request_id"] == r.headers["request-id"]
        big = json.dumps(
            {"model": MODEL, "max_tokens": 1, "messages": [{"role": "user", "content": "x" * 5000}]}
        )
        r = h.post("/v1/messages", content=big.encode(), headers=HEADERS)
        assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"
    assert sent == []
    rows = read_rows(tmp_path / "l.db")
    assert len(rows) == len(CASES) + 1
    assert all(r.outcome == "rejected" and r.error and r.status in (400, 413) for r in rows)


def test_api_size_limit_is_32mb() -> None:
    assert GatewaySettings().max_body_bytes == 32 * 1024 * 1024


scalars = st.sampled_from([None, True, False, 0, -1, 3, 1.5, "", "x", "ephemeral", "1h", "text"])
json_values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.sampled_from(["type", "ttl", "text", "a"]), scalars, max_size=3),
)
block = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image", "tool_use", "tool_result", "thinking", 3])},
    optional={
        "text": json_values,
        "content": json_values,
        "cache_control": st.sampled_from(
            [{"type": "ephemeral"}, {"type": "ephemeral", "ttl": "1h"}, {"type": "x"}, None, "5m"]
        ),
        "input": json_values,
    },
)
message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "bot", None]),
        "content": st.one_of(st.text(max_size=8), st.lists(block, max_size=6), json_values),
    }
)
body = st.fixed_dictionaries(
    {},
    optional={
        "model": st.one_of(st.just(MODEL), json_values),
        "max_tokens": st.one_of(st.integers(-2, 5), json_values),
        "messages": st.one_of(st.lists(message, max_size=4), json_values),
        "system": st.one_of(st.text(max_size=5), st.lists(block, max_size=3), json_values),
        "tools": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {"name": json_values},
                    optional={"input_schema": json_values, "cache_control": json_values},
                ),
                max_size=3,
            ),
            json_values,
        ),
        "cache_control": json_values,
        "stream": json_values,
        "temperature": json_values,
        "tool_choice": json_values,
        "thinking": json_values,
        "stop_sequences": json_values,
    },
)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(
    mode=st.sampled_from(["observe", "optimize"]),
    payload=st.one_of(body.map(lambda b: json.dumps(b).encode()), st.binary(max_size=40)),
)
def test_fuzz_prepare_never_crashes(mode: str, payload: bytes) -> None:
    """Either the API's error (4xx) or a request ready to send; never any other exception."""
    inspector = _INSPECTORS[mode]
    try:
        p = inspector.prepare("POST", "/v1/messages", payload, scope="s")
    except ApiRequestError as e:
        assert 400 <= e.status < 500
        return
    assert p.body_out
    json.loads(p.body_out)


_INSPECTORS = {
    "observe": Inspector(GatewaySettings(ledger=False)),
    "optimize": Inspector(GatewaySettings(ledger=False, mode="optimize")),
}
