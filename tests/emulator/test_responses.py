"""Response modes: a scripted tool loop, replaying request logs and trajectories, parsers, CLI."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
from click.testing import CliRunner
from emu_support import MODEL

from tokenomy.blocks import canonical_json
from tokenomy.emulator import ReplayResponder, ScriptResponder, parse_faults, parse_latency
from tokenomy.errors import InputError, UserError
from tokenomy.sources import load_runs
from tokenomy.testing import emulator_server

OPENHANDS = Path("/work/shared/workloads/openhands-multi-swe-bench/output.jsonl")
TOOLS = [
    {
        "name": "calc",
        "description": "Adds numbers",
        "input_schema": {"type": "object", "properties": {"a": {"type": "number"}}},
    }
]


def test_script_drives_a_tool_loop(tmp_path: Path) -> None:
    script = tmp_path / "turns.json"
    script.write_text(
        json.dumps(
            [
                {
                    "content": [
                        {"type": "text", "text": "Let me add."},
                        {"type": "tool_use", "name": "calc", "input": {"a": 1}},
                    ]
                },
                "The answer is 2.",
            ]
        )
    )
    with (
        emulator_server(responses=f"script:{script}") as (url, _),
        anthropic.Anthropic(base_url=url, api_key="k", max_retries=0) as c,
    ):
        messages: list[dict[str, Any]] = [{"role": "user", "content": "1+1?"}]
        first = c.messages.create(model=MODEL, max_tokens=100, tools=TOOLS, messages=messages)  # type: ignore[arg-type]
        assert first.stop_reason == "tool_use"
        tool = first.content[1]
        assert tool.type == "tool_use" and tool.id.startswith("toolu_") and tool.input == {"a": 1}
        messages += [
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "2"}]},
        ]
        with c.messages.stream(model=MODEL, max_tokens=100, tools=TOOLS, messages=messages) as s:  # type: ignore[arg-type]
            final = s.get_final_message()
        assert final.content[0].text == "The answer is 2." and final.stop_reason == "end_turn"  # type: ignore[union-attr]
        messages += [
            {"role": "assistant", "content": "The answer is 2."},
            {"role": "user", "content": "again"},
        ]
        with pytest.raises(anthropic.BadRequestError, match="script"):
            c.messages.create(model=MODEL, max_tokens=100, tools=TOOLS, messages=messages)  # type: ignore[arg-type]


def test_replay_request_log_reproduces_requests(tmp_path: Path) -> None:
    recorded = [
        {"role": "user", "content": "Plan the work"},
        {"role": "assistant", "content": [{"type": "text", "text": "Step one."}]},
        {"role": "user", "content": "Continue"},
    ]
    log = tmp_path / "log.jsonl"
    lines = [
        {
            "request": {"model": MODEL, "max_tokens": 50, "messages": recorded[:1]},
            "response": {"content": [{"type": "text", "text": "Step one."}], "stop_reason": "end_turn"},
        },
        {
            "request": {"model": MODEL, "max_tokens": 50, "messages": recorded},
            "response": {"content": [{"type": "text", "text": "Step two."}], "stop_reason": "end_turn"},
        },
    ]
    log.write_text("\n".join(json.dumps(x) for x in lines))
    with (
        emulator_server(responses=f"replay:{log}") as (url, _),
        anthropic.Anthropic(base_url=url, api_key="k", max_retries=0) as c,
    ):
        first = c.messages.create(model=MODEL, max_tokens=50, messages=recorded[:1])  # type: ignore[arg-type]
        rebuilt = [
            *recorded[:1],
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
            recorded[2],
        ]
        assert rebuilt == recorded  # the agent's next request is the recorded one, byte for byte
        # cache_control markers are not part of what the model sees: still a match
        marked = json.loads(json.dumps(rebuilt))
        marked[2]["content"] = [{"type": "text", "text": "Continue", "cache_control": {"type": "ephemeral"}}]
        assert c.messages.create(model=MODEL, max_tokens=50, messages=marked).content[0].text == "Step two."  # type: ignore[union-attr]
        with pytest.raises(anthropic.BadRequestError, match="no recorded turn"):
            c.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "unrelated"}])


def _seen(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the model sees of a body: blocks without ``cache_control``, their own keys in any
    order, everything inside them (tool inputs, schemas) in the order sent."""

    def block(b: Any) -> Any:
        if not isinstance(b, Mapping):
            return b
        return canonical_json({k: b[k] for k in sorted(b) if k != "cache_control"}).decode()

    messages = [
        (m["role"], [block(b) for b in m["content"]] if isinstance(m["content"], list) else m["content"])
        for m in body["messages"]
    ]
    system = body.get("system")
    return {
        "model": body["model"],
        "system": [block(b) for b in system] if isinstance(system, list) else system,
        "tools": [block(t) for t in body.get("tools") or []],
        "messages": messages,
    }


@pytest.mark.skipif(not OPENHANDS.exists(), reason="workloads corpus not present")
def test_replay_openhands_reproduces_the_converted_requests() -> None:
    """An SDK agent that re-sends what it is answered plus the recorded observations rebuilds,
    turn after turn, exactly the requests ``tokenomy.sources`` converts the trajectory into."""
    runs = load_runs([OPENHANDS], source="openhands", use_index=False, trajectory_model=MODEL).runs
    run = min(runs, key=lambda r: len(r.turns))
    bodies = [dict(t.request.body) for t in run.turns if t.request is not None and t.request.body is not None]
    assert len(bodies) == len(run.turns) >= 20
    sent: list[bytes] = []
    first = bodies[0]
    with (
        emulator_server(responses=f"replay:{OPENHANDS}") as (url, _),
        httpx2.Client(event_hooks={"request": [lambda r: sent.append(r.read())]}) as http,
        anthropic.Anthropic(base_url=url, api_key="k", max_retries=0, http_client=http) as c,
    ):
        messages: list[Any] = list(first["messages"])
        replies = []
        for i in range(len(bodies)):
            with c.messages.stream(  # max_tokens 64000: the SDK insists on streaming
                model=first["model"],
                max_tokens=first["max_tokens"],
                system=first["system"],
                tools=first["tools"],
                messages=messages,
            ) as stream:
                reply = stream.get_final_message()
            replies.append(reply)
            if i + 1 == len(bodies):
                break
            recorded_next = bodies[i + 1]["messages"]
            observed = recorded_next[len(messages) + 1 :]  # what the environment answered
            assistant = [b.model_dump(exclude_none=True) for b in reply.content]
            messages = [*messages, {"role": "assistant", "content": assistant}, *observed]
    assert len(sent) == len(bodies)
    for i, (raw, recorded) in enumerate(zip(sent, bodies, strict=True)):
        assert _seen(json.loads(raw)) == _seen(recorded), f"turn {i} differs from the converted request"
    assert all(r.content for r in replies)
    assert replies[0].stop_reason == "tool_use"
    assert replies[-1].content[-1].type == "tool_use" and replies[-1].content[-1].name == "finish"  # type: ignore[union-attr]


@pytest.mark.skipif(not OPENHANDS.exists(), reason="workloads corpus not present")
def test_replay_openhands_matches_on_what_the_model_sees() -> None:
    """Converted requests are answered whatever their cache markers; runs are also found by
    their first user message and position, for an agent whose requests drift."""
    responder = ReplayResponder.from_file(OPENHANDS)
    assert len(responder.runs) == 3
    run = load_runs([OPENHANDS], source="openhands", use_index=False).runs[0]
    body = json.loads(json.dumps(run.turns[3].request.body))  # type: ignore[union-attr]
    expected = responder.reply(body)
    body["messages"][-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    assert responder.reply(body) == expected
    first = {**body, "messages": body["messages"][:1]}
    turn = responder.reply(first)
    assert turn.stop_reason == "tool_use"
    assert next(b for b in turn.content if b["type"] == "tool_use")["name"] == "execute_bash"


def test_script_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        ScriptResponder.from_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('"ok"\n{oops\n')
    with pytest.raises(InputError, match=":2: not valid JSON"):
        ScriptResponder.from_file(bad)
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(InputError, match="no assistant turns"):
        ScriptResponder.from_file(empty)


def test_fault_and_latency_grammar() -> None:
    (f,) = parse_faults("429:p=0.5:times=2:retry-after=0.25")
    assert (f.kind, f.p, f.times, f.retry_after) == ("429", 0.5, 2, 0.25)
    assert [x.kind for x in parse_faults("slow:delay=3, truncate:after=4")] == ["slow", "truncate"]
    for bad in ("boom", "429:p=2", "429:x=1", "slow:delay=abc"):
        with pytest.raises(UserError):
            parse_faults(bad)
    assert parse_latency("0.4").ttft == 0.4
    lat = parse_latency("ttft=0.2,tps=50")
    assert lat.ttft == 0.2 and lat.generation_seconds(100) == 2.0
    with pytest.raises(UserError):
        parse_latency("fast")


def test_cli_bad_flags_are_one_line_errors(tmp_path: Path) -> None:
    from tokenomy.cli import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["emulate", "--faults", "explode"])
    assert result.exit_code != 0 and isinstance(result.exception, UserError)
    assert "unknown fault 'explode'" in str(result.exception)
    result = runner.invoke(cli, ["emulate", "--responses", f"script:{tmp_path / 'none.json'}"])
    assert isinstance(result.exception, UserError) and "cannot read" in str(result.exception)
    help_text = runner.invoke(cli, ["emulate", "--help"]).output
    for flag in ("--host", "--port", "--responses", "--latency", "--faults"):
        assert flag in help_text
