"""The request table: migrations, the batching writer, and reading rows back as Runs."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tokenomy.errors import InputError
from tokenomy.ledger import connect, migrate
from tokenomy.ledger.requests import MIGRATIONS, LedgerWriter, RequestRow, read_rows, read_runs


def _row(i: int, run: str = "run_a") -> RequestRow:
    return RequestRow(
        request_id=f"req_{i}",
        started_at=1000.0 + i,
        run_id=run,
        endpoint="/v1/messages",
        model="claude-sonnet-4-6",
        status=200,
        input_tokens=10 + i,
        cache_write_1h=5,
        cache_read=100,
        output_tokens=7,
        latency_s=0.5,
    )


def test_migrations_from_blank_are_idempotent(tmp_path: Path) -> None:
    conn = connect(tmp_path / "l.db")
    assert migrate(conn, MIGRATIONS) == ["gateway_requests_001_create"]
    assert migrate(conn, MIGRATIONS) == []
    conn.close()


def test_writer_batches_from_many_threads_and_drains_on_close(tmp_path: Path) -> None:
    w = LedgerWriter(tmp_path / "l.db", batch_size=64)

    def produce(k: int) -> None:
        for i in range(250):
            w.submit(_row(k * 1000 + i, run=f"run_{k}"))

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert w.flush()
    w.close()
    w.submit(_row(99_999))  # after close: written synchronously, never lost
    assert len(read_rows(tmp_path / "l.db")) == 1001


def test_read_runs_groups_by_run_and_keeps_token_classes(tmp_path: Path) -> None:
    w = LedgerWriter(tmp_path / "l.db")
    for i in range(3):
        w.submit(_row(i))
    w.submit(_row(5, run="run_b"))
    w.close()
    runs = read_runs(tmp_path / "l.db")
    assert [r.run_id for r in runs] == ["run_a", "run_b"]
    assert len(runs[0].turns) == 3 and runs[0].kind == "gateway"
    u = runs[0].turns[0].usage
    assert u is not None and (u.input_tokens, u.cache_write_1h, u.cache_read, u.output_tokens) == (
        10,
        5,
        100,
        7,
    )
    assert runs[0].turns[0].ttft_s == 0.5  # a non-streamed response: ttft is at most its latency


def test_read_runs_without_details_skips_bodies_blocks_and_diagnoses(tmp_path: Path) -> None:
    from dataclasses import replace

    body = b'{"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}'
    w = LedgerWriter(tmp_path / "l.db")
    w.submit(
        replace(_row(0), request_body=body, blocks='[["ab", 3, 12, "messages", "text"]]', diagnosis="{}")
    )
    w.close()
    full = read_runs(tmp_path / "l.db")[0].turns[0]
    light = read_runs(tmp_path / "l.db", details=False)[0].turns[0]
    assert full.request is not None and full.meta["blocks"] and full.meta["diagnosis"] == {}
    assert light.request is None and light.meta["blocks"] is None and light.meta["diagnosis"] is None
    assert light.usage == full.usage and light.started_at == full.started_at


def test_read_missing_ledger_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="tokenomy serve --db"):
        read_runs(tmp_path / "nope.db")
