"""Reading logs for a command: which paths by default, and every failure as one line.

``report``, ``doctor`` and ``simulate`` all read logs through ``tokenomy.sources``; what they
tell a user when there are none, or when reading fails, lives here once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tokenomy.errors import InputError, UserError


def log_targets(paths: Sequence[str | Path], command: str) -> list[str | Path]:
    """``paths``, or the Claude Code folders of this machine when none are given."""
    from tokenomy.files import default_claude_dirs

    targets: list[str | Path] = list(paths)
    if not targets:
        targets = [d for d in default_claude_dirs() if d.is_dir()]
        if not targets:
            raise InputError(
                "no Claude Code history found (looked in $CLAUDE_CONFIG_DIR/projects and ~/.claude/projects); "
                f"pass the logs to read, e.g. `tokenomy {command} ~/logs/requests.jsonl`"
            )
    return targets


@contextmanager
def reading_logs(*, index: str, index_hint: str, memory_hint: str) -> Iterator[None]:
    """Turns what reading logs can raise into one ``InputError`` line: ``index`` names the index
    database, ``index_hint`` and ``memory_hint`` say what to do when it or memory fails."""
    try:
        yield
    except OSError as e:
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        raise InputError(
            f"cannot read the logs{where}: {e.strerror or e}; check the path and its permissions"
        ) from e
    except sqlite3.Error as e:
        raise InputError(f"cannot use the index database {index}: {e}; {index_hint}") from e
    except MemoryError as e:
        raise InputError(f"ran out of memory reading the logs; {memory_hint}") from e
    except UserError:
        raise
    except Exception as e:  # input the sources did not foresee: one line, the traceback under --debug
        raise InputError(
            f"could not read the logs ({type(e).__name__}: {e}); "
            "rerun with --debug for the traceback and report it with the file that caused it"
        ) from e
