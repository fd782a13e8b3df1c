"""optimize mode's context rewrites (mask, context_editing, compact): opt-in, recorded in the ledger,
never breaking the client. Against the emulator with the official SDK, on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from gw_support import CANARY, serve_with_lifespan

from tokenomy.cli import main
from tokenomy.context import CompactOptions, EditingOptions
from tokenomy.context.compact import SUMMARY_HEADER, SUMMARY_PROMPT
from tokenomy.context.editing import BETA, EDIT_TYPE
from tokenomy.emulator import create_app as create_emulator
from tokenomy.errors import UserError
from tokenomy.gateway import GatewaySettings, create_app
from tokenomy.gateway._context import ContextOptions, ContextRewriter
from tokenomy.ledger.requests import RequestRow, read_rows
from tokenomy.testing import serve_in_thread
from tokenomy.wrap import ALL_REWRITES, unwrap, wrap

MODEL = "claude-sonnet-4-6"
SYSTEM = "You are a careful coding agent. " * 300
TOOLS = [
    {
        "name": "bash",
        "description": "Run a shell command and return its output.",
        "input_schema": {"type": "object", "properties": {"cmd": {"type": "string"}}},
    }
]
TASK = "Fix the failing parser test in src/parser.c."
SUMMARY = (
    "Decisions: patch the tokenizer. Findings: test_parse_nested fails on src/parser.c:212. "
    "Open questions: none. File states: src/parser.c edited."
)
HEADERS = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01", "content-type": "application/json"}
FAILED_ERROR = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


class Recorder:
    """ASGI middleware in front of the emulator: keeps what reached the upstream (headers, raw
    body) and, when asked, answers summary calls with a 529 as an overloaded API would."""

    def __init__(self, app: Any, *, fail_summaries: bool = False) -> None:
        self.app = app
        self.fail_summaries = fail_summaries
        self.seen: list[tuple[dict[str, str], bytes]] = []

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for _, raw in self.seen]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/messages":
            await self.app(scope, receive, send)
            return
        parts = []
        while True:
            msg = await receive()
            parts.append(msg.get("body", b""))
            if not msg.get("more_body", False):
                break
        raw = b"".join(parts)
        self.seen.append(({k.decode(): v.decode() for k, v in scope["headers"]}, raw))
        if self.fail_summaries and json.loads(raw).get("system") == SUMMARY_PROMPT:
            out = json.dumps({**FAILED_ERROR, "request_id": "req_failed"}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]
            await send({"type": "http.response.start", "status": 529, "headers": headers})
            await send({"type": "http.response.body", "body": out})
            return
        delivered = False

        async def replay() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return dict(await receive())

        await self.app(scope, replay, send)


def _script(tmp_path: Path, turns: list[Any]) -> str:
    path = tmp_path / "script.json"
    path.write_text(json.dumps(turns))
    return f"script:{path}"


def _tool_turns(n: int) -> list[Any]:
    return [
        [
            {"type": "text", "text": f"Step {k}: run the tests."},
            {"type": "tool_use", "name": "bash", "input": {"cmd": f"make test-{k}"}},
        ]
        for k in range(n)
    ]


@contextlib.contextmanager
def upstream(
    tmp_path: Path, turns: list[Any], *, fail_summaries: bool = False
) -> Iterator[tuple[str, Recorder]]:
    rec = Recorder(create_emulator(responses=_script(tmp_path, turns)), fail_summaries=fail_summaries)
    with serve_in_thread(rec) as url:
        yield url, rec


@contextlib.contextmanager
def gateway(url: str, db: Path, **settings: Any) -> Iterator[str]:
    app = create_app(GatewaySettings(upstream=url, db_path=str(db), mode="optimize", **settings))
    with serve_with_lifespan(app) as gw:
        yield gw


def _output(i: int, words: int) -> str:
    return "\n".join(f"src/mod{i}.c:{k}: warning: value {i * 1000 + k} truncated" for k in range(words // 6))


def _agent(client: anthropic.Anthropic, turns: int, *, words: int = 400, scripted: bool = True) -> list[Any]:
    """A tool loop: the emulator's scripted turn is the assistant's (or a fixed one when not
    ``scripted``); every tool result is a long log. Returns the client's own full history."""
    messages: list[Any] = [{"role": "user", "content": TASK}]
    for i in range(turns):
        resp = client.messages.create(
            model=MODEL, max_tokens=64, system=SYSTEM, tools=TOOLS, messages=messages
        )  # type: ignore[arg-type]
        if scripted:
            content = [b.model_dump(exclude_none=True) for b in resp.content]
        else:
            content = [
                {"type": "tool_use", "id": f"toolu_{i:04d}", "name": "bash", "input": {"cmd": f"make t{i}"}}
            ]
        tid = next(b["id"] for b in content if b["type"] == "tool_use")
        messages.append({"role": "assistant", "content": content})
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tid, "content": _output(i, words)}],
            }
        )
    return messages


def _entries(row: RequestRow, name: str) -> list[dict[str, Any]]:
    return [e for e in json.loads(row.rewrites or "[]") if isinstance(e, dict) and e.get("rewrite") == name]


# -- masking ------------------------------------------------------------------------------------


def test_masking_kicks_in_on_a_long_scripted_run_and_the_ledger_shows_it(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    turns = 36
    with (
        upstream(tmp_path, _tool_turns(turns)) as (url, rec),
        gateway(url, db, rewrites=ALL_REWRITES | {"mask"}) as gw,
    ):
        client = anthropic.Anthropic(base_url=gw, api_key="sk-test", max_retries=0)
        history = _agent(client, turns)
        client.close()
    rows = [r for r in read_rows(db) if r.endpoint == "/v1/messages"]
    assert len(rows) == turns and len({r.run_id for r in rows}) == 1
    first = next(i for i, r in enumerate(rows) if any("new" in e for e in _entries(r, "mask")))
    new = [e for e in _entries(rows[first], "mask") if "new" in e][0]
    assert len(new["new"]) > 1, "cache-aware masking masks a chunk, not one result per turn"
    assert new["tokens_removed"] > 0 and all(m["tokens_after"] < m["tokens_before"] for m in new["new"])
    # before the first chunk nothing was touched; from it on every request is masked, and never less
    assert all(not _entries(r, "mask") for r in rows[:first])
    masked = [_entries(r, "mask")[0]["masked"] for r in rows[first:]]
    assert masked == sorted(masked) and masked[0] == len(new["new"])
    # the masked prefix is sent again byte for byte: the next request reads it from the cache
    assert rows[first + 1].cache_read > rows[first].cache_read
    # what the upstream saw: placeholders where the ledger says; the client kept its full history
    sent = rec.bodies()[first]
    ids = {m["tool_use_id"] for m in new["new"]}
    placeholders = [
        b
        for m in sent["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result" and b["tool_use_id"] in ids
    ]
    assert len(placeholders) == len(ids) and all(
        str(b["content"]).startswith("[old tool output removed") for b in placeholders
    )
    assert all("warning" in m["content"][0]["content"] for m in history[2::2])


# -- compaction ---------------------------------------------------------------------------------

COMPACT = ContextOptions(compact=CompactOptions(keep_last=3, trigger_tokens=9000))


def test_gateway_compaction_writes_the_summary_through_the_upstream_with_the_clients_key(
    tmp_path: Path,
) -> None:
    db = tmp_path / "l.db"
    with (
        upstream(tmp_path, [SUMMARY] * 40) as (url, rec),
        gateway(url, db, rewrites=ALL_REWRITES | {"compact"}, context=COMPACT) as gw,
    ):
        client = anthropic.Anthropic(base_url=gw, api_key=CANARY, max_retries=0)
        history = _agent(client, 12, scripted=False)
        client.close()
    summaries = [
        (h, json.loads(raw)) for h, raw in rec.seen if json.loads(raw).get("system") == SUMMARY_PROMPT
    ]
    assert summaries, "compaction never ran"
    headers, call = summaries[0]
    assert call["model"] == "claude-haiku-4-5"
    assert CANARY in headers.get("x-api-key", "") + headers.get("authorization", "")  # the client's own key
    assert "anthropic-beta" not in headers and "tools" not in call
    rows = read_rows(db)
    agent_rows = [r for r in rows if not (r.run_id or "").endswith(".summary")]
    summary_rows = [r for r in rows if (r.run_id or "").endswith(".summary")]
    assert len(summary_rows) == len(summaries) and all(r.outcome == "ok" for r in summary_rows)
    assert (
        summary_rows[0].run_id == f"{agent_rows[0].run_id}.summary"
        and summary_rows[0].model == "claude-haiku-4-5"
    )
    assert len({r.run_id for r in agent_rows}) == 1
    at = next(i for i, r in enumerate(agent_rows) if any(e.get("new") for e in _entries(r, "compact")))
    entry = _entries(agent_rows[at], "compact")[0]
    assert entry["tokens_removed"] > 0 and entry["summary_tokens"] > 0 and entry["replaced_messages"] > 0
    # the request went out compacted: the task, the summary, then the kept turns
    agent_bodies = [b for b in rec.bodies() if b.get("system") != SUMMARY_PROMPT]
    sent = agent_bodies[at]
    first = _strip_markers(sent["messages"][0])
    assert first in (
        {"role": "user", "content": TASK},
        {"role": "user", "content": [{"type": "text", "text": TASK}]},
    )
    assert sent["messages"][1]["content"][0]["text"] == SUMMARY_HEADER + SUMMARY
    assert len(sent["messages"]) < 2 * at + 1
    # later requests keep the summary (the prompt does not flip back) and the client kept everything
    assert all(_entries(r, "compact") for r in agent_rows[at:])
    assert agent_rows[at + 1].cache_read > 0
    assert len(history) == 25
    assert CANARY.encode() not in db.read_bytes()


def test_a_failed_summary_forwards_the_request_unchanged_and_records_why(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    with (
        upstream(tmp_path, [SUMMARY] * 40, fail_summaries=True) as (url, rec),
        gateway(url, db, rewrites=ALL_REWRITES | {"compact"}, context=COMPACT) as gw,
    ):
        client = anthropic.Anthropic(base_url=gw, api_key="sk-test", max_retries=0)
        _agent(client, 10, scripted=False)  # every call succeeds for the client
        client.close()
    rows = read_rows(db)
    failed = [r for r in rows if any("error" in e for e in _entries(r, "compact"))]
    assert failed and all(r.outcome == "ok" for r in rows if not (r.run_id or "").endswith(".summary"))
    assert "529" in _entries(failed[0], "compact")[0]["error"]
    summary_rows = [r for r in rows if (r.run_id or "").endswith(".summary")]
    assert summary_rows and all(r.outcome == "upstream_error" and r.status == 529 for r in summary_rows)
    # nothing was compacted: every agent request reached the upstream with the client's full history
    agent_bodies = [b for b in rec.bodies() if b.get("system") != SUMMARY_PROMPT]
    assert [len(b["messages"]) for b in agent_bodies] == [1 + 2 * i for i in range(10)]


async def _agent_async(client: anthropic.AsyncAnthropic, turns: int) -> None:
    messages: list[Any] = [{"role": "user", "content": TASK}]
    for i in range(turns):
        await client.messages.create(
            model=MODEL, max_tokens=64, system=SYSTEM, tools=TOOLS, messages=messages
        )  # type: ignore[arg-type]
        tid = f"toolu_{i:04d}"
        messages.append(
            {"role": "assistant", "content": [{"type": "tool_use", "id": tid, "name": "bash", "input": {}}]}
        )
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tid, "content": _output(i, 400)}],
            }
        )


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_wrap_compaction_writes_the_summary_through_the_wrapped_client(tmp_path: Path, kind: str) -> None:
    db = tmp_path / "l.db"
    options: dict[str, Any] = {
        "db": str(db),
        "mode": "optimize",
        "rewrites": ALL_REWRITES | {"compact"},
        "context": COMPACT,
    }
    with upstream(tmp_path, [SUMMARY] * 40) as (url, rec):
        if kind == "sync":
            client = wrap(anthropic.Anthropic(base_url=url, api_key="sk-test", max_retries=0), **options)
            _agent(client, 12, scripted=False)
            unwrap(client)
            client.close()
        else:

            async def go() -> None:
                aclient = wrap(
                    anthropic.AsyncAnthropic(base_url=url, api_key="sk-test", max_retries=0), **options
                )
                await _agent_async(aclient, 12)
                unwrap(aclient)
                await aclient.close()

            asyncio.run(go())
    rows = read_rows(db)
    summary_rows = [r for r in rows if (r.run_id or "").endswith(".summary")]
    assert summary_rows and all(
        r.source == "wrap" and r.outcome == "ok" and r.rewrites is None for r in summary_rows
    )
    assert any(e.get("new") for r in rows for e in _entries(r, "compact"))
    # the summary call went out as the client's own request, without tokenomy's private headers
    headers = [h for h, raw in rec.seen if json.loads(raw).get("system") == SUMMARY_PROMPT]
    assert headers and not any(k.startswith("x-tokenomy") for h in headers for k in h)
    texts = [b["messages"][1]["content"][0].get("text", "") for b in rec.bodies() if len(b["messages"]) > 1]
    assert any(t == SUMMARY_HEADER + SUMMARY for t in texts)


# -- context editing ----------------------------------------------------------------------------

EDITING = ContextOptions(editing=EditingOptions(keep=2))


def _long_history(n: int) -> list[Any]:
    messages: list[Any] = [{"role": "user", "content": TASK}]
    for i in range(n):
        tid = f"toolu_{i:04d}"
        messages.append(
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": tid, "name": "bash", "input": {"cmd": f"make t{i}"}}],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tid, "content": _output(i, 400)}],
            }
        )
    return messages


def _check_editing(rec: Recorder, rows: list[RequestRow]) -> None:
    (h1, raw1), (h2, raw2) = rec.seen
    b1, b2 = json.loads(raw1), json.loads(raw2)
    edit = b1["context_management"]["edits"][0]
    assert edit["type"] == EDIT_TYPE and edit["keep"] == {"type": "tool_uses", "value": 2}
    assert b2["context_management"] == b1["context_management"]  # the very same bytes every time
    for h in (h1, h2):
        betas = [b.strip() for b in h["anthropic-beta"].split(",")]
        assert BETA in betas and "interleaved-thinking-2025-05-14" in betas  # the client's own beta kept
    e1, e2 = _entries(rows[0], "context_editing")[0], _entries(rows[1], "context_editing")[0]
    assert e1["new"] and e1["clear_at_least"] == edit["clear_at_least"]["value"] and "new" not in e2
    assert e1["tokens_removed_modelled"] > 0


def test_gateway_context_editing_adds_the_beta_header_and_context_management(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    history = _long_history(14)
    with (
        upstream(tmp_path, _tool_turns(30)) as (url, rec),
        gateway(url, db, rewrites=frozenset({"context_editing"}), context=EDITING) as gw,
    ):
        client = anthropic.Anthropic(base_url=gw, api_key="sk-test", max_retries=0)
        extra = {"anthropic-beta": "interleaved-thinking-2025-05-14"}
        for messages in (history, history + _long_history(15)[-2:]):
            client.messages.create(
                model=MODEL, max_tokens=64, system=SYSTEM, tools=TOOLS, messages=messages, extra_headers=extra
            )  # type: ignore[arg-type]
        client.close()
    _check_editing(rec, read_rows(db))


def test_wrap_context_editing_adds_the_beta_header_and_context_management(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    history = _long_history(14)

    async def go(url: str) -> None:
        client = wrap(
            anthropic.AsyncAnthropic(base_url=url, api_key="sk-test", max_retries=0),
            db=str(db),
            mode="optimize",
            rewrites={"context_editing"},
            context=EDITING,
        )
        extra = {"anthropic-beta": "interleaved-thinking-2025-05-14"}
        for messages in (history, history + _long_history(15)[-2:]):
            await client.messages.create(
                model=MODEL, max_tokens=64, system=SYSTEM, tools=TOOLS, messages=messages, extra_headers=extra
            )  # type: ignore[arg-type]
        unwrap(client)
        await client.close()

    with upstream(tmp_path, _tool_turns(30)) as (url, rec):
        asyncio.run(go(url))
    _check_editing(rec, read_rows(db))


# -- off unless asked ---------------------------------------------------------------------------


def test_context_rewrites_are_off_by_default(tmp_path: Path) -> None:
    """observe forwards the client's own bytes; plain optimize touches only cache markers."""
    history = _long_history(24)  # naive masking, editing or compaction would all act on this
    body = {"model": MODEL, "max_tokens": 64, "system": SYSTEM, "tools": TOOLS, "messages": history}
    raw = json.dumps(body).encode()
    for mode in ("observe", "optimize"):
        db = tmp_path / f"{mode}.db"
        with upstream(tmp_path, _tool_turns(30)) as (url, rec):
            app = create_app(GatewaySettings(upstream=url, db_path=str(db), mode=mode))  # type: ignore[arg-type]
            assert app.inspector.context is None
            with serve_with_lifespan(app) as gw, httpx.Client(base_url=gw) as h:
                for _ in range(2):
                    assert h.post("/v1/messages", content=raw, headers=HEADERS).status_code == 200
        for headers, sent in rec.seen:
            assert "anthropic-beta" not in headers
            if mode == "observe":
                assert sent == raw
            got = json.loads(sent)
            assert "context_management" not in got and _strip_markers(got["messages"]) == history
        assert all(not isinstance(e, dict) for r in read_rows(db) for e in json.loads(r.rewrites or "[]"))


def _strip_markers(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_markers(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_strip_markers(v) for v in value]
    return value


def test_context_rewrites_need_optimize_mode_and_known_names(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    client = anthropic.Anthropic(base_url="http://127.0.0.1:9", api_key="sk-test")
    with pytest.raises(UserError, match="need mode='optimize'"):
        wrap(client, rewrites={"mask"})
    with pytest.raises(UserError, match="unknown rewrite"):
        wrap(client, mode="optimize", rewrites={"masking"})
    client.close()
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--rewrite", "mask"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--mode optimize" in err and len(err.strip().splitlines()) == 1
    apps: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **k: apps.append(app))
    args = [
        "serve",
        "--mode",
        "optimize",
        "--rewrite",
        "mask",
        "--rewrite",
        "compact",
        "--no-rewrite",
        "ttl_1h",
    ]
    main([*args, "--summary-model", "claude-haiku-4-5-20251001", "--db", ":memory:"])
    settings = apps[0].settings
    assert settings.rewrites == {"stable_prefix", "breakpoints", "mask", "compact"}
    assert settings.context.compact.summary_model == "claude-haiku-4-5-20251001"
    apps[0].close()


def test_per_run_state_is_bounded() -> None:
    from tokenomy.blocks import parse_request

    rw = ContextRewriter(frozenset({"mask", "compact", "context_editing"}), ContextOptions(max_runs=3))
    body = {"model": MODEL, "max_tokens": 64, "messages": _long_history(3)}
    req = parse_request(body)
    for i in range(10):
        step = rw.start(body, req, run_id=f"run{i}", scope="", at=float(i), betas=(), can_summarize=False)
        rw.complete(step)
    assert len(rw) == 3
