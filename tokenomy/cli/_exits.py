"""How a command ends: on the user's mistake one line on stderr and an exit status; after a
read-only command, without the interpreter's teardown.

``tokenomy.cli.app`` and the console script's fast path (``tokenomy.console``) both end through
``user_exits`` and ``leave``, so a mistake reads the same whichever ran it, never as a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tokenomy.errors import UserError

__all__ = ["leave", "user_exits"]


@contextmanager
def user_exits(debug: bool = False) -> Iterator[None]:
    """A ``UserError`` as ``error: ...`` and exit 2 (re-raised with ``debug``); a closed pipe as a
    quiet exit 0; Ctrl-C as ``Interrupted.`` and exit 130."""
    try:
        yield
    except UserError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except BrokenPipeError:
        sys.exit(0)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        sys.exit(130)


def leave() -> None:
    """End a read-only command that has printed its output: flush and exit 0 without the
    interpreter's teardown (about 20 ms of freeing memory and unloading modules, with nothing
    left to write or close). A closed pipe returns instead, for the usual exit to deal with."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        return
    os._exit(0)
