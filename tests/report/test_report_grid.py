"""The report's table layout: widths, justification, truncation, headers and sections."""

from __future__ import annotations

import io

from rich.console import Console
from rich.text import Text

from tokenomy.report.grid import Column, Grid


def _lines(grid: Grid, width: int) -> list[str]:
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
