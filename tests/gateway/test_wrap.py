"""``tokenomy.wrap(client)``: the same ledger rows, diagnosis and rewrites in-process."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import anthropic
import pytest
from gw_support import CANARY

from tokenomy.errors import UserError
from tokenomy.ledger.requests import read_rows
from tokenomy.testing import emulator_server
from tokenomy.wrap import inspector_of, unwrap, wrap

MODEL = "claude-sonnet-4-6"
SYSTEM = "You are a careful assistant. " * 400
HELLO = [{"role": "user", "content": "Hello there"}]


def test_wrap_sync_stream_and_refusal(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    with emulator_server() as (url, _):
        c = wrap(
            anthropic.Anthropic(base_url=url, api_key=CANARY, max_retries=0), db=str(db), mode="optimize"
        )
        first = c.messages.with_raw_response.create(model=MODEL, max_tokens=20, system=SYSTEM, messages=HELLO)
        assert first.headers["x-tokenomy-cache"].startswith("source=response")
        with c.messages.stream(model=MODEL, max_tokens=20, system=SYSTEM, messages=HELLO) as st:
            final = st.get_final_message()
        assert final.usage.cache_read_input_tokens > 0  # optimize placed a breakpoint the API read
        blocks = [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}] * 5
        with pytest.raises(anthropic.BadRequestError, match="A maximum of 4 blocks"):
            c.messages.create(model=MODEL, max_tokens=20, messages=[{"role": "user", "content": blocks}])  # type: ignore[misc]
        insp = inspector_of(c)
        assert insp is not None and "tokenomy_requests_total" in insp.metrics.render()
        unwrap(c)
        assert inspector_of(c) is None
        c.messages.create(model=MODEL, max_tokens=20, messages=HELLO)  # unwrapped: no row
        c.close()
    rows = read_rows(db)
    assert [r.outcome for r in rows] == ["ok", "ok", "rejected"]
    assert all(r.source == "wrap" for r in rows)
    assert rows[0].run_id == rows[1].run_id and rows[1].stream and rows[1].cache_read > 0
    assert json.loads(rows[0].rewrites or "[]") == ["breakpoints"]
    assert CANARY.encode() not in db.read_bytes()


def test_wrap_async(tmp_path: Path) -> None:
    db = tmp_path / "l.db"

    async def go(url: str) -> None:
        a = wrap(anthropic.AsyncAnthropic(base_url=url, api_key="sk-test", max_retries=0), db=str(db))
        r = await a.messages.create(model=MODEL, max_tokens=20, messages=HELLO)
        async with a.messages.stream(model=MODEL, max_tokens=20, messages=HELLO) as st:
            await st.get_final_message()
        assert (await a.messages.count_tokens(model=MODEL, messages=HELLO)).input_tokens > 0
        assert r.usage.output_tokens > 0
        unwrap(a)
        await a.close()

    with emulator_server() as (url, _):
        asyncio.run(go(url))
    rows = read_rows(db)
    assert [(r.endpoint, r.stream, r.outcome) for r in rows] == [
        ("/v1/messages", False, "ok"),
        ("/v1/messages", True, "ok"),
        ("/v1/messages/count_tokens", False, "ok"),
    ]


def test_wrap_rejects_non_clients() -> None:
    with pytest.raises(UserError, match="not an anthropic.Anthropic"):
        wrap(object())
