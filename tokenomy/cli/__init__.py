"""The ``tokenomy`` command line: one click group (``tokenomy.cli.app``), one module per command.

The package itself does not import click, so the console script's fast path for a plain
``report --json`` (``tokenomy.console``, ``tokenomy.cli._reporting``) runs without it; ``cli``,
``main``, ``run`` and ``COMMANDS`` load the click application on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenomy.cli.app import COMMANDS, cli, main, run

__all__ = ["COMMANDS", "cli", "main", "run"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tokenomy.cli import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
