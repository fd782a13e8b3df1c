"""The report's table layout: widths, justification, truncation, headers and sections."""

from __future__ import annotations

import datetime as dt
import io

from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.text import Text

from tokenomy.model import Run, Turn, Usage
from tokenomy.report import data as rd
from tokenomy.report.grid import Column, Grid
from tokenomy.report.terminal import render_report


def _lines(grid: RenderableType, width: int) -> list[str]:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(grid, crop=False)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out.splitlines()


def test_columns_take_their_widest_cell_and_justify() -> None:
    g = Grid([Column("Name"), Column("Tokens", justify="right")])
    g.add_row("a", "1,234,567")
    g.add_row("longer name", "9")
    lines = _lines(g, 80)
    assert lines[0] == "Name            Tokens"
    assert set(lines[1]) == {"─"} and len(lines[1]) == len("longer name") + 2 + len("1,234,567")
    assert lines[2] == "a            1,234,567"
    assert lines[3] == "longer name          9"


def test_two_line_headers_sit_on_the_bottom_and_sections_are_blank_lines() -> None:
    g = Grid([Column("Run"), Column("Cache\nread", justify="right")])
    g.add_row("r1", "10")
    g.add_section()
    g.add_row(Text("Total", style="bold"), "10", style="bold")
    lines = _lines(g, 80)
    assert lines[0] == "       Cache"
    assert lines[1] == "Run     read"
    assert lines[3] == "r1        10"
    assert lines[4] == ""
    assert lines[5] == "Total     10"


def test_max_width_cuts_with_an_ellipsis_and_flex_fills_or_shrinks() -> None:
    g = Grid([Column("Session", flex=True, min_width=6), Column("Model", max_width=6)], expand=True)
    g.add_row("a-very-long-session-name", "claude-sonnet-4-5")
    wide = _lines(g, 40)
    assert all(len(line) == 40 for line in wide[1:3])
    assert wide[2].startswith("a-very-long-session-name") and wide[2].endswith("claud…")
    narrow = _lines(g, 16)
    assert narrow[2] == "a-very-…  claud…"


def test_a_table_too_wide_is_printed_whole_not_cropped() -> None:
    g = Grid([Column("A", min_width=10), Column("B", justify="right")])
    g.add_row("x" * 10, "$123.45")
    lines = _lines(g, 12)
    assert "$123.45" in "".join(lines)


def test_a_line_break_in_a_cell_stays_on_its_row() -> None:
    g = Grid([Column("Title"), Column("Cost", justify="right")])
    g.add_row("fix the\nparser", "$1.00")
    g.add_row(Text("two\nlines", style="bold"), "$2.00")
    lines = _lines(g, 80)
    assert len(lines) == 4
    assert lines[2] == "fix the parser  $1.00"
    assert lines[3].startswith("two lines")


T0 = dt.datetime(2025, 6, 8, 10, 0, tzinfo=dt.UTC).timestamp()


def test_a_tab_in_a_cell_keeps_the_row_aligned() -> None:
    g = Grid([Column("Title"), Column("Cost", justify="right")])
    g.add_row("fix\tparser", "$1.00")
    g.add_row(Text("plain title"), "$2.00")
    lines = _lines(g, 80)
    assert cell_len(lines[2]) == cell_len(lines[3]) == cell_len(lines[1])
    assert lines[2].endswith("$1.00") and lines[3].endswith("$2.00")


def test_a_session_title_with_a_tab_keeps_the_report_columns_aligned() -> None:
    def run(run_id: str, title: str) -> Run:
        usage = Usage(input_tokens=100, cache_write_5m=2_000, cache_read=5_000, output_tokens=50)
        turn = Turn(model="claude-sonnet-4-20250514", usage=usage, started_at=T0)
        return Run(run_id=run_id, project="/home/u/proj", title=title, turns=(turn,))

    runs = [run("aaaa1111-session", "col1\tcol2"), run("bbbb2222-session", "plain")]
    lines = _lines(render_report(rd.build_report(runs, tz=dt.UTC), tz=dt.UTC), 120)
    rows = [line for line in lines if line.startswith(("aaaa1111", "bbbb2222"))]
    assert len(rows) == 2
    assert len({cell_len(row) for row in rows}) == 1, rows
    assert rows[0].index("06-08 10:00") == rows[1].index("06-08 10:00"), rows


def test_headers_take_only_the_header_style() -> None:
    g = Grid([Column("Input", justify="right", style="magenta")])
    g.add_row("12")
    console = Console(file=io.StringIO(), width=40, color_system="standard", force_terminal=True)
    console.print(g, crop=False)
    header, _rule, row = console.file.getvalue().splitlines()[:3]  # type: ignore[attr-defined]
    assert "35" not in header and "\x1b[1m" in header  # bold, not magenta
    assert "\x1b[35m" in row
