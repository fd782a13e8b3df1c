"""The local SQLite ledger: one database file (WAL) that every stateful part of tokenomy shares.

Each subsystem keeps its own tables and declares them as an ordered list of named migrations
(the ``llm`` style): ``migrate(conn, MIGRATIONS)`` applies the ones not yet recorded in
``_tokenomy_migrations``. Nothing here knows any subsystem's schema.

The ledger stores tokens, never dollars: cost is derived at read time from the price data, so a
corrected price re-prices history.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

Migration = tuple[str, Callable[[sqlite3.Connection], None]]

__all__ = ["Migration", "connect", "default_db_path", "default_home", "migrate"]


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    """Where tokenomy keeps its state: ``$TOKENOMY_HOME``, else ``~/.tokenomy``."""
    env = os.environ if environ is None else environ
    home = env.get("TOKENOMY_HOME")
    return Path(home).expanduser() if home else Path.home() / ".tokenomy"


def default_db_path(environ: Mapping[str, str] | None = None) -> Path:
    return default_home(environ) / "ledger.db"


def connect(path: str | Path | None = None, *, timeout: float = 30.0) -> sqlite3.Connection:
    """Open (creating if needed) the ledger in WAL mode; autocommit, transactions explicit."""
    p = Path(path) if path is not None else default_db_path()
    if str(p) != ":memory:":
        p.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(p), timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _tokenomy_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    return conn


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> list[str]:
    """Apply, in order, the named migrations not applied yet; each in its own transaction."""
    done = {row[0] for row in conn.execute("SELECT name FROM _tokenomy_migrations")}
    applied: list[str] = []
    for name, fn in migrations:
        if name in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("SELECT 1 FROM _tokenomy_migrations WHERE name = ?", (name,)).fetchone():
                conn.execute("ROLLBACK")
                continue
            fn(conn)
            conn.execute(
                "INSERT INTO _tokenomy_migrations (name, applied_at) VALUES (?, ?)", (name, time.time())
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied
