"""Where the logs are and which ``.jsonl`` files a folder holds: plain ``os`` calls, no decoders.

Kept apart from ``tokenomy.sources`` (which decodes the files) so that a report served from its
memo (``tokenomy.report.memo``) can walk and stat the tree without importing any of them.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["Listing", "default_claude_dirs", "walk_jsonl"]


class Listing:
    """What one walk of a tree found: each folder's ``.jsonl`` files (as ``walk_jsonl`` lists
    them, by the folder's absolute path) and each file's ``(size, mtime_ns)``. The report memo
    walks and stats the tree to fingerprint it; on a miss the scan goes on from this listing
    instead of walking and stating it again. (A plain class: ``dataclasses`` costs a memoised
    report a tenth of its time to import.)"""

    __slots__ = ("folders", "stats")

    def __init__(self) -> None:
        self.folders: dict[str, list[str]] = {}
        self.stats: dict[str, tuple[int, int]] = {}


def default_claude_dirs() -> list[Path]:
    """Where Claude Code keeps transcripts: ``$CLAUDE_CONFIG_DIR/projects`` (comma-separated
    directories allowed), else ``~/.claude/projects``."""
    env = os.environ.get("CLAUDE_CONFIG_DIR", "").strip()
    if env:
        return [Path(p.strip()).expanduser() / "projects" for p in env.split(",") if p.strip()]
    return [Path.home() / ".claude" / "projects"]


def walk_jsonl(root: str | Path) -> list[str]:
    """Every ``*.jsonl`` under ``root`` (sub-agent folders included) as sorted absolute path
    strings; symlinked folders are not followed (no loops) and unreadable ones are passed over.
    Strings, not ``Path``s: a ``Path`` per file costs more than the walk."""
    out: list[str] = []
    stack = [os.path.abspath(root)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for e in entries:
                try:
                    is_dir = e.is_dir()
                except OSError:
                    is_dir = False
                if is_dir:
                    if not e.is_symlink():
                        stack.append(e.path)
                elif e.name.endswith(".jsonl"):
                    out.append(e.path)
    out.sort()
    return out
