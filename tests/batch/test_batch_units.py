"""Ledger tables, the warm-up plan and the cost report, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest
from batch_support import LONG_SYSTEM, SONNET, params

from tokenomy.batch import Store, build_cost_report, find_shared_prefixes
from tokenomy.batch._costs import Line
from tokenomy.batch._progress import eta_seconds, progress_table
from tokenomy.batch._state import MIGRATIONS
from tokenomy.batch._warm import mark_prefix, warm_body
from tokenomy.blocks import parse_request
from tokenomy.cache import effective_breakpoints
from tokenomy.ledger import connect, migrate
from tokenomy.model import Usage
from tokenomy.pricing import cost


def test_migrations_apply_once(tmp_path: Path) -> None:
    conn = connect(tmp_path / "l.db")
    assert migrate(conn, MIGRATIONS) == ["batch_001_tables"]
    assert migrate(conn, MIGRATIONS) == []
    Store(conn)  # opening again is harmless


def test_retries_are_planned_once(tmp_path: Path) -> None:
    store = Store(connect(tmp_path / "l.db"))
    job = store.create_job(
        path="/x",
        content_hash="h",
        lane_mode="batch",
        warm=None,
        items=[(i, i + 1, f"c{i}", "m", "batch") for i in range(4)],
        chunks=[(100, 0, [0, 1, 2, 3])],
    )
    (chunk,) = store.chunks(job.id)
    store.mark_creating(chunk.id, "")
    store.mark_submitted(chunk.id, "msgbatch_1", "ended", {})
    store.collect(
        chunk.id,
        [
            (0, "succeeded", {}, {}),
            (1, "errored", None, {}),
            (2, "expired", None, {}),
            (3, "canceled", None, {}),
        ],
    )

    def one_chunk(idxs: list[int]) -> list[tuple[int, list[int]]]:
        return [(10, idxs)]

    assert store.plan_retries(job.id, ("errored", "expired"), one_chunk) == 1
    assert store.plan_retries(job.id, ("errored", "expired"), one_chunk) == 0  # once
    retry = store.chunks(job.id)[1]
    assert retry.attempt == 1 and [it.custom_id for it in store.chunk_items(retry.id)] == ["c1", "c2"]
    assert {it.custom_id: it.first_status for it in store.items(job.id)}["c2"] == "expired"


def test_shared_prefix_found_marked_and_warmed() -> None:
    reqs = [params(f"q{i}", model=SONNET, system=LONG_SYSTEM) for i in range(5)] + [
        params("other", model=SONNET)
    ]
    (p,) = find_shared_prefixes(list(enumerate(reqs)))
    assert p.path == ("system", 0) and p.members == (0, 1, 2, 3, 4) and p.tokens > 1024
    marked = mark_prefix(reqs[0], p)
    assert marked is not None and marked["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert parse_request(marked).blocks[0].prefix_hash.hex() == p.prefix_hash  # same prompt
    body = warm_body(reqs[0], p)
    assert (
        body is not None
        and body["max_tokens"] == 0
        and body["messages"] == [{"role": "user", "content": "."}]
    )
    assert [b.cache_ttl for b in parse_request(body).blocks] == ["1h", None]
    # a request whose own 5m breakpoint comes first cannot take a 1h mark after it
    tools = [
        {
            "name": "t",
            "description": "d",
            "input_schema": {"type": "object"},
            "cache_control": {"type": "ephemeral"},
        }
    ]
    assert mark_prefix({**reqs[0], "tools": tools}, p) is None
    # short prefixes are not worth warming
    assert find_shared_prefixes([(0, params("a", system="short")), (1, params("b", system="short"))]) == []


def test_warm_body_for_a_prefix_inside_the_messages() -> None:
    convo = [
        {"role": "user", "content": LONG_SYSTEM},
        {"role": "assistant", "content": "ok"},
    ]
    reqs = [
        {**params("x", model=SONNET), "messages": [*convo, {"role": "user", "content": f"q{i}"}]}
        for i in range(3)
    ]
    (p,) = find_shared_prefixes(list(enumerate(reqs)))
    assert p.path[0] == "messages"
    body = warm_body(reqs[0], p)
    assert body is not None and body["messages"][-1] == {"role": "user", "content": "."}
    effective_breakpoints(parse_request(body))
    assert warm_body({**reqs[0], "thinking": {"type": "enabled", "budget_tokens": 1024}}, p) is None


def test_cost_report_prices_lines_and_replays_them_live() -> None:
    usage = Usage(input_tokens=100, output_tokens=10, service_tier="batch").to_api()
    lines = [
        Line(lane="batch", model=SONNET, status="succeeded", usage=usage, params=params("a", model=SONNET)),
        Line(
            lane="batch",
            model=SONNET,
            status="errored",
            usage=None,
            params=params("b", model=SONNET),
            retried=True,
        ),
        Line(lane="batch", model="claude-mystery-0", status="succeeded", usage=usage, params=None),
    ]
    rep = build_cost_report(lines)
    one = cost(Usage.from_api(usage), SONNET, tier="batch")
    assert one is not None
    assert rep.batch.total == pytest.approx(one.total) and rep.batch.unknown == 1
    assert rep.live_as_written.total == pytest.approx(2 * one.total)
    assert rep.by_status == {"succeeded": 2, "errored": 1} and rep.retried == 1
    assert rep.to_json()["cost"]["batch"]["usd"] is None  # an unknown price is never $0
    assert any("unknown" in line for line in rep.lines())


def test_progress_eta_and_table() -> None:
    from rich.console import Console

    from tokenomy.batch._state import Chunk, Job

    def chunk(i: int, status: str, state: str = "submitted") -> Chunk:
        return Chunk(
            id=i,
            job_id=1,
            seq=i,
            attempt=0,
            n=5,
            bytes=10,
            state=state,
            watermark="",
            batch_id=f"b{i}",
            processing_status=status,
            counts={"processing": 5},
        )

    chunks = [chunk(1, "ended", "collected"), chunk(2, "in_progress"), chunk(3, "in_progress")]
    assert eta_seconds(chunks, 0.0, 100.0) == pytest.approx(200.0)
    assert eta_seconds(chunks[1:], 0.0, 100.0) is None
    job = Job(
        id=1,
        path="/x",
        content_hash="h",
        created_at=0,
        n_items=15,
        lane_mode="batch",
        warm=None,
        warm_result=None,
    )
    console = Console(file=__import__("io").StringIO(), width=100, color_system=None)
    console.print(progress_table(job, chunks, 200.0))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "ETA 3m20s" in text and "b2" in text and "in_progress" in text
