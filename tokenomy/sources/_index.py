"""The incremental scan index, kept in the local SQLite ledger.

One row per transcript file: its size, mtime, the byte offset scanned so far, the per-response
aggregates found so far (a msgpack ``FileState``, enough to resume) and its sums (a msgpack
``FileSummary``, what a report adds up). On a re-run an unchanged file is not opened and its state
not even loaded, a grown one is read from the stored offset only, and one that shrank or whose
head changed is read again from the start.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from tokenomy.ledger import Migration, connect, migrate


def _m001_source_files(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE source_files (
            path TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            offset INTEGER NOT NULL,
            parser INTEGER NOT NULL,
            with_visible INTEGER NOT NULL,
            state BLOB NOT NULL,
            scanned_at REAL NOT NULL
        )"""
    )


def _m002_summary(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE source_files ADD COLUMN summary BLOB")


MIGRATIONS: list[Migration] = [
    ("sources_001_source_files", _m001_source_files),
    ("sources_002_summary", _m002_summary),
]


class Stored(NamedTuple):
    """What the index holds about a file, its resumable state aside."""

    size: int
    mtime_ns: int
    offset: int
    parser: int
    with_visible: bool
    summary: bytes | None


class ScanIndex:
    """Stored scan states by absolute path; a thin layer over one ledger connection."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.conn = connect(path)
        migrate(self.conn, MIGRATIONS)

    def load_meta(self) -> dict[str, Stored]:
        """Every stored file but its state (one query: cheaper than looking paths up one by one)."""
        rows = self.conn.execute(
            "SELECT path, size, mtime_ns, offset, parser, with_visible, summary FROM source_files"
        )
        return {p: Stored(size, mtime, off, parser, bool(vis), summ) for p, size, mtime, off, parser, vis, summ in rows}

    def load_states(self, paths: Iterable[str]) -> dict[str, bytes]:
        """``path -> state`` (msgpack ``FileState``) for the paths that have one."""
        wanted = list(dict.fromkeys(paths))
        out: dict[str, bytes] = {}
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            marks = ",".join("?" * len(part))
            for p, state in self.conn.execute(
                f"SELECT path, state FROM source_files WHERE path IN ({marks})", part
            ):
                out[p] = state
        return out

    def save(self, rows: Iterable[tuple[str, int, int, int, int, bool, bytes, bytes]]) -> None:
        """Upsert ``(path, size, mtime_ns, offset, parser, with_visible, state, summary)`` in one transaction."""
        now = time.time()
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.executemany(
                "INSERT OR REPLACE INTO source_files "
                "(path, size, mtime_ns, offset, parser, with_visible, state, summary, scanned_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ((p, s, m, o, v, int(w), b, y, now) for p, s, m, o, v, w, b, y in rows),
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.conn.close()
