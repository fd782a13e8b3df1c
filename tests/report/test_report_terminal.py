"""The rich renderables, rendered into a 120-column colourless console."""

from __future__ import annotations

import datetime as dt
import io

from rich.console import Console, RenderableType

from tokenomy.model import Run
from tokenomy.report import data as rd
from tokenomy.report.terminal import render_report, render_run

from ._sample import T0, Sample, turn


def _text(renderable: RenderableType) -> str:
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(renderable)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def test_sessions_table(sample: Sample) -> None:
    out = _text(render_report(rd.build_report(sample.runs, tz=dt.UTC), tz=dt.UTC))
    lines = out.splitlines()
    assert all(len(line) <= 120 for line in lines)
    assert "3 runs · 7 requests" in out
    row = next(line for line in lines if line.startswith("aaaa1111"))
    assert "aaaa1111-session Fix" in row and "proj-a" in row and "06-08 10:00" in row
    assert "42,500" in row and "41,000" in row and "1,150" in row and "49%" in row
    sub = next(line for line in lines if "└ agent-bbbb2222" in line)
    assert "3,100" in sub
    total = next(line for line in lines if line.startswith("Total"))
    assert "49,600" in total and "54,000" in total and "1,720" in total
    assert "Cost by token class: uncached input" in out
    assert "Lower bounds: uncached input, output" in out


def test_grouped_by_day_and_model(sample: Sample) -> None:
    by_day = _text(render_report(rd.build_report(sample.runs, by="day", tz=dt.UTC), tz=dt.UTC))
    assert "Day" in by_day and "2025-06-08" in by_day and "2025-06-10" in by_day
    by_model = _text(render_report(rd.build_report(sample.runs, by="model", tz=dt.UTC), tz=dt.UTC))
    assert "claude-sonnet-4-20250514" in by_model and "claude-haiku-4-5-20251001" in by_model


def test_unknown_cost_is_never_zero(sample: Sample) -> None:
    odd = Run(run_id="odd", turns=(turn(T0, model="gpt-4o", i=1000, o=10),))
    out = _text(render_report(rd.build_report([*sample.runs, odd], tz=dt.UTC), tz=dt.UTC))
    row = next(line for line in out.splitlines() if line.startswith("odd"))
    assert "unknown" in row and "$0" not in row
    total = next(line for line in out.splitlines() if line.startswith("Total"))
    assert "≥ $" in total
    assert "Cost unknown for 1 request on gpt-4o" in out


def test_run_turn_by_turn(sample: Sample) -> None:
    out = _text(render_run(rd.build_run_detail(sample.main), tz=dt.UTC))
    lines = out.splitlines()
    assert lines[0].startswith("Run aaaa1111-session · session · /home/u/proj-a · Fix the build")
    third = next(line for line in lines if line.lstrip().startswith("3 "))
    assert "10:10:30" in third and "10m00s*" in third and "21,005" in third and "0%" in third
    assert "* 1 gap over 5 minutes" in out


def test_empty_report() -> None:
    out = _text(render_report(rd.build_report([])))
    assert "0 runs · 0 requests" in out and "nothing priced" in out
