"""The incremental scan index, kept in the local SQLite ledger.

Two rows per transcript file, both with its size, mtime and the byte offset scanned so far: in
``source_files`` the per-response aggregates found so far (a msgpack ``FileState``, enough to
resume), in ``source_sums`` its sums (a msgpack ``FileSummary``, what a report adds up). On a re-run an unchanged file is not opened and its state
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


def _m002_file_sums(conn: sqlite3.Connection) -> None:
    # a table of its own, read whole on every run: reading columns stored after a large state
    # blob would walk the blob's pages
    conn.execute(
        """CREATE TABLE source_sums (
            path TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            offset INTEGER NOT NULL,
            parser INTEGER NOT NULL,
            with_visible INTEGER NOT NULL,
            summary BLOB NOT NULL
        )"""
    )


def _m003_shared(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE source_shared (id INTEGER PRIMARY KEY CHECK (id = 1), signature BLOB NOT NULL, "
        "paths TEXT NOT NULL)"
    )


MIGRATIONS: list[Migration] = [
    ("sources_001_source_files", _m001_source_files),
    ("sources_002_file_sums", _m002_file_sums),
    ("sources_003_shared", _m003_shared),
]


class Stored(NamedTuple):
    """What the index holds about a file, its resumable state aside."""

    size: int
    mtime_ns: int
    offset: int
    parser: int
    with_visible: int  # 0 or 1
    summary: bytes | None


class ScanIndex:
    """Stored scan states by absolute path; a thin layer over one ledger connection."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.conn = connect(path)
        migrate(self.conn, MIGRATIONS)

    def load_meta(self) -> dict[str, Stored]:
        """Every stored file but its state (one query: cheaper than looking paths up one by one)."""
        rows = self.conn.execute(
            "SELECT path, size, mtime_ns, offset, parser, with_visible, summary FROM source_sums"
        )
        make = Stored._make
        return {row[0]: make(row[1:]) for row in rows}

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
        rows = list(rows)
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.executemany(
                "INSERT OR REPLACE INTO source_files "
                "(path, size, mtime_ns, offset, parser, with_visible, state, scanned_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                ((p, s, m, o, v, int(w), b, now) for p, s, m, o, v, w, b, _ in rows),
            )
            self.conn.executemany(
                "INSERT OR REPLACE INTO source_sums (path, size, mtime_ns, offset, parser, with_visible, summary) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                ((p, s, m, o, v, int(w), y) for p, s, m, o, v, w, _, y in rows),
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def shared(self, signature: bytes) -> set[str] | None:
        """The files found sharing responses when the scanned files last had ``signature``."""
        row = self.conn.execute("SELECT signature, paths FROM source_shared WHERE id = 1").fetchone()
        if row is None or row[0] != signature:
            return None
        return set(row[1].split("\n")) - {""}

    def save_shared(self, signature: bytes, paths: set[str]) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO source_shared (id, signature, paths) VALUES (1, ?, ?)",
            (signature, "\n".join(sorted(paths))),
        )

    def close(self) -> None:
        self.conn.close()
