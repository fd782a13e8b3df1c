"""Request logs and OpenHands trajectories: linking, estimation, conversion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokenomy.sources import load_runs
from tokenomy.sources.trajectories import convert_tool


def _pair(messages: list[dict[str, Any]], *, usage: dict[str, int] | None = None, **extra: Any) -> str:
    request = {"model": "claude-sonnet-4-5", "max_tokens": 100, "system": "Be brief.", "messages": messages}
    response: dict[str, Any] = {
        "id": "msg_x",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "ok then"}],
    }
    if usage is not None:
        response["usage"] = usage
    return json.dumps({"request": request, "response": response, **extra})


U = {"input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 3}


def test_linking_by_message_prefix_extension(tmp_path: Path) -> None:
    first: list[dict[str, Any]] = [{"role": "user", "content": "What is 2+2?"}]
    # same prompt written as a text block and with different whitespace: still an extension
    second: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
    ]
    unrelated = [{"role": "user", "content": "Name a colour."}]
    f = tmp_path / "log.jsonl"
    f.write_text(
        "\n".join(
            [
                _pair(first, usage=U),
                _pair(unrelated, usage=U),
                json.dumps(json.loads(_pair(second, usage=U)), indent=None, separators=(", ", ": ")),
                json.dumps(
                    {
                        "endpoint": "count_tokens",
                        "request": {"model": "m", "messages": first},
                        "response": {"input_tokens": 9},
                    }
                ),
            ]
        )
        + "\n"
    )
    res = load_runs([f], use_index=False)
    assert res.sources == {"request_log": 2}
    sizes = sorted(len(r.turns) for r in res.runs)
    assert sizes == [1, 2]
    linked = next(r for r in res.runs if len(r.turns) == 2)
    assert [len(t.request.blocks) for t in linked.turns if t.request] == [2, 4]
    assert linked.turns[0].model == "claude-sonnet-4-5-20250929"
    assert linked.turns[0].meta["prompt_tokens_exact"] == 10
    assert any("count_tokens" in n for n in res.notes)


def test_different_model_or_system_does_not_link(tmp_path: Path) -> None:
    a = json.loads(_pair([{"role": "user", "content": "hi"}], usage=U))
    b = json.loads(
        _pair(
            [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "yo"},
                {"role": "user", "content": "?"},
            ],
            usage=U,
        )
    )
    b["request"]["system"] = "Be long."
    c = json.loads(json.dumps(b))
    c["request"]["system"] = "Be brief."
    c["request"]["model"] = "claude-opus-4-5"
    f = tmp_path / "log.jsonl"
    f.write_text("\n".join(json.dumps(x) for x in (a, b, c)) + "\n")
    assert len(load_runs([f], use_index=False).runs) == 3


def test_run_id_and_recorded_at_and_estimates(tmp_path: Path) -> None:
    f = tmp_path / "gw.jsonl"
    f.write_text(
        "\n".join(
            [
                _pair(
                    [{"role": "user", "content": "one"}],
                    usage=U,
                    run_id="r1",
                    recorded_at="2026-01-01T00:00:00Z",
                ),
                _pair(
                    [{"role": "user", "content": "two, unrelated"}],
                    run_id="r1",
                    recorded_at="2026-01-01T00:00:05+00:00",
                ),
            ]
        )
        + "\n"
    )
    res = load_runs([f], use_index=False)
    (run,) = res.runs
    assert run.run_id == "r1" and [t.started_at for t in run.turns] == [1767225600.0, 1767225605.0]
    est = run.turns[1]
    assert est.quality["input"] == "estimated" and est.usage is not None
    assert est.request is not None and est.usage.input_tokens == est.request.total_tokens > 0
    assert est.usage.output_tokens > 0
    assert any("no usage" in n for n in res.notes)


def test_pydantic_pairs(workloads: Path) -> None:
    res = load_runs(
        [workloads / "pydantic-ai-anthropic-cassettes" / "anthropic_api_pairs.jsonl"], use_index=False
    )
    turns = [t for r in res.runs for t in r.turns]
    assert len(turns) == 285 and res.skipped_lines == 0
    assert all(t.quality["input"] == "exact" and t.request is not None for t in turns)
    assert sum(1 for t in turns if t.usage and t.usage.cache_read) > 0
    assert any(len(r.turns) > 1 for r in res.runs)


def test_openhands_conversion(workloads: Path) -> None:
    res = load_runs([workloads / "openhands-multi-swe-bench" / "output.jsonl"], use_index=False)
    counts = {r.run_id: len(r.turns) for r in res.runs}
    assert counts == {"ponylang__ponyc-4595": 23, "ponylang__ponyc-4593": 33, "ponylang__ponyc-4588": 49}
    for run in res.runs:
        assert run.kind == "trajectory" and run.source == "openhands"
        first, last = run.turns[0], run.turns[-1]
        assert first.usage is None and first.model == "claude-sonnet-4-5"
        assert first.meta["recorded_prompt_tokens"] > 0
        assert last.request is not None and last.request.body is not None
        kinds = {b.kind for b in last.request.blocks}
        assert {"tool", "text", "tool_use", "tool_result"} <= kinds
        body = last.request.body
        assert {t["name"] for t in body["tools"]} == {"execute_bash", "think", "finish", "str_replace_editor"}
        assert all("input_schema" in t and "function" not in t for t in body["tools"])
        assert body["system"].startswith("You are OpenHands agent")
        # each request extends the one before it
        sizes = [len(t.request.blocks) for t in run.turns if t.request]
        assert sizes == sorted(sizes)
        assert all(t.started_at is not None for t in run.turns)
    assert any("claude-sonnet-4-5" in n for n in res.notes)
    other = load_runs(
        [workloads / "openhands-multi-swe-bench" / "output.jsonl"],
        use_index=False,
        trajectory_model="claude-haiku-4-5",
    )
    assert other.runs[0].turns[0].model == "claude-haiku-4-5"


def test_convert_tool() -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "f",
            "description": "d",
            "parameters": {"type": "object", "properties": {"x": {"type": "string"}}},
        },
    }
    assert convert_tool(tool) == {
        "name": "f",
        "description": "d",
        "input_schema": {"type": "object", "properties": {"x": {"type": "string"}}},
    }
    assert convert_tool({"type": "retrieval"}) is None
