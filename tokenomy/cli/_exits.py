"""How a command ends when the user's input is wrong: one line on stderr and an exit status.

``tokenomy.cli.app.main`` and the console script's fast path (``tokenomy.console``) both end
through ``user_exits``, so a mistake reads the same whichever ran it, and never as a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tokenomy.errors import UserError

__all__ = ["user_exits"]


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
