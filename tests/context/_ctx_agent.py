"""A small agent-loop body builder shared by the context tests."""

from __future__ import annotations

from typing import Any

MODEL = "claude-sonnet-4-6"
SYSTEM = "You are a careful coding agent. " * 300
TOOLS = [
    {
        "name": "bash",
        "description": "Run a shell command and return its output.",
        "input_schema": {"type": "object", "properties": {"cmd": {"type": "string"}}},
    },
    {
        "name": "read",
        "description": "Read a file.",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
    },
]


def body(turns: int, *, result_words: int = 400, tool: str = "bash") -> dict[str, Any]:
    """A request after ``turns`` tool calls: task, then (assistant tool_use, user tool_result) pairs."""
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Fix the failing parser test in src/parser.c."}
    ]
    for i in range(turns):
        tid = f"toolu_{i:04d}"
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": f"Step {i}: looking further."},
                    {"type": "tool_use", "id": tid, "name": tool, "input": {"cmd": f"make test-{i}"}},
                ],
            }
        )
        output = " ".join(f"line{i}-{k}" for k in range(result_words))
        messages.append(
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tid, "content": output}]}
        )
    return {"model": MODEL, "max_tokens": 1024, "system": SYSTEM, "tools": TOOLS, "messages": messages}
