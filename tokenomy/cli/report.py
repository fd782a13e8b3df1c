"""``tokenomy report``: where the tokens went, from the logs already on disk.

The click command: its options, parsed into ``_reporting.Options``; loading, building and
printing the report (rich tables, ``--json`` or one HTML page with ``--html``) are
``tokenomy.cli._reporting``'s, which the console script's fast path runs without click.
Every failure a user can cause ends as one line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from tokenomy.cli._reporting import SOURCES, Options, execute
from tokenomy.report.options import GROUPINGS, REPORT_DEFAULTS

_DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d")


class _DateParam(click.ParamType[dt.date]):
    """A calendar day: ``2025-06-14`` or ``20250614``."""

    name = "DATE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dt.date:
        if isinstance(value, dt.date):
            return value
        for f in _DATE_FORMATS:
            try:
                return dt.datetime.strptime(str(value), f).date()
            except ValueError:
                continue
        self.fail(f"{value!r} is not a date; write it as YYYY-MM-DD, e.g. 2025-06-14", param, ctx)


@click.command("report")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option(
    "--by",
    "by",
    type=click.Choice(GROUPINGS),
    default=REPORT_DEFAULTS["by"],
    show_default=True,
    help="Group rows by this.",
)
@click.option("--since", type=_DateParam(), help="First day to include (YYYY-MM-DD, local time).")
@click.option("--until", type=_DateParam(), help="Last day to include (YYYY-MM-DD, local time).")
@click.option("--run", "run_id", metavar="ID", help="Show one run turn by turn (an id or a unique prefix).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option(
    "--source",
    type=click.Choice(SOURCES),
    default=REPORT_DEFAULTS["source"],
    show_default=True,
    help="Log format of the PATHs (auto detects it).",
)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=str),
    metavar="FILE",
    help="Also write one self-contained HTML page to FILE.",
)
@click.option("--no-index", is_flag=True, help="Read every file in full instead of the incremental index.")
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=str),
    help="The ledger database (default $TOKENOMY_HOME/ledger.db). With no PATH: report the requests "
    "the gateway (tokenomy serve --db) recorded in it; with PATHs: keep the scan index there.",
)
def report(
    paths: tuple[str, ...],
    by: str,
    since: dt.date | None,
    until: dt.date | None,
    run_id: str | None,
    as_json: bool,
    source: str,
    html_file: str | None,
    no_index: bool,
    db: str | None,
) -> None:
    """Where the tokens went: requests, tokens by class, cache-hit rate and cost.

    PATH is a Claude Code projects folder, a session .jsonl, a request log, an OpenHands
    output file or a gateway ledger (default: the Claude Code folders of this machine; with
    --db and no PATH, the gateway's ledger). Figures that a log under-records are marked as
    lower bounds at the end.
    """
    if db is not None and not paths:
        paths = (db,)
    if since and until and since > until:
        raise click.BadParameter(f"--since {since} is after --until {until}", param_hint="--since")
    execute(Options(paths, by, since, until, run_id, as_json, source, html_file, no_index, db))
