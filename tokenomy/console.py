"""The ``tokenomy`` console script: a plain ``report --json`` answered before click loads.

A second ``tokenomy report --json`` over an unchanged tree is one walk of the tree and one
SQLite lookup (``tokenomy.report.memo``); importing click and the command line costs about as
much again. So ``run`` first reads argv itself when it has the plain shape scripts use,
``tokenomy report [PATH ...] --json [--by V] [--source V] [--db FILE]``, and prints the memoised
output when there is one. On a miss it hands its memo entry over (the tree is not walked twice)
and, without ``--db``, computes the report without click too (``tokenomy.cli._reporting``, as
the command does). Anything else goes to ``tokenomy.cli.run`` unchanged.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TypedDict

__all__ = ["ReportArgs", "quick_report_args", "run"]

_VALUED = ("--by", "--source", "--db")


class ReportArgs(TypedDict):
    """``tokenomy.report.memo.report_memo``'s arguments."""

    paths: tuple[str, ...]
    by: str
    since: None
    until: None
    run_id: None
    source: str
    db: str | None


def quick_report_args(argv: Sequence[str]) -> ReportArgs | None:
    """``report_memo``'s arguments when ``argv`` (without the program name) is a plain memoisable
    ``report --json``; ``None`` for anything else, which click then parses (and checks) itself."""
    from tokenomy.report.options import REPORT_DEFAULTS

    if not argv or argv[0] != "report":
        return None
    paths: list[str] = []
    values: dict[str, str] = {}
    as_json = False
    args = iter(argv[1:])
    for arg in args:
        if arg == "--json" and not as_json:
            as_json = True
            continue
        if not arg.startswith("-"):
            paths.append(arg)
            continue
        name, eq, value = arg.partition("=")
        if name not in _VALUED or name in values:
            return None  # another option, a repeat or "--": click's business
        if not eq:
            nxt = next(args, None)
            if nxt is None or nxt.startswith("-"):
                return None
            value = nxt
        if not value:
            return None
        values[name] = value
    if not as_json:
        return None
    by = values.get("--by", REPORT_DEFAULTS["by"])
    source = values.get("--source", REPORT_DEFAULTS["source"])
    db = values.get("--db")
    if db is not None and not paths:
        return None  # a gateway ledger: never memoised (it changes without its mtime moving)
    return ReportArgs(paths=tuple(paths), by=by, since=None, until=None, run_id=None, source=source, db=db)


def _memoised(kwargs: ReportArgs) -> str | None:
    """The memoised output of this report, or ``None`` (the entry, if any, deferred)."""
    from tokenomy.report.memo import report_memo

    memo = report_memo(**kwargs)
    if memo is None:
        return None
    out = memo.get()
    if out is None:
        memo.defer()
        return None
    memo.close()
    return out


def _direct(kwargs: ReportArgs) -> bool:
    """Run the report without click when the command line needs no more checking than its two
    choices (``--db`` is left to click, which checks it is not a folder); whether it ran."""
    from tokenomy.cli._reporting import SOURCES, Options, execute
    from tokenomy.report.options import GROUPINGS

    if kwargs["db"] is not None or kwargs["by"] not in GROUPINGS or kwargs["source"] not in SOURCES:
        return False
    from tokenomy.cli._exits import user_exits

    with user_exits():
        o = Options(
            paths=kwargs["paths"],
            by=kwargs["by"],
            since=None,
            until=None,
            run_id=None,
            as_json=True,
            source=kwargs["source"],
            html_file=None,
            no_index=False,
            db=None,
        )
        execute(o)
    return True


def run() -> None:
    """Print a memoised report and leave; else run a plain ``report --json`` without click, or
    anything else through the command line."""
    try:
        kwargs = quick_report_args(sys.argv[1:])
        out = _memoised(kwargs) if kwargs is not None else None
    except Exception:  # the quick path only ever saves time; click reports every real error
        kwargs, out = None, None
    if out is not None:
        try:
            sys.stdout.write(out + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            pass
        except OSError as e:
            sys.stderr.write(f"error: cannot write the report: {e.strerror or e}\n")
            os._exit(1)
        os._exit(0)  # a read-only command: nothing left to tear down (see tokenomy.cli.app.run)
    if kwargs is not None and _direct(kwargs):
        from tokenomy.cli._exits import leave

        leave()
        return
    from tokenomy.cli import run as cli_run

    cli_run()
