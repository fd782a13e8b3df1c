"""Seeded synthetic workloads for the shapes real logs show too rarely to measure on their own.

Every generator builds real Messages API bodies and parses them with ``parse_request``, so the
blocks, hashes and token estimates are exactly what a live request would give. Shapes:

- ``subagents``: a parent run that starts sub-agents sharing one system prompt and tool set;
- ``sessions``: many sessions of one agent started within minutes of each other;
- ``long``: one long tool-using run;
- ``gaps``: a run where a person thinks for about 7 minutes between some turns;
- ``fanout``: bursts of parallel requests on one shared prefix, then a continuation.

The seed is part of every run id and is printed by the CLI, so a figure can be reproduced.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from tokenomy.blocks import parse_request
from tokenomy.errors import UserError
from tokenomy.model import Run, Turn, Usage

__all__ = ["SHAPES", "generate"]

DEFAULT_MODEL = "claude-sonnet-4-5"
_WORDS = (
    "agent cache token prompt request stream tool result block system model budget read write "
    "file path error patch test build module function value index query schema table commit "
    "branch diff merge config option default retry timeout window limit header status"
).split()
_T0 = 1_750_000_000.0


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _tools(rng: random.Random, n: int) -> list[dict[str, Any]]:
    return [
        {
            "name": f"tool_{i}",
            "description": _text(rng, 60),
            "input_schema": {
                "type": "object",
                "properties": {"arg": {"type": "string", "description": _text(rng, 20)}},
            },
        }
        for i in range(n)
    ]


class _Agent:
    """One conversation: a fixed system prompt and tools, growing messages."""

    def __init__(self, rng: random.Random, system: str, tools: list[dict[str, Any]], model: str) -> None:
        self.rng = rng
        self.system = system
        self.tools = tools
        self.model = model
        self.messages: list[dict[str, Any]] = [{"role": "user", "content": _text(rng, 80)}]
        self.n = 0

    def body(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "max_tokens": 1024,
            "system": self.system,
            "tools": self.tools,
            "messages": list(self.messages),
        }

    def step(self, result_words: int) -> None:
        """The assistant calls a tool and the tool answers: two messages appended."""
        self.n += 1
        tid = f"toolu_{self.n:04d}"
        self.messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": _text(self.rng, 15)},
                    {"type": "tool_use", "id": tid, "name": "tool_0", "input": {"arg": _text(self.rng, 6)}},
                ],
            }
        )
        self.messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": tid, "content": _text(self.rng, result_words)}
                ],
            }
        )


def _run(run_id: str, agent: _Agent, times: list[float], rng: random.Random, kind: str = "synthetic") -> Run:
    turns: list[Turn] = []
    for i, at in enumerate(times):
        if i:
            agent.step(rng.randint(40, 400))
        req = parse_request(agent.body())
        out = rng.randint(50, 300)
        turns.append(
            Turn(
                model=agent.model,
                request=req,
                usage=Usage(input_tokens=req.total_tokens, output_tokens=out),
                started_at=at,
                ttft_s=rng.uniform(0.5, 2.0),
            )
        )
    return Run(run_id=run_id, turns=tuple(turns), source="synthetic", kind="synthetic")


def _gaps(rng: random.Random, n: int, lo: float = 3.0, hi: float = 40.0) -> list[float]:
    t = 0.0
    out = []
    for _ in range(n):
        out.append(t)
        t += rng.uniform(lo, hi)
    return out


def _subagents(rng: random.Random, seed: int, model: str) -> list[Run]:
    system = _text(rng, 2500)
    tools = _tools(rng, 8)
    runs = [
        _run(
            f"subagents-{seed}-parent",
            _Agent(rng, system, tools, model),
            [_T0 + t for t in _gaps(rng, 20)],
            rng,
        )
    ]
    for k in range(6):
        start = _T0 + 20 + k * rng.uniform(10, 60)
        agent = _Agent(rng, system, tools, model)
        runs.append(
            _run(f"subagents-{seed}-sub{k}", agent, [start + t for t in _gaps(rng, rng.randint(4, 12))], rng)
        )
    return runs


def _sessions(rng: random.Random, seed: int, model: str) -> list[Run]:
    system = _text(rng, 3000)
    tools = _tools(rng, 10)
    runs = []
    start = _T0
    for k in range(10):
        start += rng.uniform(30, 240)
        agent = _Agent(rng, system, tools, model)
        runs.append(
            _run(f"sessions-{seed}-{k}", agent, [start + t for t in _gaps(rng, rng.randint(3, 15))], rng)
        )
    return runs


def _long(rng: random.Random, seed: int, model: str) -> list[Run]:
    agent = _Agent(rng, _text(rng, 2000), _tools(rng, 6), model)
    return [_run(f"long-{seed}", agent, [_T0 + t for t in _gaps(rng, 150)], rng)]


def _think_gaps(rng: random.Random, seed: int, model: str) -> list[Run]:
    agent = _Agent(rng, _text(rng, 2000), _tools(rng, 6), model)
    times, t = [], _T0
    for i in range(40):
        times.append(t)
        t += rng.uniform(400, 460) if i % 5 == 4 else rng.uniform(5, 40)
    return [_run(f"gaps-{seed}", agent, times, rng)]


def _fanout(rng: random.Random, seed: int, model: str) -> list[Run]:
    system = _text(rng, 2500)
    tools = _tools(rng, 6)
    runs = []
    t = _T0
    for burst in range(4):
        for k in range(5):  # five parallel requests on the same prefix, then each continues
            agent = _Agent(rng, system, tools, model)
            runs.append(_run(f"fanout-{seed}-{burst}-{k}", agent, [t + x for x in _gaps(rng, 4)], rng))
        t += rng.uniform(60, 200)
    return runs


SHAPES: dict[str, Callable[[random.Random, int, str], list[Run]]] = {
    "subagents": _subagents,
    "sessions": _sessions,
    "long": _long,
    "gaps": _think_gaps,
    "fanout": _fanout,
}


def generate(shape: str, seed: int = 0, *, model: str = DEFAULT_MODEL) -> list[Run]:
    """The runs of one synthetic shape (``SHAPES``), reproducible from ``seed``."""
    make = SHAPES.get(shape)
    if make is None:
        raise UserError(f"unknown synthetic shape {shape!r}: choose from {', '.join(SHAPES)}")
    return make(random.Random(seed), seed, model)
