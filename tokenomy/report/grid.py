"""A table drawn as plain lines of rich ``Text``: the report's tables, at any number of rows.

``rich.table.Table`` measures, pads and crops every cell through its renderable protocol, about
0.5 ms per row of a report: 1.3 s for the 2,200 sessions of a 1 GB history, longer than reading
the history from the index. Report cells are short single-line strings, so their widths are
known up front: ``Grid`` lays the columns out once and builds each row as one ``Text`` (about
30x faster), in the look of the tables it replaces (``box.SIMPLE_HEAD``: a bold header, a rule
under it, a blank line between sections, two spaces between columns).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

__all__ = ["Column", "Grid"]

GAP = "  "


@dataclass(frozen=True, slots=True)
class Column:
    """One column: ``header`` may hold a line break; ``flex`` columns take the width left over (and
    give it back first when the table is too wide); ``max_width`` cuts longer cells with "…"."""

    header: str
    justify: Literal["left", "right"] = "left"
    style: str = ""
    max_width: int | None = None
    min_width: int = 1
    flex: bool = False


class Grid:
    """Columns, rows of ``str`` or ``Text`` cells, and sections; rendered to the console's width.

    Print it with ``console.print(grid, crop=False)``: a table still too wide once its flex
    columns have shrunk is then printed whole for the terminal to wrap (rich would crop it).
    """

    def __init__(
        self, columns: Sequence[Column], *, expand: bool = False, header_style: str = "bold"
    ) -> None:
        self.columns = list(columns)
        self.expand = expand
        self.header_style = header_style
        self._rows: list[tuple[list[Text], str | None] | None] = []  # None: a section break

    def add_row(self, *cells: str | Text, style: str | None = None) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"a row of {len(cells)} cells for {len(self.columns)} columns")
        self._rows.append(([_one_line(c) for c in cells], style))

    def add_section(self) -> None:
        self._rows.append(None)

    def widths(self, max_width: int) -> list[int]:
        """Each column's width: its widest cell or header line, capped, and flex columns grown to
        fill ``max_width`` (when expanding) or shrunk to fit it."""
        widths = [max((cell_len(line) for line in c.header.split("\n")), default=0) for c in self.columns]
        for row in self._rows:
            if row is None:
                continue
            for k, cell in enumerate(row[0]):
                n = cell.cell_len
                if n > widths[k]:
                    widths[k] = n
        for k, c in enumerate(self.columns):
            if c.max_width is not None:
                widths[k] = min(widths[k], c.max_width)
            widths[k] = max(widths[k], c.min_width)
        flex = [k for k, c in enumerate(self.columns) if c.flex]
        spare = max_width - (sum(widths) + len(GAP) * (len(widths) - 1))
        if flex and (spare < 0 or self.expand):
            each, extra = divmod(spare, len(flex))
            for i, k in enumerate(flex):
                grown = widths[k] + each + (1 if i < extra else 0)
                widths[k] = max(grown, self.columns[k].min_width)
        return widths

    def _line(
        self, cells: Sequence[Text], widths: Sequence[int], style: str | None, *, header: bool = False
    ) -> Text:
        # the row's style is the base, the column's goes over it and the cell's own over both
        line = Text(style=style or "", no_wrap=True, overflow="ignore", end="")
        last = len(cells) - 1
        for k, (cell, width) in enumerate(zip(cells, widths, strict=True)):
            col = self.columns[k]
            if cell.cell_len > width:
                cell = cell.copy()
                cell.truncate(width, overflow="ellipsis")
            pad = width - cell.cell_len
            if col.justify == "right":
                line.append(" " * pad)
            seg = Text(style="" if header else col.style)  # headers take only the header style
            seg.append_text(cell)
            line.append_text(seg)
            if col.justify != "right" and k != last:
                line.append(" " * pad)
            if k != last:
                line.append(GAP)
        return line

    def lines(self, max_width: int) -> list[Text]:
        widths = self.widths(max_width)
        heads = [c.header.split("\n") for c in self.columns]
        height = max((len(h) for h in heads), default=1)
        out: list[Text] = []
        for i in range(height):  # headers sit on the bottom lines
            cells = [Text(h[i - (height - len(h))] if i >= height - len(h) else "") for h in heads]
            out.append(self._line(cells, widths, self.header_style, header=True))
        out.append(Text("─" * (sum(widths) + len(GAP) * (len(widths) - 1)), end=""))
        for row in self._rows:
            out.append(Text(end="") if row is None else self._line(row[0], widths, row[1]))
        return out

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        # a table still too wide once its flex columns have shrunk is printed whole (the
        # terminal wraps it) rather than cropped: a cropped table hides its last columns
        text = Text("\n").join(self.lines(options.max_width))
        text.no_wrap, text.overflow = True, "ignore"
        yield text


def _one_line(cell: str | Text) -> Text:
    """A cell as one line of one-column characters: a line break in a title would break every
    column after it, a tab would push them right (rich counts it as no width, the terminal as up
    to 8), an escape sequence from a log would reach the terminal. Each becomes one space, so the
    cell's styled spans stay where they were."""
    text = cell if isinstance(cell, Text) else Text(cell)
    plain = text.plain
    if any(ch < " " or ch == "\x7f" for ch in plain):
        clean = "".join(" " if ch < " " or ch == "\x7f" else ch for ch in plain)
        text = Text(clean, style=text.style, spans=text.spans, end="")
    return text
