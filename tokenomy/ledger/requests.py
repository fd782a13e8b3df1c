"""The ledger's request table: one row per request the gateway (or ``wrap()``) served.

Rows hold tokens, never dollars (cost is derived at read time, so a corrected price re-prices
history), and never an API key. Prompt and response bodies are kept only when the operator
asked for them (``--store-bodies``).

Writes leave the request path: ``LedgerWriter`` is one background thread fed by a queue; it
batches inserts into one transaction each and drains the queue on ``close()``, so a request
that was served is never lost from the ledger. ``read_runs`` turns the table back into
``Run``s for ``tokenomy report`` / ``doctor --db``.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from pathlib import Path
from typing import Any

from tokenomy.blocks import parse_request
from tokenomy.errors import InputError
from tokenomy.ledger import Migration, connect, migrate
from tokenomy.model import Run, Turn, Usage

__all__ = ["MIGRATIONS", "LedgerWriter", "RequestRow", "read_rows", "read_runs"]

log = logging.getLogger("tokenomy.ledger")

TABLE = "gateway_requests"


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRow:
    """One served request. ``outcome`` is ok | client_error | upstream_error | aborted | timeout |
    unreachable | rejected (the gateway refused it itself, nothing sent upstream)."""

    request_id: str
    started_at: float
    source: str = "gateway"
    run_id: str | None = None
    method: str = "POST"
    endpoint: str = ""
    model: str | None = None
    stream: bool = False
    status: int | None = None
    outcome: str = "ok"
    error_type: str | None = None
    error: str | None = None
    input_tokens: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    cache_read: int = 0
    output_tokens: int = 0
    service_tier: str | None = None
    inference_geo: str | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    upstream_request_id: str | None = None
    message_id: str | None = None
    mode: str = "observe"
    rewrites: str | None = None  # JSON list of rewrite names applied
    miss_cause: str | None = None
    miss_tokens: int | None = None
    diagnosis: str | None = None  # JSON object
    blocks: str | None = None  # JSON list of [prefix_hash_hex, tokens, bytes, section, kind]
    request_body: bytes | None = None
    response_body: bytes | None = None


_COLUMNS = tuple(f.name for f in fields(RequestRow))


def _m001_requests(conn: sqlite3.Connection) -> None:
    conn.execute(
        f"""CREATE TABLE {TABLE} (
            id INTEGER PRIMARY KEY,
            request_id TEXT NOT NULL,
            started_at REAL NOT NULL,
            source TEXT NOT NULL,
            run_id TEXT,
            method TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            model TEXT,
            stream INTEGER NOT NULL,
            status INTEGER,
            outcome TEXT NOT NULL,
            error_type TEXT,
            error TEXT,
            input_tokens INTEGER NOT NULL,
            cache_write_5m INTEGER NOT NULL,
            cache_write_1h INTEGER NOT NULL,
            cache_read INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            service_tier TEXT,
            inference_geo TEXT,
            latency_s REAL,
            ttft_s REAL,
            upstream_request_id TEXT,
            message_id TEXT,
            mode TEXT NOT NULL,
            rewrites TEXT,
            miss_cause TEXT,
            miss_tokens INTEGER,
            diagnosis TEXT,
            blocks TEXT,
            request_body BLOB,
            response_body BLOB
        )"""
    )
    conn.execute(f"CREATE INDEX {TABLE}_run ON {TABLE} (run_id, started_at)")
    conn.execute(f"CREATE INDEX {TABLE}_time ON {TABLE} (started_at)")


MIGRATIONS: list[Migration] = [("gateway_requests_001_create", _m001_requests)]

_INSERT = f"INSERT INTO {TABLE} ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"


def open_ledger(path: str | Path | None) -> sqlite3.Connection:
    """Connect and bring the request table up to date."""
    conn = connect(path)
    migrate(conn, MIGRATIONS)
    return conn


class _Barrier:
    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = threading.Event()


_STOP = object()
_row_values = attrgetter(*_COLUMNS)  # a flat tuple in column order; ``astuple`` deep-copies, 30x slower


class LedgerWriter:
    """One thread that owns the write connection; ``submit`` never blocks the event loop.

    The thread wakes on the first queued row, then lingers ``linger_s`` so the rows of that
    moment are inserted together in one transaction (up to ``batch_size``): under load that is
    one wake-up and one commit per few hundred requests instead of one each, which is what keeps
    this thread from competing with the event loop for the GIL. ``flush()`` and ``close()`` cut
    the linger short. ``flush()`` waits until everything submitted so far is on disk;
    ``close()`` drains the queue and stops the thread.
    """

    def __init__(self, path: str | Path | None, *, batch_size: int = 512, linger_s: float = 0.05) -> None:
        self.path = path
        self.batch_size = batch_size
        self.linger_s = linger_s
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._urgent = threading.Event()
        self._conn = open_ledger(path)
        self._closed = False
        self.written = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._loop, name="tokenomy-ledger", daemon=True)
        self._thread.start()

    def submit(self, row: RequestRow) -> None:
        if self._closed:
            # a late row (a stream that ended after shutdown began) is still written, directly
            conn = open_ledger(self.path)
            try:
                self._write([row], conn)
            finally:
                conn.close()
            return
        self._queue.put(row)

    def flush(self, timeout: float = 30.0) -> bool:
        if self._closed:
            return True
        barrier = _Barrier()
        self._queue.put(barrier)
        self._urgent.set()
        return barrier.event.wait(timeout)

    def close(self, timeout: float = 60.0) -> None:
        if self._closed:
            return
        self._queue.put(_STOP)
        self._urgent.set()
        self._thread.join(timeout)
        self._closed = True
        # a row submitted while the thread was finishing is written here, never dropped
        rest: list[RequestRow] = []
        while not self._thread.is_alive():
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, RequestRow):
                rest.append(item)
            elif isinstance(item, _Barrier):
                item.event.set()
        if rest:
            self._write(rest)
        self._conn.close()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if self.linger_s > 0 and item is not _STOP and not isinstance(item, _Barrier):
                self._urgent.wait(self.linger_s)
            self._urgent.clear()
            batch: list[RequestRow] = []
            barriers: list[_Barrier] = []
            stop = False
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, _Barrier):
                    barriers.append(item)
                elif isinstance(item, RequestRow):
                    batch.append(item)
                if len(batch) >= self.batch_size:
                    self._write(batch)
                    batch = []
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._write(batch)
            for b in barriers:
                b.event.set()
            if stop:
                return

    def _write(self, rows: Sequence[RequestRow], conn: sqlite3.Connection | None = None) -> None:
        conn = conn or self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_INSERT, [_row_values(r) for r in rows])
            conn.execute("COMMIT")
            self.written += len(rows)
        except sqlite3.Error as e:  # a full disk must not take the gateway down; say so loudly
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self.failed += len(rows)
            log.error("ledger write of %d rows to %s failed: %s", len(rows), self.path, e)


_DETAIL_COLUMNS = frozenset({"diagnosis", "blocks", "request_body", "response_body"})


def read_rows(
    db_path: str | Path, *, where: str = "", params: Iterable[Any] = (), details: bool = True
) -> list[RequestRow]:
    """Every request row (optionally filtered by a SQL ``where`` over the columns), oldest first;
    without ``details``, the bodies, block lists and diagnoses are left unread (``None``)."""
    return list(_iter_rows(db_path, where=where, params=params, details=details))


def _iter_rows(
    db_path: str | Path, *, where: str = "", params: Iterable[Any] = (), details: bool = True
) -> Iterator[RequestRow]:
    p = Path(db_path)
    if str(db_path) != ":memory:" and not p.exists():
        raise InputError(
            f"ledger not found: {p} — run `tokenomy serve --db {p}` first, or pass the right --db"
        )
    conn = open_ledger(p)
    try:
        cols = (c if details or c not in _DETAIL_COLUMNS else f"NULL AS {c}" for c in _COLUMNS)
        sql = f"SELECT {', '.join(cols)} FROM {TABLE}"
        if where:
            sql += f" WHERE {where}"
        sql += " ORDER BY started_at, id"
        for rec in conn.execute(sql, tuple(params)):
            values = dict(zip(_COLUMNS, rec, strict=True))
            values["stream"] = bool(values["stream"])
            yield RequestRow(**values)
    finally:
        conn.close()


def _turn_of(row: RequestRow) -> Turn:
    usage = Usage.from_api(
        {
            "input_tokens": row.input_tokens,
            "cache_creation_input_tokens": row.cache_write_5m + row.cache_write_1h,
            "cache_creation": {
                "ephemeral_5m_input_tokens": row.cache_write_5m,
                "ephemeral_1h_input_tokens": row.cache_write_1h,
            },
            "cache_read_input_tokens": row.cache_read,
            "output_tokens": row.output_tokens,
            "inference_geo": row.inference_geo,
        },
        service_tier=row.service_tier,
    )
    request = None
    if row.request_body:
        try:
            body = json.loads(row.request_body)
        except ValueError:
            body = None
        if isinstance(body, dict):
            request = parse_request(body)
    ok = row.outcome == "ok"
    return Turn(
        model=row.model or "",
        usage=usage if ok or usage.total_tokens else None,
        request=request,
        started_at=row.started_at,
        latency_s=row.latency_s,
        # a non-streamed response arrives whole: its first token came no later than its end
        ttft_s=row.ttft_s if row.ttft_s is not None else row.latency_s,
        request_id=row.upstream_request_id or row.request_id,
        message_id=row.message_id,
        status=row.status,
        error=row.error,
        quality={"usage": "exact"} if ok else {},
        meta={
            "outcome": row.outcome,
            "miss_cause": row.miss_cause,
            "diagnosis": json.loads(row.diagnosis) if row.diagnosis else None,
            "blocks": json.loads(row.blocks) if row.blocks else None,
            "rewrites": json.loads(row.rewrites) if row.rewrites else [],
            "mode": row.mode,
            "source": row.source,
        },
    )


def read_runs(db_path: str | Path, *, details: bool = True) -> list[Run]:
    """The ledger's Messages requests as Runs (one per linked run id), oldest run first; without
    ``details``, turns carry usage and timing but no parsed request, blocks or diagnosis."""
    # one row at a time into turns: a month of gateway traffic is never held as rows too
    by_run: dict[str, tuple[list[Turn], set[str]]] = {}
    for r in _iter_rows(db_path, where="endpoint = ?", params=("/v1/messages",), details=details):
        turns, sources = by_run.setdefault(r.run_id or f"request:{r.request_id}", ([], set()))
        turns.append(_turn_of(r))
        sources.add(r.source)
    runs = [
        Run(
            run_id=run_id,
            turns=tuple(turns),
            source=str(db_path),
            kind="gateway",
            path=str(db_path),
            meta={"sources": sorted(sources)},
        )
        for run_id, (turns, sources) in by_run.items()
    ]
    runs.sort(key=lambda r: (r.started_at or 0.0, r.run_id))
    return runs
