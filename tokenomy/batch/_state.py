"""Batch state in the ledger: jobs, their requests, and the batches those went into.

A *job* is one input file (resolved path + content hash). Each request of it is an *item*; batch
items are grouped into *chunks*, one chunk per ``POST /v1/messages/batches``. Every change of
state is one transaction, written *before* the step it announces, so a process killed at any
point can be re-run and continue:

- ``planned``  → ``creating``: the intent, with a *watermark* (the newest batch id upstream just
  before the create call). If the process dies before the batch id is recorded, the resume lists
  batches newer than the watermark and adopts the one with this chunk's request count that no
  other chunk claims; only when there is none is the chunk created again.
- ``creating`` → ``submitted`` (batch id recorded) → ``collected`` (every line's result stored in
  the same transaction that marks the chunk collected).
- ``foreign``: an adopted batch whose results did not carry this chunk's custom_ids; its items go
  back into a new chunk.

Results are stored as they came back (the ledger keeps no prompt bodies); usage is stored as
tokens, never dollars.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tokenomy.ledger import Migration, migrate

__all__ = ["MIGRATIONS", "Chunk", "Job", "Store", "StoredItem"]


def _m001_batch_tables(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE batch_jobs (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            created_at REAL NOT NULL,
            n_items INTEGER NOT NULL,
            lane_mode TEXT NOT NULL,
            warm TEXT,
            warm_result TEXT
        )"""
    )
    conn.execute("CREATE INDEX batch_jobs_file ON batch_jobs (path, content_hash)")
    conn.execute(
        """CREATE TABLE batch_chunks (
            id INTEGER PRIMARY KEY,
            job_id INTEGER NOT NULL REFERENCES batch_jobs(id),
            seq INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            n INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            state TEXT NOT NULL,
            watermark TEXT,
            batch_id TEXT UNIQUE,
            processing_status TEXT,
            counts TEXT,
            intent_at REAL,
            submitted_at REAL,
            ended_at REAL,
            collected_at REAL,
            UNIQUE (job_id, seq)
        )"""
    )
    conn.execute(
        """CREATE TABLE batch_items (
            job_id INTEGER NOT NULL REFERENCES batch_jobs(id),
            idx INTEGER NOT NULL,
            line INTEGER NOT NULL,
            custom_id TEXT NOT NULL,
            model TEXT NOT NULL,
            lane TEXT NOT NULL,
            chunk_id INTEGER REFERENCES batch_chunks(id),
            attempt INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL,
            first_status TEXT,
            usage TEXT,
            result TEXT,
            updated_at REAL,
            PRIMARY KEY (job_id, idx)
        )"""
    )
    conn.execute("CREATE INDEX batch_items_chunk ON batch_items (chunk_id)")
    conn.execute("CREATE UNIQUE INDEX batch_items_custom_id ON batch_items (job_id, custom_id)")


MIGRATIONS: list[Migration] = [("batch_001_tables", _m001_batch_tables)]

# Item states: pending (not sent), submitted (in a batch), sending (live call under way), and the
# result types of spec §4.5: succeeded, errored, canceled, expired.
FINAL = ("succeeded", "errored", "canceled", "expired")


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    id: int
    path: str
    content_hash: str
    created_at: float
    n_items: int
    lane_mode: str
    warm: dict[str, Any] | None
    warm_result: dict[str, Any] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Chunk:
    id: int
    job_id: int
    seq: int
    attempt: int
    n: int
    bytes: int
    state: str
    watermark: str | None
    batch_id: str | None
    processing_status: str | None
    counts: dict[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredItem:
    idx: int
    line: int
    custom_id: str
    model: str
    lane: str
    chunk_id: int | None
    attempt: int
    status: str
    first_status: str | None
    usage: dict[str, Any] | None
    result: dict[str, Any] | None


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_JOB_COLS = "id, path, content_hash, created_at, n_items, lane_mode, warm, warm_result"
_CHUNK_COLS = "id, job_id, seq, attempt, n, bytes, state, watermark, batch_id, processing_status, counts"
_ITEM_COLS = "idx, line, custom_id, model, lane, chunk_id, attempt, status, first_status, usage, result"


def _job(row: Sequence[Any]) -> Job:
    return Job(
        id=row[0],
        path=row[1],
        content_hash=row[2],
        created_at=row[3],
        n_items=row[4],
        lane_mode=row[5],
        warm=_loads(row[6]),
        warm_result=_loads(row[7]),
    )


def _chunk(row: Sequence[Any]) -> Chunk:
    return Chunk(
        id=row[0],
        job_id=row[1],
        seq=row[2],
        attempt=row[3],
        n=row[4],
        bytes=row[5],
        state=row[6],
        watermark=row[7],
        batch_id=row[8],
        processing_status=row[9],
        counts=_loads(row[10]) or {},
    )


def _item(row: Sequence[Any]) -> StoredItem:
    return StoredItem(
        idx=row[0],
        line=row[1],
        custom_id=row[2],
        model=row[3],
        lane=row[4],
        chunk_id=row[5],
        attempt=row[6],
        status=row[7],
        first_status=row[8],
        usage=_loads(row[9]),
        result=_loads(row[10]),
    )


class Store:
    """Reads and writes the batch tables; each write method is one transaction."""

    def __init__(self, conn: sqlite3.Connection, *, clock: Any = time.time) -> None:
        self.conn = conn
        self.clock = clock
        migrate(conn, MIGRATIONS)

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- jobs ------------------------------------------------------------------------------

    def find_job(self, path: str, content_hash: str) -> Job | None:
        row = self.conn.execute(
            f"SELECT {_JOB_COLS} FROM batch_jobs WHERE path = ? AND content_hash = ? ORDER BY id DESC LIMIT 1",
            (path, content_hash),
        ).fetchone()
        return _job(row) if row else None

    def job(self, job_id: int) -> Job | None:
        row = self.conn.execute(f"SELECT {_JOB_COLS} FROM batch_jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def jobs(self) -> list[Job]:
        return [_job(r) for r in self.conn.execute(f"SELECT {_JOB_COLS} FROM batch_jobs ORDER BY id")]

    def create_job(
        self,
        *,
        path: str,
        content_hash: str,
        lane_mode: str,
        warm: dict[str, Any] | None,
        items: Sequence[tuple[int, int, str, str, str]],
        chunks: Sequence[tuple[int, int, Sequence[int]]],
    ) -> Job:
        """Record a new job, all its items ``(idx, line, custom_id, model, lane)`` and its planned
        chunks ``(n_bytes, attempt, [idx, …])`` in one transaction."""
        now = self.clock()
        with self.tx() as c:
            cur = c.execute(
                "INSERT INTO batch_jobs (path, content_hash, created_at, n_items, lane_mode, warm) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (path, content_hash, now, len(items), lane_mode, _dumps(warm)),
            )
            job_id = int(cur.lastrowid or 0)
            c.executemany(
                "INSERT INTO batch_items (job_id, idx, line, custom_id, model, lane, status, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                [(job_id, idx, line, cid, model, lane, now) for idx, line, cid, model, lane in items],
            )
            self._add_chunks(c, job_id, chunks)
        job = self.job(job_id)
        assert job is not None
        return job

    def _add_chunks(
        self, c: sqlite3.Connection, job_id: int, chunks: Iterable[tuple[int, int, Sequence[int]]]
    ) -> int:
        row = c.execute(
            "SELECT COALESCE(MAX(seq), -1) FROM batch_chunks WHERE job_id = ?", (job_id,)
        ).fetchone()
        seq = int(row[0]) + 1
        added = 0
        for n_bytes, attempt, idxs in chunks:
            cur = c.execute(
                "INSERT INTO batch_chunks (job_id, seq, attempt, n, bytes, state) VALUES (?, ?, ?, ?, ?, 'planned')",
                (job_id, seq, attempt, len(idxs), n_bytes),
            )
            chunk_id = cur.lastrowid
            c.executemany(
                "UPDATE batch_items SET chunk_id = ?, attempt = ? WHERE job_id = ? AND idx = ?",
                [(chunk_id, attempt, job_id, i) for i in idxs],
            )
            seq += 1
            added += 1
        return added

    def set_warm_result(self, job_id: int, result: dict[str, Any]) -> None:
        with self.tx() as c:
            c.execute("UPDATE batch_jobs SET warm_result = ? WHERE id = ?", (_dumps(result), job_id))

    # -- chunks ----------------------------------------------------------------------------

    def chunks(self, job_id: int) -> list[Chunk]:
        return [
            _chunk(r)
            for r in self.conn.execute(
                f"SELECT {_CHUNK_COLS} FROM batch_chunks WHERE job_id = ? ORDER BY seq", (job_id,)
            )
        ]

    def chunk(self, chunk_id: int) -> Chunk:
        row = self.conn.execute(
            f"SELECT {_CHUNK_COLS} FROM batch_chunks WHERE id = ?", (chunk_id,)
        ).fetchone()
        return _chunk(row)

    def chunk_by_batch(self, batch_id: str) -> Chunk | None:
        row = self.conn.execute(
            f"SELECT {_CHUNK_COLS} FROM batch_chunks WHERE batch_id = ?", (batch_id,)
        ).fetchone()
        return _chunk(row) if row else None

    def claimed_batch_ids(self) -> set[str]:
        return {
            r[0] for r in self.conn.execute("SELECT batch_id FROM batch_chunks WHERE batch_id IS NOT NULL")
        }

    def chunk_items(self, chunk_id: int) -> list[StoredItem]:
        return [
            _item(r)
            for r in self.conn.execute(
                f"SELECT {_ITEM_COLS} FROM batch_items WHERE chunk_id = ? ORDER BY idx", (chunk_id,)
            )
        ]

    def mark_creating(self, chunk_id: int, watermark: str) -> None:
        with self.tx() as c:
            c.execute(
                "UPDATE batch_chunks SET state = 'creating', watermark = ?, intent_at = ? WHERE id = ?",
                (watermark, self.clock(), chunk_id),
            )

    def mark_submitted(self, chunk_id: int, batch_id: str, status: str, counts: dict[str, int]) -> None:
        with self.tx() as c:
            c.execute(
                "UPDATE batch_chunks SET state = 'submitted', batch_id = ?, processing_status = ?, counts = ?, "
                "submitted_at = ? WHERE id = ?",
                (batch_id, status, _dumps(counts), self.clock(), chunk_id),
            )
            c.execute(
                "UPDATE batch_items SET status = 'submitted', updated_at = ? WHERE chunk_id = ?",
                (self.clock(), chunk_id),
            )

    def update_progress(
        self, chunk_id: int, status: str, counts: dict[str, int], ended_at: float | None
    ) -> None:
        with self.tx() as c:
            c.execute(
                "UPDATE batch_chunks SET processing_status = ?, counts = ?, ended_at = ? WHERE id = ?",
                (status, _dumps(counts), ended_at, chunk_id),
            )

    def collect(
        self,
        chunk_id: int,
        results: Iterable[tuple[int, str, dict[str, Any] | None, dict[str, Any]]],
        *,
        checkpoint: Any = None,
    ) -> None:
        """Store each ``(idx, status, usage, result)`` and mark the chunk collected, atomically."""
        now = self.clock()
        with self.tx() as c:
            for k, (idx, status, usage, result) in enumerate(results):
                c.execute(
                    "UPDATE batch_items SET status = ?, usage = ?, result = ?, updated_at = ? "
                    "WHERE chunk_id = ? AND idx = ?",
                    (status, _dumps(usage), _dumps(result), now, chunk_id, idx),
                )
                if checkpoint is not None and k == 0:
                    checkpoint("mid_collect")
            c.execute(
                "UPDATE batch_chunks SET state = 'collected', collected_at = ? WHERE id = ?", (now, chunk_id)
            )

    def mark_foreign(self, chunk: Chunk) -> None:
        """An adopted batch was not ours: keep its id claimed, put its items into a new chunk."""
        with self.tx() as c:
            c.execute("UPDATE batch_chunks SET state = 'foreign' WHERE id = ?", (chunk.id,))
            idxs = [r[0] for r in c.execute("SELECT idx FROM batch_items WHERE chunk_id = ?", (chunk.id,))]
            c.execute("UPDATE batch_items SET status = 'pending' WHERE chunk_id = ?", (chunk.id,))
            self._add_chunks(c, chunk.job_id, [(chunk.bytes, chunk.attempt, idxs)])

    def plan_retries(self, job_id: int, statuses: Sequence[str], chunker: Any) -> int:
        """Move batch items that ended in ``statuses`` on their first attempt into new chunks
        (attempt 1), once; returns how many chunks were added. ``chunker(idxs)`` splits them."""
        if not statuses:
            return 0
        marks = ",".join("?" for _ in statuses)
        with self.tx() as c:
            idxs = [
                r[0]
                for r in c.execute(
                    f"SELECT idx FROM batch_items WHERE job_id = ? AND lane = 'batch' AND attempt = 0 "
                    f"AND status IN ({marks}) ORDER BY idx",
                    (job_id, *statuses),
                )
            ]
            if not idxs:
                return 0
            c.executemany(
                "UPDATE batch_items SET first_status = status, status = 'pending' WHERE job_id = ? AND idx = ?",
                [(job_id, i) for i in idxs],
            )
            return self._add_chunks(c, job_id, [(size, 1, part) for size, part in chunker(idxs)])

    # -- items -----------------------------------------------------------------------------

    def items(self, job_id: int) -> list[StoredItem]:
        return [
            _item(r)
            for r in self.conn.execute(
                f"SELECT {_ITEM_COLS} FROM batch_items WHERE job_id = ? ORDER BY idx", (job_id,)
            )
        ]

    def live_pending(self, job_id: int) -> list[StoredItem]:
        return [
            _item(r)
            for r in self.conn.execute(
                f"SELECT {_ITEM_COLS} FROM batch_items WHERE job_id = ? AND lane = 'live' "
                "AND status IN ('pending', 'sending') ORDER BY idx",
                (job_id,),
            )
        ]

    def mark_sending(self, job_id: int, idxs: Sequence[int]) -> None:
        with self.tx() as c:
            c.executemany(
                "UPDATE batch_items SET status = 'sending', updated_at = ? WHERE job_id = ? AND idx = ?",
                [(self.clock(), job_id, i) for i in idxs],
            )

    def record_live(
        self, job_id: int, idx: int, status: str, usage: dict[str, Any] | None, result: dict[str, Any]
    ) -> None:
        with self.tx() as c:
            c.execute(
                "UPDATE batch_items SET status = ?, usage = ?, result = ?, updated_at = ? WHERE job_id = ? AND idx = ?",
                (status, _dumps(usage), _dumps(result), self.clock(), job_id, idx),
            )

    def status_counts(self, job_id: int) -> dict[str, int]:
        return {
            r[0]: r[1]
            for r in self.conn.execute(
                "SELECT status, COUNT(*) FROM batch_items WHERE job_id = ? GROUP BY status", (job_id,)
            )
        }
