"""Keys are forwarded, never kept: a canary key appears nowhere in the ledger, the logs or
/metrics. Gateway tokens keep strangers out. The CLI warns when binding off loopback."""

from __future__ import annotations

import logging
from pathlib import Path

import anthropic
import httpx
import pytest
from click.testing import CliRunner
from gw_support import CANARY, stack

MODEL = "claude-sonnet-4-6"
HELLO = [{"role": "user", "content": "Hello there"}]


def test_canary_key_found_nowhere(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger="tokenomy")
    with stack(tmp_path, store_bodies=True) as s:
        c = anthropic.Anthropic(base_url=s.url, api_key=CANARY, max_retries=0)
        c.messages.create(model=MODEL, max_tokens=20, messages=HELLO)
        with c.messages.stream(model=MODEL, max_tokens=20, messages=HELLO) as st:
            st.get_final_message()
        with pytest.raises(anthropic.BadRequestError):
            c.messages.create(model=MODEL, max_tokens=20, messages=HELLO, extra_body={"temperature": "hot"})
        bearer = anthropic.Anthropic(base_url=s.url, auth_token=CANARY, max_retries=0)
        bearer.messages.create(model=MODEL, max_tokens=20, messages=HELLO)
        metrics = httpx.get(s.url + "/metrics").text
        c.close()
        bearer.close()
    assert len(s.rows()) == 4
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert CANARY.encode() not in f.read_bytes(), f
    out, err = capfd.readouterr()
    assert CANARY not in out + err + caplog.text + metrics
    assert "tokenomy_requests_total" in metrics


def test_auth_token_enforced(tmp_path: Path) -> None:
    with stack(tmp_path, auth_tokens=("gw-secret",)) as s:
        c = anthropic.Anthropic(base_url=s.url, api_key="sk-test", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError) as info:
            c.messages.create(model=MODEL, max_tokens=20, messages=HELLO)
        assert info.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
        bad = c.with_options(default_headers={"x-tokenomy-token": "wrong"})
        with pytest.raises(anthropic.AuthenticationError):
            bad.messages.create(model=MODEL, max_tokens=20, messages=HELLO)
        assert httpx.get(s.url + "/metrics").status_code == 401
        assert httpx.get(s.url + "/healthz").status_code == 200
        ok = c.with_options(default_headers={"x-tokenomy-token": "gw-secret"})
        assert ok.messages.create(model=MODEL, max_tokens=20, messages=HELLO).usage.output_tokens > 0
        c.close()
    assert len(s.rows()) == 1  # refused callers never reach the ledger or the upstream


def test_serve_warns_off_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from tokenomy.cli import cli

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    r = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "0"])
    assert r.exit_code == 0, r.output
    assert "warning: binding 0.0.0.0" in r.output and "--auth-token" in r.output
    r = CliRunner().invoke(cli, ["serve", "--port", "0"])
    assert "warning" not in r.output
    r = CliRunner().invoke(cli, ["serve", "--upstream", "ftp://x"])
    assert r.exit_code != 0
