"""``tokenomy emulate --clock virtual``: a dry run crosses a TTL over HTTP, without waiting."""

from __future__ import annotations

import anthropic
import httpx

from tokenomy.emulator import VirtualClock
from tokenomy.testing import emulator_server

SYSTEM = [{"type": "text", "text": "You review code. " * 400, "cache_control": {"type": "ephemeral"}}]


def test_advance_the_virtual_clock_past_the_ttl() -> None:
    with emulator_server(clock=VirtualClock(), batch_time="virtual") as (url, _app):
        client = anthropic.Anthropic(base_url=url, api_key="sk-dry-run", max_retries=0)

        def ask() -> anthropic.types.Usage:
            msg = client.messages.create(
                model="claude-sonnet-4-6",
                max_tokens=20,
                system=SYSTEM,
                messages=[{"role": "user", "content": "hi"}],
            )
            return msg.usage

        first = ask()
        assert (first.cache_creation_input_tokens or 0) > 0
        assert ask().cache_read_input_tokens == first.cache_creation_input_tokens
        r = httpx.post(f"{url}/_tokenomy/clock/advance", json={"seconds": 301})
        assert r.status_code == 200 and r.json()["virtual"] is True
        assert ask().cache_creation_input_tokens == first.cache_creation_input_tokens  # expired: a write
        bad = httpx.post(f"{url}/_tokenomy/clock/advance", json={"seconds": -1})
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
        client.close()


def test_a_wall_clock_cannot_be_advanced() -> None:
    with emulator_server() as (url, _app):
        r = httpx.post(f"{url}/_tokenomy/clock/advance", json={"seconds": 10})
        assert r.status_code == 400 and "--clock virtual" in r.json()["error"]["message"]
        assert httpx.get(f"{url}/_tokenomy/clock").json()["virtual"] is False
