"""The seeded-mutation suite: real requests, one injected cache-breaking habit each.

Bases are real request sequences where each request extends the one before: an OpenHands
trajectory (through ``tokenomy.sources``) and multi-turn pydantic-ai cassette pairs whose system
prompt is padded with real text (the OpenHands system prompt) to pass the model's minimum.
Each mutation returns the mutated bodies and start times plus what the doctor must report:
``(request_index, cause_label, location_prefix)``. Replaying the bodies through the one
``CacheEngine`` in virtual time gives the "recorded" usage the doctor then reads.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tokenomy.analysis._doctor_diff import first_divergence
from tokenomy.blocks import parse_request
from tokenomy.cache import CacheEngine
from tokenomy.model import Run, Turn

WORKLOADS = Path(__file__).resolve().parents[3] / "shared" / "workloads"
OPENHANDS = WORKLOADS / "openhands-multi-swe-bench" / "output.jsonl"
PAIRS = WORKLOADS / "pydantic-ai-anthropic-cassettes" / "anthropic_api_pairs.jsonl"
# Multi-turn cassettes (interaction 1 then 2 of one conversation, the second extending the first).
PAIR_FILES = (
    "test_cross_provider_capability_replay[anthropic-claude-sonnet",
    "test_anthropic_deferred_capability_tool_callable_without_too",
    "test_live_fallback_failover_capability_load_and_recovery",
)
START = 1_770_000_000.0
STEP_S = 20.0
TTFT_S = 1.5

Body = dict[str, Any]
Expected = list[tuple[int, str, str]]


@dataclass(frozen=True)
class Base:
    name: str
    bodies: list[Body]
    short: bool = False  # below the model's minimum cacheable length


@dataclass(frozen=True)
class Case:
    base: str
    mutation: str
    bodies: list[Body]
    times: list[float]
    expected: Expected


def _auto_cache(body: Body) -> Body:
    out = copy.deepcopy(body)
    out["cache_control"] = {"type": "ephemeral"}
    return out


def openhands_base(limit: int = 8) -> Base:
    from tokenomy.sources import load_runs

    runs = load_runs([OPENHANDS], source="openhands", use_index=False).runs
    run = next(r for r in runs if r.run_id.endswith("4595"))
    bodies = [_auto_cache(dict(t.request.body)) for t in run.turns[:limit] if t.request and t.request.body]
    return Base(name="openhands-4595", bodies=bodies)


def _system_text(body: Body) -> str:
    s = body.get("system")
    if isinstance(s, str):
        return s
    if isinstance(s, list) and s and isinstance(s[0], dict):
        return str(s[0].get("text", ""))
    return ""


def _set_system_text(body: Body, text: str) -> None:
    s = body.get("system")
    if isinstance(s, list) and s and isinstance(s[0], dict):
        s[0]["text"] = text
    else:
        body["system"] = text


def pair_bases(padding: str) -> list[Base]:
    rows = [json.loads(line) for line in PAIRS.read_text(encoding="utf-8").splitlines() if line.strip()]
    bases: list[Base] = []
    for prefix in PAIR_FILES:
        seq = sorted(
            (
                r
                for r in rows
                if r["endpoint"] == "messages" and Path(r["source_file"]).name.startswith(prefix)
            ),
            key=lambda r: r["interaction_index"],
        )
        seq = [r for r in seq if r["interaction_index"] in (1, 2)]
        assert len(seq) == 2, prefix
        bodies = [_auto_cache(r["request"]) for r in seq]
        name = prefix.split("[")[0][5:40]
        bases.append(Base(name=f"{name}-short", bodies=copy.deepcopy(bodies), short=True))
        for b in bodies:
            _set_system_text(b, _system_text(b) + "\n\n" + padding)
        bases.append(Base(name=name, bodies=bodies))
    return bases


def check_extends(bodies: list[Body]) -> None:
    """Each base request must extend the one before: otherwise the base itself would miss."""
    reqs = [parse_request(b) for b in bodies]
    for a, b in zip(reqs, reqs[1:], strict=False):
        assert first_divergence(a, b) == len(a.blocks), "base request does not extend the previous one"


def replay(bodies: list[Body], times: list[float], run_id: str) -> Run:
    """The 'recorded' run: each request priced by the cache engine at its virtual start time."""
    engine = CacheEngine()
    turns = []
    for i, (body, at) in enumerate(zip(bodies, times, strict=True), start=1):
        req = parse_request(body)
        result = engine.process(req, at=at, ttft=TTFT_S, output_tokens=50)
        turns.append(
            Turn(
                model=req.model,
                usage=result.usage,
                request=req,
                started_at=at,
                ttft_s=TTFT_S,
                latency_s=TTFT_S + 2.0,
                request_id=f"req_{run_id}_{i}",
            )
        )
    return Run(run_id=run_id, turns=tuple(turns), source="request_log", kind="request_log")


def _times(n: int) -> list[float]:
    return [START + STEP_S * i for i in range(n)]


def _last_path(body: Body) -> str:
    req = parse_request(body)
    last = next(b for b in reversed(req.blocks) if b.cacheable)
    return last.doc_path


def _mid(bodies: list[Body]) -> int:
    """1-based index of the request to mutate: the middle of the run, never the first."""
    return max(2, (len(bodies) + 1) // 2)


# -- mutations ------------------------------------------------------------------------------------


def m_timestamp(bodies: list[Body]) -> tuple[list[Body], list[float], Expected]:
    out = copy.deepcopy(bodies)
    times = _times(len(out))
    for b, at in zip(out, times, strict=True):
        stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        _set_system_text(b, f"Current date and time: {stamp}\n" + _system_text(b))
    return out, times, [(i, "prefix_changed:timestamp", "system[0]") for i in range(2, len(out) + 1)]


def m_tools_reordered(bodies: list[Body]) -> tuple[list[Body], list[float], Expected]:
    m = _mid(bodies)
    out = copy.deepcopy(bodies)
    for b in out[m - 1 :]:
        b["tools"] = list(reversed(b["tools"]))
    return out, _times(len(out)), [(m, "prefix_changed:tools_reordered", "tools[0]")]


def m_json_key_order(bodies: list[Body]) -> tuple[list[Body], list[float], Expected]:
    m = _mid(bodies)
    out = copy.deepcopy(bodies)
    idx = max(i for i, t in enumerate(out[0]["tools"]) if len(t.get("input_schema", {})) >= 2)
    for b in out[m - 1 :]:
        schema = b["tools"][idx]["input_schema"]
        b["tools"][idx]["input_schema"] = dict(reversed(list(schema.items())))
    return out, _times(len(out)), [(m, "prefix_changed:json_key_order", f"tools[{idx}].input_schema")]


def m_whitespace(bodies: list[Body]) -> tuple[list[Body], list[float], Expected]:
    m = _mid(bodies)
    out = copy.deepcopy(bodies)
    for b in out[m - 1 :]:
        _set_system_text(b, _system_text(b).replace(" ", "  ", 1))
    return out, _times(len(out)), [(m, "prefix_changed:whitespace", "system[0]")]


def m_edit_early_message(bodies: list[Body]) -> tuple[list[Body], list[float], Expected]:
    m = _mid(bodies)
    out = copy.deepcopy(bodies)
    for b in out[m - 1 :]:
        first = b["messages"][0]
        if isinstance(first["content"], str):
            first["content"] = first["content"] + " Please keep the answer short."
        else:
            blk = next(c for c in first["content"] if c.get("type") == "text")
            blk["text"] = blk["text"] + " Please keep the answer short."
    path = "messages[0].content[0]"
    return out, _times(len(out)), [(m, "prefix_changed:content_edit", path)]


def m_model_switch(bodies: list[Body]) -> tuple[list[Body], list[float], Expected]:
    m = _mid(bodies)
    out = copy.deepcopy(bodies)
    for b in out[m - 1 :]:
        b["model"] = "claude-sonnet-4-6" if b["model"] != "claude-sonnet-4-6" else "claude-sonnet-4-5"
    return out, _times(len(out)), [(m, "model_changed", "model")]


def m_tool_choice(bodies: list[Body]) -> tuple[list[Body], list[float], Expected]:
    m = _mid(bodies)
    out = copy.deepcopy(bodies)
    for b in out[m - 1 :]:
        b["tool_choice"] = {"type": "any"}
    return out, _times(len(out)), [(m, "params_changed", "tool_choice")]


def m_gap(bodies: list[Body]) -> tuple[list[Body], list[float], Expected]:
    m = _mid(bodies)
    times = _times(len(bodies))
    times = times[: m - 1] + [t + 360.0 for t in times[m - 1 :]]
    return copy.deepcopy(bodies), times, [(m, "ttl_expired", _last_path(bodies[m - 2]))]


def m_concurrent(bodies: list[Body]) -> tuple[list[Body], list[float], Expected]:
    m = _mid(bodies)
    times = _times(len(bodies))
    times[m - 1] = times[m - 2] + TTFT_S / 3
    return copy.deepcopy(bodies), times, [(m, "concurrent", _last_path(bodies[m - 2]))]


def m_block_jump(bodies: list[Body], filler: list[str]) -> tuple[list[Body], list[float], Expected]:
    out = copy.deepcopy(bodies)
    last = out[-1]
    jump = copy.deepcopy(out[-2])
    msgs = jump["messages"]
    if msgs[-1]["role"] == "user":
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": filler[0]}]})
    msgs.append({"role": "user", "content": [{"type": "text", "text": t} for t in filler[1:26]]})
    out[-1] = jump
    del last
    return out, _times(len(out)), [(len(out), "lookback_exceeded", _last_path(jump))]


def m_short_prefix(bodies: list[Body]) -> tuple[list[Body], list[float], Expected]:
    return copy.deepcopy(bodies), _times(len(bodies)), [(2, "below_minimum", _last_path(bodies[0]))]


MUTATIONS: dict[str, Callable[[list[Body]], tuple[list[Body], list[float], Expected]]] = {
    "timestamp in system": m_timestamp,
    "tool re-order": m_tools_reordered,
    "JSON key order in a tool schema": m_json_key_order,
    "whitespace": m_whitespace,
    "edited early message": m_edit_early_message,
    "model switch": m_model_switch,
    "tool_choice change": m_tool_choice,
    "6-minute gap": m_gap,
    "concurrent pair": m_concurrent,
}


def build_cases() -> tuple[list[Base], list[Case]]:
    oh = openhands_base()
    padding = _system_text(oh.bodies[0])
    filler = [p.strip() for p in padding.split("\n") if len(p.strip()) > 20][:26]
    assert len(filler) == 26
    bases = [oh, *pair_bases(padding)]
    cases: list[Case] = []
    for base in bases:
        check_extends(base.bodies)
        if base.short:
            bodies, times, exp = m_short_prefix(base.bodies)
            cases.append(Case(base.name, "short prefix", bodies, times, exp))
            continue
        for name, fn in MUTATIONS.items():
            bodies, times, exp = fn(base.bodies)
            cases.append(Case(base.name, name, bodies, times, exp))
        bodies, times, exp = m_block_jump(base.bodies, filler)
        cases.append(Case(base.name, "25-block jump", bodies, times, exp))
    return bases, cases
