"""Upstream failures reach the client in the API's own error format, nothing hangs, and every
request still gets its ledger row with its outcome."""

from __future__ import annotations

import socket
from pathlib import Path

import anthropic
import httpx
import pytest
from gw_support import serve_with_lifespan, stack

from tokenomy.gateway import GatewaySettings, create_app
from tokenomy.ledger.requests import read_rows

MODEL = "claude-sonnet-4-6"
HELLO = [{"role": "user", "content": "Hello there"}]


def _client(url: str, fault: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=url,
        api_key="sk-test",
        max_retries=0,
        timeout=20,
        default_headers={"x-tokenomy-fault": fault},
    )


@pytest.mark.parametrize(
    ("fault", "status", "etype"),
    [("429", 429, "rate_limit_error"), ("529", 529, "overloaded_error"), ("500", 500, "api_error")],
)
def test_upstream_errors_pass_through(tmp_path: Path, fault: str, status: int, etype: str) -> None:
    with stack(tmp_path) as s:
        c = _client(s.url, fault)
        with pytest.raises(anthropic.APIStatusError) as info:
            c.messages.create(model=MODEL, max_tokens=20, messages=HELLO)
        assert info.value.status_code == status
        assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == etype  # type: ignore[index]
        with pytest.raises(anthropic.APIStatusError):
            with c.messages.stream(model=MODEL, max_tokens=20, messages=HELLO) as st:
                st.get_final_message()
        c.close()
    rows = s.rows()
    assert len(rows) == 2
    assert all(r.status == status and r.outcome == "upstream_error" and r.error_type == etype for r in rows)


def test_sdk_retry_through_gateway(tmp_path: Path) -> None:
    with stack(tmp_path) as s:
        c = anthropic.Anthropic(
            base_url=s.url,
            api_key="sk-test",
            max_retries=2,
            default_headers={"x-tokenomy-fault": "529:times=1"},
        )
        assert c.messages.create(model=MODEL, max_tokens=20, messages=HELLO).usage.output_tokens > 0
        c.close()
    assert [r.status for r in s.rows()] == [529, 200]


def test_dropped_and_truncated_streams(tmp_path: Path) -> None:
    with stack(tmp_path) as s:
        for fault in ("drop", "truncate"):
            c = _client(s.url, fault)
            with pytest.raises(anthropic.APIError):
                with c.messages.stream(model=MODEL, max_tokens=200, messages=HELLO) as st:
                    st.get_final_message()
            c.close()
        c = _client(s.url, "drop")
        with pytest.raises(anthropic.APIStatusError) as info:
            c.messages.create(model=MODEL, max_tokens=200, messages=HELLO)
        assert info.value.status_code == 502
        c.close()
    rows = s.rows()
    assert [r.outcome for r in rows] == ["dropped", "dropped", "dropped"]
    assert rows[0].error_type == "api_error"


def test_slow_first_token_times_out(tmp_path: Path) -> None:
    with stack(tmp_path, read_timeout_s=0.3) as s:
        c = _client(s.url, "slow:delay=2")
        with pytest.raises(anthropic.APIError):
            with c.messages.stream(model=MODEL, max_tokens=20, messages=HELLO) as st:
                st.get_final_message()
        with pytest.raises(anthropic.APIStatusError) as info:
            c.messages.create(model=MODEL, max_tokens=20, messages=HELLO)
        assert info.value.status_code == 504
        assert info.value.body["error"]["type"] == "timeout_error"  # type: ignore[index]
        c.close()
    assert [r.outcome for r in s.rows()] == ["timeout", "timeout"]


def test_upstream_down(tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    app = create_app(
        GatewaySettings(
            upstream=f"http://127.0.0.1:{port}", db_path=str(tmp_path / "l.db"), connect_timeout_s=2
        )
    )
    with serve_with_lifespan(app) as url:
        c = anthropic.Anthropic(base_url=url, api_key="sk-test", max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as info:
            c.messages.create(model=MODEL, max_tokens=20, messages=HELLO)
        assert info.value.status_code == 502 and info.value.body["error"]["type"] == "api_error"  # type: ignore[index]
        c.close()
    rows = read_rows(tmp_path / "l.db")
    assert [(r.outcome, r.status) for r in rows] == [("unreachable", 502)]


def test_client_abort_mid_stream_is_recorded(tmp_path: Path) -> None:
    with stack(tmp_path, emulator={"latency": "ttft=0.05,tps=200"}) as s:
        body = {"model": MODEL, "max_tokens": 400, "stream": True, "messages": HELLO}
        with httpx.Client(base_url=s.url, timeout=10) as h:
            with h.stream(
                "POST",
                "/v1/messages",
                json=body,
                headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
            ) as r:
                for _ in r.iter_raw():
                    break  # read one chunk, then hang up
    rows = s.rows()
    assert len(rows) == 1 and rows[0].outcome in ("aborted", "ok")
