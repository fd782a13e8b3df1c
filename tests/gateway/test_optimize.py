"""optimize mode: rewrites change only cache markers, key order and tool order; unchanged
requests go out as the client's own bytes; on a replayed real run it lowers the bill, by what
``simulate`` predicts for that run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from gw_support import serve_with_lifespan, stack

from tokenomy.analysis.simulate import simulate
from tokenomy.blocks import parse_request
from tokenomy.gateway import GatewaySettings, create_app, stable_prefix
from tokenomy.gateway._plan import merge_client_breakpoints
from tokenomy.ledger.requests import read_rows, read_runs
from tokenomy.pricing import cost

HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
MODEL = "claude-sonnet-4-6"


def _strip_markers(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_markers(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_strip_markers(v) for v in value]
    return value


def test_stable_prefix_sorts_keys_and_tools_keeping_marker_positions() -> None:
    body = {
        "tools": [
            {"name": "zeta", "input_schema": {"type": "object", "properties": {"b": {}, "a": {}}}},
            {
                "name": "alpha",
                "input_schema": {"properties": {"y": {}}, "type": "object"},
                "cache_control": {"type": "ephemeral"},
            },
        ]
    }
    out = stable_prefix(body)
    assert out is not None
    assert [t["name"] for t in out["tools"]] == ["alpha", "zeta"]
    assert list(out["tools"][1]["input_schema"]["properties"]) == ["a", "b"]
    assert "cache_control" not in out["tools"][0] and out["tools"][1]["cache_control"] == {
        "type": "ephemeral"
    }
    assert stable_prefix(out) is None  # idempotent: a stable prefix is left alone


def test_merge_keeps_client_breakpoints() -> None:
    body = {
        "model": MODEL,
        "max_tokens": 5,
        "system": [{"type": "text", "text": "s" * 50, "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": f"m{i}"} for i in range(6)]}],
    }
    req = parse_request(body)
    merged = merge_client_breakpoints(req, {3: "5m", 5: "5m", 6: "5m", 4: "5m", 2: "5m"})
    assert (0, "1h") in merged and len(merged) == 4
    assert [i for i, _ in merged] == [0, 4, 5, 6]


def test_unchanged_requests_forward_original_bytes(tmp_path: Path) -> None:
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return httpx.Response(
            200, json={"id": "m", "type": "message", "usage": {"input_tokens": 3, "output_tokens": 1}}
        )

    app = create_app(
        GatewaySettings(upstream="http://u.invalid", db_path=str(tmp_path / "l.db"), mode="optimize"),
        transport=httpx.MockTransport(handler),
    )
    small = (
        b'{"model": "claude-sonnet-4-6",  "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}'
    )
    tools = {
        "model": MODEL,
        "max_tokens": 5,
        "tools": [
            {"name": "b", "input_schema": {"type": "object", "properties": {}}},
            {"name": "a", "input_schema": {"type": "object"}},
        ],
        "messages": [{"role": "user", "content": "hi"}],
    }
    with serve_with_lifespan(app) as url, httpx.Client(base_url=url) as h:
        assert h.post("/v1/messages", content=small, headers=HEADERS).status_code == 200
        assert h.post("/v1/messages", json=tools, headers=HEADERS).status_code == 200
    assert seen[0] == small  # too short to cache, nothing to reorder: the client's own bytes
    rewritten = json.loads(seen[1])
    assert [t["name"] for t in rewritten["tools"]] == ["a", "b"]
    assert _strip_markers(rewritten)["messages"] == tools["messages"]  # what the model is asked is unchanged
    rows = read_rows(tmp_path / "l.db")
    assert rows[0].rewrites is None and json.loads(rows[1].rewrites or "[]") == ["stable_prefix"]


def _bill(db: Path) -> float:
    total = 0.0
    for run in read_runs(db):
        for t in run.turns:
            if t.usage is not None:
                c = cost(t.usage, t.model)
                assert c is not None
                total += c.total
    return total


@pytest.fixture
def replay_bodies(workloads: Path) -> tuple[Path, list[dict[str, Any]]]:
    from tokenomy.sources import load_runs

    path = workloads / "openhands-multi-swe-bench" / "output.jsonl"
    runs = load_runs([path], source="openhands", use_index=False, trajectory_model=MODEL).runs
    run = max(runs, key=lambda r: len(r.turns))
    bodies = [
        dict(t.request.body) for t in run.turns[:24] if t.request is not None and t.request.body is not None
    ]
    assert len(bodies) >= 10
    return path, bodies


def _replay_agent(h: httpx.Client, bodies: list[dict[str, Any]]) -> None:
    """The recorded agent, re-run: it sends its conversation, appends the assistant turn it is
    answered and then what its environment observed (the recorded tool results)."""
    messages: list[Any] = list(bodies[0]["messages"])
    for i in range(len(bodies)):
        assert messages == bodies[i]["messages"]  # the recorded request, again
        r = h.post("/v1/messages", json={**bodies[0], "messages": messages}, headers=HEADERS)
        assert r.status_code == 200, r.text
        if i + 1 == len(bodies):
            return
        observed = bodies[i + 1]["messages"][len(messages) + 1 :]
        messages = [*messages, {"role": "assistant", "content": r.json()["content"]}, *observed]


def test_optimize_lowers_the_bill_as_simulate_predicts(
    tmp_path: Path, replay_bodies: tuple[Path, list[dict[str, Any]]]
) -> None:
    """Issue 7: on a replayed real run (emulator in ``replay:`` mode), optimize mode lowers the
    bill against observe mode by what ``tokenomy simulate`` predicts for the run, within 1%."""
    path, bodies = replay_bodies
    bills: dict[str, float] = {}
    dbs: dict[str, Path] = {}
    for mode in ("observe", "optimize"):
        d = tmp_path / mode
        d.mkdir()
        with stack(d, emulator={"responses": f"replay:{path}"}, mode=mode, store_bodies=True) as s:
            with httpx.Client(base_url=s.url, timeout=30) as h:
                _replay_agent(h, bodies)
        assert all(row.outcome == "ok" for row in s.rows())
        assert len(s.rows()) == len(bodies)
        bills[mode], dbs[mode] = _bill(s.db), s.db
    saving = bills["observe"] - bills["optimize"]
    assert saving > 0.1 * bills["observe"], bills
    sim = simulate(read_runs(dbs["observe"]), ["none", "tokenomy"])
    none_cost, planned = sim.policies["none"].cost_usd, sim.policies["tokenomy"].cost_usd
    assert none_cost is not None and planned is not None
    assert none_cost == pytest.approx(bills["observe"], rel=0.01)
    predicted = none_cost - planned
    print(
        f"observe ${bills['observe']:.4f} optimize ${bills['optimize']:.4f} saving ${saving:.4f} simulate ${predicted:.4f}"
    )
    assert saving == pytest.approx(predicted, rel=0.01), (saving, predicted, bills)
