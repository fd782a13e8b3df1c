"""The incremental scan index, kept in the local SQLite ledger.

One row per transcript file: its size, mtime, the byte offset scanned so far, a hash of its head,
and the per-response aggregates found so far (a msgpack ``FileState``). On a re-run an unchanged
file is not opened, a grown one is read from the stored offset only, and one that shrank or whose
head changed is read again from the start.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

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


MIGRATIONS: list[Migration] = [("sources_001_source_files", _m001_source_files)]


class ScanIndex:
    """Stored scan states by absolute path; a thin layer over one ledger connection."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.conn = connect(path)
        migrate(self.conn, MIGRATIONS)

    def load(self, paths: Iterable[str]) -> dict[str, tuple[int, int, int, bytes]]:
        """``path -> (size, mtime_ns, parser, state)`` for the paths that have a stored state."""
        wanted = set(paths)
        out: dict[str, tuple[int, int, int, bytes]] = {}
        if not wanted:
            return out
        if len(wanted) > 500:
            rows = self.conn.execute("SELECT path, size, mtime_ns, parser, state FROM source_files")
            for p, size, mtime, parser, state in rows:
                if p in wanted:
                    out[p] = (size, mtime, parser, state)
            return out
        for p in wanted:
            row = self.conn.execute(
                "SELECT size, mtime_ns, parser, state FROM source_files WHERE path = ?", (p,)
            ).fetchone()
            if row is not None:
                out[p] = (row[0], row[1], row[2], row[3])
        return out

    def save(self, rows: Iterable[tuple[str, int, int, int, int, bool, bytes]]) -> None:
        """Upsert ``(path, size, mtime_ns, offset, parser, with_visible, state)`` in one transaction."""
        now = time.time()
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.executemany(
                "INSERT OR REPLACE INTO source_files "
                "(path, size, mtime_ns, offset, parser, with_visible, state, scanned_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                ((p, s, m, o, v, int(w), b, now) for p, s, m, o, v, w, b in rows),
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.conn.close()
