"""The last ``report --json`` over an unchanged set of logs, kept in the ledger and served as is.

A report is a pure function of its inputs: the bytes of every log file, the options, the time
zone (days and weeks are local), the price table and tokenomy's own code. The incremental index
already trusts a file's size and mtime to stand for its bytes (``tokenomy.sources._index``); the
memo applies that test, with the ctime and inode too, to the whole tree. When every file, the options and the code are as
they were, the report is the one computed last time, so it is printed without reading a single
log line or importing a decoder. When anything differs (one session grew by one line), the
report is computed again from the index, which reads only the appended bytes, and memoised.

Scripts that poll the JSON (status lines, cron jobs, dashboards) are the ones this is for.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from tokenomy.files import Listing, default_claude_dirs, walk_jsonl
from tokenomy.ledger import Migration, connect, migrate

from .options import REPORT_DEFAULTS

__all__ = ["REPORT_DEFAULTS", "ReportMemo", "memo_key", "report_memo", "tree_fingerprint"]

KEEP = 32  # memoised reports kept (one per set of options and paths); older ones are dropped
_PACKAGE = Path(__file__).resolve().parent.parent


def _m001_report_memo(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE report_memo (
            key BLOB PRIMARY KEY,
            fingerprint BLOB NOT NULL,
            output BLOB NOT NULL,
            saved_at REAL NOT NULL
        )"""
    )


MIGRATIONS: list[Migration] = [("report_001_memo", _m001_report_memo)]


def _code_identity() -> str:
    """Every module and data file of the installed package by name, size and mtime: a new
    version, an edited price table or a patched module all make a new key."""
    parts: list[str] = []
    stack = [str(_PACKAGE)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    if e.name != "__pycache__":
                        stack.append(e.path)
                elif e.name.endswith((".py", ".toml")):
                    st = e.stat()
                    parts.append(f"{e.path}\t{st.st_size}\t{st.st_mtime_ns}")
    parts.sort()
    return "\n".join(parts)


def memo_key(options: Iterable[tuple[str, object]]) -> bytes:
    """The key of one report: its options, the local time zone and the package's code identity."""
    tz = (
        os.environ.get("TZ", ""),
        os.path.realpath("/etc/localtime"),  # the zone's rules, when TZ is unset
        time.timezone,
        time.altzone,
        time.daylight,
        time.tzname,
    )
    text = "\n".join(f"{k}={v!r}" for k, v in sorted(options, key=lambda kv: kv[0]))
    raw = f"{text}\ntz={tz!r}\npython={sys.version}\n{_code_identity()}".encode("utf-8", "surrogateescape")
    return hashlib.blake2b(raw, digest_size=16).digest()


def tree_fingerprint(roots: Sequence[str | Path], listing: Listing | None = None) -> bytes | None:
    """Path, size, mtime, ctime and inode of every ``.jsonl`` under the folders (and of each
    file) given: a file rewritten in place at the same size with its mtime put back (``cp -p``,
    ``rsync -a``) still gets a new ctime.

    ``None`` when a root is missing, is not a folder or a ``.jsonl`` file (a ledger database
    changes under a running gateway without its own mtime moving), or a file vanishes midway:
    then there is nothing to trust and the report is computed. ``listing``, when given, is
    filled with the folders walked and the files stated (see ``tokenomy.files.Listing``).
    """
    h = hashlib.blake2b(digest_size=16)
    stats = listing.stats if listing is not None else {}
    for root in roots:
        path = os.path.abspath(os.path.expanduser(root))
        try:
            if os.path.isdir(path):
                files = walk_jsonl(path)
                if listing is not None:
                    listing.folders[path] = files
            elif path.endswith(".jsonl") and os.path.isfile(path):
                files = [path]
            else:
                return None
            h.update(f"root\t{path}\n".encode("utf-8", "surrogateescape"))
            for f in files:
                st = os.stat(f)
                stats[f] = (st.st_size, st.st_mtime_ns)
                line = f"{f}\t{st.st_size}\t{st.st_mtime_ns}\t{st.st_ctime_ns}\t{st.st_ino}\n"
                h.update(line.encode("utf-8", "surrogateescape"))
        except OSError:
            return None
    return h.digest()


def report_memo(
    paths: Sequence[str],
    *,
    by: str,
    since: object,
    until: object,
    run_id: str | None,
    source: str,
    db: str | None,
) -> ReportMemo | None:
    """The memo entry of ``tokenomy report PATH... --json`` with these options (the Claude Code
    folders of this machine when no PATH is given); ``None`` when there is nothing to trust.

    An entry put aside with ``defer`` is what the next call with the same arguments returns:
    the console script asks the memo before click is imported, and on a miss the command goes on
    with the same entry instead of walking the tree a second time.
    """
    typed = tuple(paths)
    handover = (typed, by, since, until, run_id, source, db)
    pending = _PENDING.pop(handover, None)
    if pending is not None:
        return pending
    roots = list(typed) or [str(d) for d in default_claude_dirs() if d.is_dir()]
    if not roots:
        return None
    options = {
        "typed": typed,  # notes name a folder as it was typed
        "by": by,
        "since": since,
        "until": until,
        "run": run_id,
        "source": source,
    }
    memo = ReportMemo.open(roots, options, db)
    if memo is not None:
        memo.handover = handover
    return memo


_PENDING: dict[tuple[object, ...], ReportMemo] = {}  # entries that missed, for the command to go on with


class ReportMemo:
    """One report's memo entry (its key and the tree's fingerprint) in the ledger. Every failure
    to use it only means the report is computed: ``get`` answers ``None``, ``put`` does nothing."""

    def __init__(self, db: str | Path | None, key: bytes, fingerprint: bytes) -> None:
        # a ledger locked by a busy gateway is waited for briefly: the output is printed already
        self.conn = connect(db, timeout=2.0)
        migrate(self.conn, MIGRATIONS)
        self.key, self.fingerprint = key, fingerprint
        self.handover: tuple[object, ...] | None = None  # report_memo's arguments, when it opened this
        self.listing: Listing | None = None  # the walk the fingerprint was taken from: a miss scans it

    @classmethod
    def open(
        cls, roots: Sequence[str], options: Mapping[str, object], db: str | Path | None
    ) -> ReportMemo | None:
        """The entry of a report over ``roots`` with ``options``; ``None`` when the tree cannot be
        trusted (see ``tree_fingerprint``) or the ledger cannot be opened."""
        listing = Listing()
        fingerprint = tree_fingerprint(roots, listing)
        if fingerprint is None:
            return None
        roots_abs = tuple(os.path.abspath(os.path.expanduser(r)) for r in roots)
        try:
            memo = cls(db, memo_key([*options.items(), ("roots", roots_abs)]), fingerprint)
        except Exception:
            return None
        memo.listing = listing
        return memo

    def get(self) -> str | None:
        try:
            row = self.conn.execute(
                "SELECT output FROM report_memo WHERE key = ? AND fingerprint = ?",
                (self.key, self.fingerprint),
            ).fetchone()
            if row is None:
                return None
            out = row[0]
            return out if isinstance(out, str) else bytes(out).decode("utf-8")
        except Exception:  # a damaged or foreign row
            return None

    def defer(self) -> None:
        """Keep this entry, still open, for the next ``report_memo`` call with its arguments."""
        if self.handover is not None:
            _PENDING[self.handover] = self

    def put(self, output: str) -> None:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except Exception:  # busy or read-only: the next report computes again
            return
        try:
            self.conn.execute(
                "INSERT OR REPLACE INTO report_memo (key, fingerprint, output, saved_at) VALUES (?, ?, ?, ?)",
                (self.key, self.fingerprint, output.encode("utf-8"), time.time()),
            )
            self.conn.execute(
                "DELETE FROM report_memo WHERE key NOT IN "
                "(SELECT key FROM report_memo ORDER BY saved_at DESC LIMIT ?)",
                (KEEP,),
            )
            self.conn.execute("COMMIT")
        except BaseException as e:
            with contextlib.suppress(Exception):
                self.conn.execute("ROLLBACK")
            if not isinstance(e, Exception):  # interrupted: still stop
                raise

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
