"""Rich renderables for ``tokenomy report``: one table per view, the notes that qualify it below.

Colour carries no meaning that the text does not also say, so piped and colourless output reads
the same.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.text import Text

from . import fmt
from .data import TOKEN_CLASSES, ReportData, RunDetail, Tally
from .grid import Column, Grid

__all__ = ["render_report", "render_run"]

_CLASS_STYLE = {"input": "magenta", "cache_write": "yellow", "cache_read": "green", "output": "cyan"}


def _class_columns() -> list[Column]:
    """Tokens by class, hit rate and cost: the right-hand columns of every report table."""
    return [
        Column(name, justify="right", style=style)
        for name, style in (
            ("Input", _CLASS_STYLE["input"]),
            ("Cache\nwrite", _CLASS_STYLE["cache_write"]),
            ("Cache\nread", _CLASS_STYLE["cache_read"]),
            ("Output", _CLASS_STYLE["output"]),
            ("Hit", ""),
            ("Cost", "bold"),
        )
    ]


def _class_cells(t: Tally) -> list[str]:
    return [
        fmt.tokens(t.input_tokens),
        fmt.tokens(t.cache_creation_input_tokens),
        fmt.tokens(t.cache_read),
        fmt.tokens(t.output_tokens),
        fmt.pct(t.cache_hit_rate),
        fmt.cost_of(t),
    ]


def _token_columns() -> list[Column]:
    return [Column("Req", justify="right"), *_class_columns()]


def _token_cells(t: Tally) -> list[str]:
    return [fmt.tokens(t.requests), *_class_cells(t)]


def _session_label(data: ReportData, i: int) -> Text:
    row = data.rows[i]
    run = row.run
    if row.depth:
        name = fmt.child_name(row.key, run.parent_id if run is not None else None)
        label = Text("└ ", style="dim")
        label.append(name, style="dim")
        if run is not None and run.kind not in ("session", "subagent"):
            label.append(f" ({run.kind})", style="dim italic")
        return label
    label = Text(fmt.short_id(row.key), style="bold")
    if run is not None and run.title and run.title != run.run_id:
        label.append(" " + run.title)
    return label


def _header(data: ReportData) -> Text:
    t = data.totals
    parts = [f"{data.runs:,} run{'s' if data.runs != 1 else ''}", f"{t.requests:,} requests"]
    if data.files:
        parts.insert(0, f"{data.files:,} file{'s' if data.files != 1 else ''}")
    if t.first_at is not None and t.last_at is not None:
        parts.append(f"{fmt.when(t.first_at)} → {fmt.when(t.last_at)}")
    if data.since or data.until:
        lo = data.since.isoformat() if data.since else "…"
        hi = data.until.isoformat() if data.until else "…"
        parts.append(f"window {lo} .. {hi}")
    head = Text("tokenomy report", style="bold")
    head.append(" · " + " · ".join(parts), style="dim")
    return head


def _class_line(t: Tally) -> Text:
    by_class = t.cost_by_class()
    total = t.cost.total
    line = Text("Cost by token class: ", style="bold")
    if total <= 0:
        line.append("nothing priced")
        return line
    items = [c for c in (*TOKEN_CLASSES, "web_search") if c in by_class]
    for n, c in enumerate(items):
        if n:
            line.append(" · ", style="dim")
        line.append(f"{fmt.CLASS_LABELS[c]} ", style=_CLASS_STYLE.get(c, ""))
        line.append(f"{fmt.usd(by_class[c])} ({by_class[c] / total * 100:.0f}%)")
    return line


def _grouped_by_project(data: ReportData) -> list[list[int]]:
    """Row indices per project, projects in order of first appearance (children stay with parents)."""
    order: dict[str | None, list[int]] = {}
    current: str | None = None
    for i, row in enumerate(data.rows):
        if not row.depth:
            current = row.run.project if row.run is not None else None
        order.setdefault(current, []).append(i)
    return list(order.values())


class _FitWidth:
    """Builds its renderable for the width it is given, so narrow terminals drop columns, not digits."""

    def __init__(self, build: Callable[[int], RenderableType]) -> None:
        self.build = build

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.build(options.max_width)


# Below these widths the report drops, in order: the cost-share column, the project, the model.
WIDE_SHARE = 110
WIDE_PROJECT = 100
WIDE_MODEL = 90


def render_report(data: ReportData, *, tz: dt.tzinfo | None = None) -> RenderableType:
    """The grouped table, its totals row, cost by token class, and the notes on exactness."""
    return _FitWidth(lambda width: _report(data, tz, width))


def _report(data: ReportData, tz: dt.tzinfo | None, width: int) -> RenderableType:
    sessions = data.by == "session"
    groups = _grouped_by_project(data) if sessions else [list(range(len(data.rows)))]
    show_projects = sessions and len(groups) > 1 and width >= WIDE_PROJECT
    show_model = data.by != "model" and width >= WIDE_MODEL
    show_share = width >= WIDE_SHARE
    columns: list[Column] = []
    if sessions:
        columns.append(Column("Session", flex=True, min_width=12))
        if show_projects:
            columns.append(Column("Project", max_width=16))
        columns.append(Column("Started"))
    else:
        columns.append(Column(fmt.GROUP_LABELS[data.by], max_width=40))
    if show_model:
        columns.append(Column("Model", max_width=16))
    columns.extend(_token_columns())
    if show_share:
        columns.append(Column("Cost share\nin·wr·rd·out %", justify="right", style="dim"))
    table = Grid(columns, expand=sessions)
    n_lead = 1 + sessions + show_projects + show_model
    for indices in groups:
        for i in indices:
            row = data.rows[i]
            cells: list[str | Text] = [_session_label(data, i) if sessions else Text(row.key)]
            if show_projects:
                cells.append(fmt.project_name(row.run.project if row.run is not None else None))
            if sessions:
                cells.append(fmt.when(row.tally.first_at, tz, short=True))
            if show_model:
                cells.append(fmt.models_label(row.tally.models))
            cells.extend(_token_cells(row.tally))
            if show_share:
                cells.append(fmt.shares(row.tally))
            table.add_row(*cells, style="dim" if row.depth else None)
    table.add_section()
    total_cells: list[str | Text] = [Text("Total", style="bold")]
    total_cells.extend([""] * (n_lead - 1))
    total_cells.extend(_token_cells(data.totals))
    if show_share:
        total_cells.append(fmt.shares(data.totals))
    table.add_row(*total_cells, style="bold")
    parts: list[RenderableType] = [_header(data), Text(), table, Text(), _class_line(data.totals)]
    parts.extend(Text(line, style="dim") for line in fmt.footer_lines(data))
    return Group(*parts)


def render_run(detail: RunDetail, *, tz: dt.tzinfo | None = None) -> RenderableType:
    """One run turn by turn: prompt size, cache read/write, output, cost and idle gap per request."""
    run = detail.run
    head = Text(f"Run {run.run_id}", style="bold")
    meta: list[str] = [run.kind]
    if run.parent_id:
        meta.append(f"parent {run.parent_id}")
    if run.project:
        meta.append(run.project)
    if run.title and run.title != run.run_id:
        meta.append(run.title)
    head.append(" · " + " · ".join(meta), style="dim")
    table = Grid(
        [
            Column("#", justify="right"),
            Column("Time"),
            Column("Gap", justify="right"),
            Column("Model", max_width=16),
            Column("Prompt", justify="right"),
            *_class_columns(),
        ]
    )
    long_gaps = 0
    for tf in detail.turns:
        g = fmt.gap(tf.gap_s)
        if tf.gap_s is not None and tf.gap_s > fmt.TTL_5M_S:
            g += "*"
            long_gaps += 1
        one = Tally()
        one.add(tf)
        table.add_row(
            str(tf.index) + ("~" if tf.estimated else ""),
            fmt.when(tf.started_at, tz, seconds=True)[11:] if tf.started_at is not None else "",
            g,
            fmt.short_model(tf.model),
            fmt.tokens(tf.prompt_tokens),
            *_class_cells(one),
        )
    t = detail.totals
    table.add_section()
    table.add_row(
        "",
        "Total",
        "",
        fmt.models_label(t.models),
        fmt.tokens(t.prompt_tokens),
        *_class_cells(t),
        style="bold",
    )
    first = fmt.when(t.first_at, tz)
    parts: list[RenderableType] = [head]
    if first:
        parts.append(Text(f"started {first}", style="dim"))
    parts.extend([Text(), table, Text(), _class_line(t)])
    notes = fmt.quality_lines(detail.quality, t.estimated_requests) + fmt.cost_lines(t)
    if long_gaps:
        notes.append(
            f"* {long_gaps} gap{'s' if long_gaps != 1 else ''} over 5 minutes: "
            "a 5-minute cache entry expires in that time."
        )
    if t.estimated_requests:
        notes.append("~ usage estimated from the request (none recorded).")
    parts.extend(Text(line, style="dim") for line in notes)
    return Group(*parts)
