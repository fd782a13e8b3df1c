"""A ``tokenomy report`` run, without click: load, build, print, and the memo around them.

The ``report`` command (``tokenomy.cli.report``) parses its options into ``Options`` and calls
``execute``; so does the console script's fast path for a plain ``report --json``
(``tokenomy.console``), which never imports click. While the sources scan on worker processes,
the modules that build and price the report are imported (``_warm``), off the scan's way.
Every failure a user can cause ends as one line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenomy.errors import UserError

if TYPE_CHECKING:
    from tokenomy.files import Listing
    from tokenomy.report.memo import ReportMemo

__all__ = ["SOURCES", "Options", "execute"]

# ``auto`` and ``tokenomy.sources.SOURCES``, spelled out so that a report served from its memo
# never imports the sources (a test holds the two to each other)
SOURCES = ("auto", "claude_code", "request_log", "openhands", "ledger")


def _echo(text: str, *, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on stderr while the sources scan; nothing when stderr is not a terminal."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    # redrawn on each update rather than by rich's refresh thread: with no other thread running,
    # the scan can fork its workers instead of spawning them (an interpreter start each)
    progress = Progress(
        TextColumn("scanning"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        auto_refresh=False,
    )
    task = progress.add_task("scan", total=None)
    last = 0.0

    def update(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        redraw = now - last >= 0.1 or done >= total  # a file at a time would redraw too often
        if redraw:
            last = now
        progress.update(task, completed=done, total=total, refresh=redraw)

    with progress:
        yield update


def _console() -> Any:
    from rich.console import Console

    out = Console(soft_wrap=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(width=140, soft_wrap=False)
    return out


def _load(
    paths: Sequence[str],
    *,
    source: str,
    since: dt.date | None,
    until: dt.date | None,
    db: str | None,
    use_index: bool,
    summed: bool = False,
    listing: Listing | None = None,
) -> Any:
    """``load_runs`` (or, when ``summed``, ``load_summaries``) with every failure as one line."""
    from tokenomy.sources import load_runs, load_summaries

    from ._logs import log_targets, reading_logs

    targets = log_targets(paths, "report")
    with (
        _progress(sys.stderr.isatty()) as bar,
        reading_logs(
            index=db or "$TOKENOMY_HOME/ledger.db",
            index_hint="pass --db with a writable file, or --no-index",
            memory_hint="report a smaller folder or a shorter --since window",
        ),
    ):
        progress = _warming(bar)
        if summed:
            return load_summaries(
                targets, source=source, progress=progress, index_db=db, use_index=use_index, listing=listing
            )
        from tokenomy.report.data import date_bounds

        lo, hi = date_bounds(since, until)
        return load_runs(
            targets,
            source=source,
            since=dt.datetime.fromtimestamp(lo, dt.UTC) if lo is not None else None,
            until=dt.datetime.fromtimestamp(hi, dt.UTC) if hi is not None else None,
            progress=progress,
            index_db=db,
            use_index=use_index,
            with_requests=False,
        )


def _warming(bar: Callable[[int, int], None] | None) -> Callable[[int, int], None]:
    """``bar`` (the progress bar, if any), and ``_warm`` once the first file is read: by then a
    large scan runs on worker processes and the parent only waits for their results."""
    warmed = False

    def tick(done: int, total: int) -> None:
        nonlocal warmed
        if bar is not None:
            bar(done, total)
        if done and not warmed:
            warmed = True
            _warm()

    return tick


def _warm() -> None:
    """Import what builds and prices the report: about 20 ms that would otherwise come before
    the scan could begin, or after it ended."""
    import tokenomy.report.data
    import tokenomy.report.sums  # noqa: F401


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    """A report's options, as the command line gave them."""

    paths: tuple[str, ...]
    by: str
    since: dt.date | None
    until: dt.date | None
    run_id: str | None
    as_json: bool
    source: str
    html_file: str | None
    no_index: bool
    db: str | None


def execute(o: Options) -> None:
    """Print the report ``o`` asks for: from its memo entry when one holds, else computed."""
    import gc

    # a short-lived command that builds many small objects and frees few cycles: the cyclic
    # collector would only rescan them
    gc_was_enabled = gc.isenabled()
    gc.disable()
    memo = _open_memo(o)
    try:
        memoised = memo.get() if memo is not None else None
        if memoised is not None:
            _echo(memoised)
        else:
            _compute(o, memo)
    finally:
        if memo is not None:
            memo.close()
        if gc_was_enabled:
            gc.enable()


def _open_memo(o: Options) -> ReportMemo | None:
    """The memo entry of this report (``tokenomy.report.memo``): JSON reports that use the index
    only; ``None`` when there is nothing to trust."""
    if not o.as_json or o.html_file is not None or o.no_index:
        return None
    from tokenomy.report.memo import report_memo

    return report_memo(
        o.paths, by=o.by, since=o.since, until=o.until, run_id=o.run_id, source=o.source, db=o.db
    )


def _compute(o: Options, memo: ReportMemo | None) -> None:
    import logging

    # unknown models are told once, in the report's notes: not also as log warnings
    logging.getLogger("tokenomy.pricing").addHandler(logging.NullHandler())
    if "tokenomy.pricing" in sys.modules:  # an earlier report in this process (tests) left notes
        sys.modules["tokenomy.pricing"].clear_pricing_notes()
    # a table or JSON only adds up: Claude Code runs come as per-file sums (no turns to build);
    # one run turn by turn, or the page's per-turn charts, need the turns
    summed = o.run_id is None and o.html_file is None
    loaded = _load(
        o.paths,
        source=o.source,
        since=o.since,
        until=o.until,
        db=o.db,
        use_index=not o.no_index,
        summed=summed,
        listing=memo.listing if memo is not None else None,  # the walk the memo's fingerprint made
    )
    from tokenomy import pricing
    from tokenomy.report import data as rd
    from tokenomy.report.sums import can_sum

    if summed and not can_sum(loaded.sums, o.since, o.until):
        summed = False
        loaded = _load(
            o.paths, source=o.source, since=o.since, until=o.until, db=o.db, use_index=not o.no_index
        )
    runs = list(loaded.runs)
    common: dict[str, Any] = {
        "since": o.since,
        "until": o.until,
        "skipped_lines": loaded.skipped_lines,
        "files": loaded.files,
        "notes": loaded.notes,
    }
    detail = None
    if o.run_id is not None:
        run = rd.find_run(runs, o.run_id)
        if run is None:
            needle = o.run_id.lstrip("…")
            n = sum(1 for r in runs if r.run_id.startswith(needle) or r.run_id.endswith(needle))
            what = f"{n} runs match {o.run_id!r}; give more of the id" if n else f"no run {o.run_id!r}"
            raise UserError(f"{what} among the {len(runs):,} runs read; `tokenomy report` lists their ids")
        detail = rd.build_run_detail(run)
    if summed:
        data = rd.build_report(runs, by=o.by, sums=loaded.sums, **common)  # type: ignore[arg-type]
    else:
        data = rd.build_report(runs, by=o.by, sources=loaded.sources, **common)  # type: ignore[arg-type]
    page = None
    if o.html_file is not None:
        page = rd.build_page(runs, run_id=o.run_id, generated_at=time.time(), **common)
    notes = tuple(pricing.pricing_notes())
    data = dataclasses.replace(data, pricing_notes=notes)
    if page is not None:
        _write_html(
            o.html_file,
            dataclasses.replace(page, sessions=dataclasses.replace(page.sessions, pricing_notes=notes)),
            o.run_id,
        )
    if o.as_json:
        out = rd.run_detail_json(detail) if detail is not None else rd.report_json(data)
        if detail is not None:
            out["pricing_notes"] = list(notes)
        text = _dumps(out)
        _echo(text)
        if memo is not None:
            memo.put(text)
    else:
        _print(data, detail)
    if o.html_file is not None:
        _echo(f"wrote {o.html_file}", err=True)


def _dumps(obj: dict[str, Any]) -> str:
    """Indented JSON; msgspec's encoder, since ``json.dumps(indent=...)`` runs in pure Python."""
    import msgspec

    return msgspec.json.format(msgspec.json.encode(obj), indent=2).decode()


def _print(data: Any, detail: Any) -> None:
    from tokenomy.report import terminal

    console = _console()
    if detail is not None:
        console.print(terminal.render_run(detail), crop=False)
        for line in data.pricing_notes:
            console.print(f"Pricing: {line}", style="dim", highlight=False)
    else:
        console.print(terminal.render_report(data), crop=False)


def _write_html(path: str | None, page: Any, run_id: str | None) -> None:
    from tokenomy.report.html import render_html

    assert path is not None
    text = render_html(page, chosen_run=run_id is not None)
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as e:
        raise UserError(
            f"cannot write the HTML report to {path}: {e.strerror or e}; pick a writable FILE"
        ) from e
