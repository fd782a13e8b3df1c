"""OpenHands evaluation output (one instance per line) → one ``Run`` of Messages API requests each.

OpenHands trajectories hold what Claude Code transcripts lack: the system prompt, the tool
definitions and full tool outputs. Each unique LLM call (deduplicated on ``model_response.id``:
a response with several tool calls repeats it on every event it produced) becomes one request
holding the conversation up to that call: the system prompt, the tools converted from OpenAI
function schemas to ``{name, description, input_schema}``, agent actions as assistant ``tool_use``
blocks and observations as user ``tool_result`` blocks.

The recorded usage was counted by another model's tokenizer (Llama 4 in the bundled sample), so
it is not Claude usage: turns carry ``usage=None`` (consumers estimate from the request) and keep
the recorded numbers in ``meta``. The requests are addressed to a Claude model chosen by the
caller (``claude-sonnet-4-5`` by default).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from tokenomy.blocks import parse_request
from tokenomy.model import Exactness, Run, Turn
from tokenomy.pricing import model_info
from tokenomy.sources._lines import MAX_LINE_BYTES, LineStats, iter_lines
from tokenomy.sources.request_log import Loaded, parse_time

SOURCE = "openhands"

_ESTIMATED: Mapping[str, Exactness] = {
    "input": "estimated",
    "cache_write": "estimated",
    "cache_read": "estimated",
    "output": "estimated",
}


def convert_tool(tool: Mapping[str, Any]) -> dict[str, Any] | None:
    """An OpenAI function tool → an Anthropic tool definition (None if it is not a function)."""
    fn = tool.get("function") if tool.get("type", "function") == "function" else None
    if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
        return None
    out: dict[str, Any] = {"name": fn["name"]}
    if isinstance(fn.get("description"), str):
        out["description"] = fn["description"]
    params = fn.get("parameters")
    out["input_schema"] = (
        dict(params) if isinstance(params, Mapping) else {"type": "object", "properties": {}}
    )
    return out


def _tool_input(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if isinstance(arguments, str):
        try:
            value = json.loads(arguments)
        except ValueError:
            return {"arguments": arguments}
        return value if isinstance(value, dict) else {"arguments": value}
    return {}


class _Conversation:
    """Messages built up event by event; consecutive blocks of one role share a message."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.open_tool_ids: set[str] = set()

    def add(self, role: str, block: dict[str, Any]) -> None:
        if self.messages and self.messages[-1]["role"] == role:
            self.messages[-1]["content"].append(block)
        else:
            self.messages.append({"role": role, "content": [block]})

    def snapshot(self) -> list[dict[str, Any]]:
        return [{"role": m["role"], "content": list(m["content"])} for m in self.messages]


def _response_message(response: Mapping[str, Any]) -> Mapping[str, Any]:
    choices = response.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        msg = choices[0].get("message")
        if isinstance(msg, Mapping):
            return msg
    return {}


def _observation_text(event: Mapping[str, Any]) -> str:
    text = event.get("content")
    parts = [text if isinstance(text, str) else str(event.get("message", ""))]
    extras = event.get("extras")
    if event.get("observation") == "recall" and isinstance(extras, Mapping):
        for k in ("repo_instructions", "additional_agent_instructions"):
            v = extras.get(k)
            if isinstance(v, str) and v:
                parts.append(v)
        knowledge = extras.get("microagent_knowledge")
        if isinstance(knowledge, list):
            parts.extend(str(m.get("content", "")) for m in knowledge if isinstance(m, Mapping))
    return "\n\n".join(p for p in parts if p)


class _Converter:
    """Walks one instance's events, building the conversation and a turn per unique LLM call."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.system = ""
        self.tools: list[dict[str, Any]] = []
        self.conv = _Conversation()
        self.seen: set[str] = set()
        self.turns: list[Turn] = []
        self.prev_ts: float | None = None
        info = model_info(model)
        self.max_tokens = info.max_output if info is not None else None

    def event(self, event: Mapping[str, Any]) -> None:
        ts = parse_time(event.get("timestamp"))
        action = event.get("action")
        tcm = event.get("tool_call_metadata")
        raw_args = event.get("args")
        args: Mapping[str, Any] = raw_args if isinstance(raw_args, Mapping) else {}
        if action == "system":
            self.system = str(args.get("content") or event.get("message") or "")
            raw_tools = args.get("tools")
            if isinstance(raw_tools, list):
                self.tools = [t for t in (convert_tool(x) for x in raw_tools if isinstance(x, Mapping)) if t]
        elif action and isinstance(tcm, Mapping) and isinstance(tcm.get("model_response"), Mapping):
            self.call(
                tcm["model_response"],
                str(tcm["model_response"].get("id") or tcm.get("tool_call_id") or ""),
                ts,
            )
        elif event.get("observation"):
            self.observation(event, tcm)
        elif action == "message" and event.get("source") == "user":
            text = args.get("content") or event.get("message")
            if isinstance(text, str) and text:
                self.conv.add("user", {"type": "text", "text": text})
        if ts is not None:
            self.prev_ts = ts

    def call(self, response: Mapping[str, Any], rid: str, ts: float | None) -> None:
        if rid in self.seen:
            return  # another event of a response already turned into a request
        self.seen.add(rid)
        body: dict[str, Any] = {"model": self.model}
        if self.max_tokens:
            body["max_tokens"] = self.max_tokens
        if self.system:
            body["system"] = self.system
        if self.tools:
            body["tools"] = self.tools
        body["messages"] = self.conv.snapshot()
        self.turns.append(_turn(body, response, self.model, self.prev_ts, ts))
        _add_assistant(self.conv, response)

    def observation(self, event: Mapping[str, Any], tcm: Any) -> None:
        tool_id = tcm.get("tool_call_id") if isinstance(tcm, Mapping) else None
        if isinstance(tool_id, str) and tool_id in self.conv.open_tool_ids:
            self.conv.open_tool_ids.discard(tool_id)
            content = event.get("content")
            block = {
                "type": "tool_result",
                "tool_use_id": tool_id,
                "content": content if isinstance(content, str) else "",
            }
            self.conv.add("user", block)
        else:
            text = _observation_text(event)
            if text:
                self.conv.add("user", {"type": "text", "text": text})


def convert_instance(obj: Mapping[str, Any], *, model: str, path: str) -> Run | None:
    """One OpenHands instance → a Run with one turn per unique LLM call."""
    history = obj.get("history")
    if not isinstance(history, list):
        return None
    conv = _Converter(model)
    for event in history:
        if isinstance(event, Mapping):
            conv.event(event)
    if not conv.turns:
        return None
    instance = str(obj.get("instance_id") or Path(path).stem)
    meta: dict[str, Any] = {"instance_id": instance}
    metadata = obj.get("metadata")
    llm = metadata.get("llm_config") if isinstance(metadata, Mapping) else None
    if isinstance(llm, Mapping) and isinstance(llm.get("model"), str):
        meta["recorded_model"] = llm["model"]
    return Run(
        run_id=instance,
        turns=tuple(conv.turns),
        source=SOURCE,
        kind="trajectory",
        title=instance,
        path=path,
        meta=meta,
    )


def _add_assistant(conv: _Conversation, response: Mapping[str, Any]) -> None:
    msg = _response_message(response)
    text = msg.get("content")
    blocks: list[dict[str, Any]] = []
    if isinstance(text, str) and text.strip():
        blocks.append({"type": "text", "text": text})
    calls = msg.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            if not isinstance(call, Mapping) or not isinstance(call.get("function"), Mapping):
                continue
            fn = call["function"]
            tool_id = str(call.get("id") or "")
            blocks.append(
                {
                    "type": "tool_use",
                    "id": tool_id,
                    "name": str(fn.get("name", "")),
                    "input": _tool_input(fn.get("arguments")),
                }
            )
            conv.open_tool_ids.add(tool_id)
    for b in blocks:
        conv.add("assistant", b)


def _turn(
    body: dict[str, Any], response: Mapping[str, Any], model: str, prev_ts: float | None, ts: float | None
) -> Turn:
    usage = response.get("usage")
    meta: dict[str, Any] = {"response_id": response.get("id"), "recorded_model": response.get("model")}
    if isinstance(usage, Mapping):
        meta["recorded_prompt_tokens"] = usage.get("prompt_tokens")
        meta["recorded_completion_tokens"] = usage.get("completion_tokens")
    started = prev_ts if prev_ts is not None else ts
    latency = ts - prev_ts if ts is not None and prev_ts is not None and ts >= prev_ts else None
    return Turn(
        model=model,
        usage=None,
        request=parse_request(body),
        started_at=started,
        latency_s=latency,
        message_id=str(response.get("id")) if response.get("id") else None,
        quality=_ESTIMATED,
        meta=meta,
    )


def load_trajectories(
    files: Sequence[Path], *, model: str = "claude-sonnet-4-5", max_line_bytes: int = MAX_LINE_BYTES
) -> Loaded:
    out = Loaded()
    for f in files:
        stats = LineStats()
        with open(f, "rb") as fh:
            for _, raw in iter_lines(fh, max_line_bytes=max_line_bytes, stats=stats, include_tail=True):
                try:
                    obj = msgspec.json.decode(raw)
                except msgspec.DecodeError:
                    out.skipped += 1
                    continue
                run = convert_instance(obj, model=model, path=str(f)) if isinstance(obj, dict) else None
                if run is None:
                    out.skipped += 1
                    continue
                out.lines_read += 1
                out.runs.append(run)
        out.skipped += stats.oversized
    if out.runs:
        out.notes.append(
            f"OpenHands trajectories were rebuilt as requests to {model}; their recorded usage is another "
            "model's tokenizer (kept in turn meta), so token counts are estimated from the requests"
        )
    return out
