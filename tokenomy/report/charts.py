"""Inline SVG charts for the HTML report: stacked bars, a rate line, stacked horizontal bars.

Plain strings, no dependencies: the page must open from disk with no network. Every bar is a
``<rect class="bar …">`` with a ``<title>`` tooltip, so a browser (or a test reading the DOM)
sees exactly what was drawn.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import fmt

__all__ = ["Series", "hbars", "line", "stacked_bars"]

W = 1000.0  # viewBox width; the SVG scales to its container
LEFT = 56.0
RIGHT = 12.0
TOP = 12.0
BOTTOM = 26.0


@dataclass(frozen=True, slots=True)
class Series:
    """One stacked segment kind: its CSS class, legend label and a value per item."""

    css: str
    label: str
    values: Sequence[float]


def _esc(s: str) -> str:
    return html.escape(s, quote=True)


def _nice_max(v: float) -> float:
    """A round axis maximum at or above ``v`` (1, 2, 2.5 or 5 times a power of ten)."""
    if v <= 0:
        return 1.0
    p = 10.0 ** math.floor(math.log10(v))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if v <= m * p:
            return m * p
    return 10.0 * p


def _axis(height: float, vmax: float, label: Callable[[float], str], width: float = W) -> list[str]:
    out: list[str] = []
    plot_h = height - TOP - BOTTOM
    for k in range(5):
        v = vmax * k / 4
        y = TOP + plot_h - plot_h * k / 4
        out.append(f'<line class="grid" x1="{LEFT}" x2="{width - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_esc(label(v))}</text>'
        )
    return out


def _x_labels(labels: Sequence[str], x_of: Callable[[int], float], max_labels: int = 12) -> list[str]:
    n = len(labels)
    if n == 0:
        return []
    step = max(1, -(-n // max_labels))
    return [
        f'<text class="tick" x="{x_of(i):.1f}" y="0" dy="-6" text-anchor="middle">{_esc(labels[i])}</text>'
        for i in range(0, n, step)
    ]


def stacked_bars(
    series: Sequence[Series],
    labels: Sequence[str],
    *,
    height: float = 280.0,
    value_label: Callable[[float], str] = fmt.compact,
    tooltips: Sequence[str] | None = None,
    width: float = W,
    max_labels: int = 12,
) -> str:
    """Vertical bars, one per label, each stacked bottom-up in ``series`` order."""
    n = len(labels)
    totals = [sum(s.values[i] for s in series) for i in range(n)]
    vmax = _nice_max(max(totals, default=0.0))
    plot_w = width - LEFT - RIGHT
    plot_h = height - TOP - BOTTOM
    slot = plot_w / max(n, 1)
    bw = max(slot * 0.78, min(slot, 1.0))
    parts = [
        f'<svg class="chart" viewBox="0 0 {width:.0f} {height:.0f}" role="img">',
        *_axis(height, vmax, value_label, width),
    ]
    for i in range(n):
        x = LEFT + i * slot + (slot - bw) / 2
        y = TOP + plot_h
        tip = tooltips[i] if tooltips else labels[i]
        parts.append(f"<g><title>{_esc(tip)}</title>")
        for s in series:
            v = s.values[i]
            if v <= 0:
                continue
            h = plot_h * v / vmax
            y -= h
            parts.append(
                f'<rect class="bar {s.css}" x="{x:.2f}" y="{y:.2f}" width="{bw:.2f}" height="{h:.2f}" '
                f'data-value="{v:g}"/>'
            )
        parts.append("</g>")
    parts.append(f'<g transform="translate(0 {height:.0f})">')
    parts.extend(_x_labels(labels, lambda i: LEFT + (i + 0.5) * slot, max_labels))
    parts.append("</g></svg>")
    return "".join(parts)


def line(
    values: Sequence[float | None],
    labels: Sequence[str],
    *,
    height: float = 200.0,
    marks: Sequence[int] = (),
    low: float = 0.5,
    tooltips: Sequence[str] | None = None,
) -> str:
    """A 0–100% line with a dot per point; dots under ``low`` are drawn as misses.

    ``marks`` are indices drawn as dashed verticals (idle gaps long enough for the cache to expire).
    """
    n = len(values)
    plot_w = W - LEFT - RIGHT
    plot_h = height - TOP - BOTTOM
    slot = plot_w / max(n, 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return LEFT + (i + 0.5) * slot, TOP + plot_h * (1 - v)

    parts = [
        f'<svg class="chart" viewBox="0 0 {W:.0f} {height:.0f}" role="img">',
        *_axis(height, 1.0, lambda v: f"{v * 100:.0f}%"),
    ]
    for i in marks:
        x = LEFT + (i + 0.5) * slot - slot / 2
        parts.append(f'<line class="gapmark" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + plot_h:.1f}"/>')
    points = [(i, v) for i, v in enumerate(values) if v is not None]
    segs: list[list[str]] = [[]]
    prev = -2
    for i, v in points:
        if i != prev + 1 and segs[-1]:
            segs.append([])
        x, y = xy(i, v)
        segs[-1].append(f"{x:.1f},{y:.1f}")
        prev = i
    for seg in segs:
        if len(seg) > 1:
            parts.append(f'<polyline class="rate" points="{" ".join(seg)}"/>')
    r = 3.2 if n <= 120 else 2.0
    for i, v in points:
        x, y = xy(i, v)
        cls = "dot miss" if v < low else "dot"
        tip = tooltips[i] if tooltips else f"{labels[i]}: {v * 100:.0f}%"
        parts.append(
            f'<circle class="{cls}" cx="{x:.1f}" cy="{y:.1f}" r="{r}"><title>{_esc(tip)}</title></circle>'
        )
    parts.append(f'<g transform="translate(0 {height:.0f})">')
    parts.extend(_x_labels(labels, lambda i: LEFT + (i + 0.5) * slot))
    parts.append("</g></svg>")
    return "".join(parts)


def hbars(
    series: Sequence[Series],
    labels: Sequence[str],
    *,
    right_labels: Sequence[str],
    row_h: float = 30.0,
    label_w: float = 110.0,
    value_w: float = 170.0,
    width: float = 520.0,
) -> str:
    """Horizontal bars, one row per label, stacked left to right in ``series`` order."""
    n = len(labels)
    totals = [sum(s.values[i] for s in series) for i in range(n)]
    vmax = max(totals, default=0.0) or 1.0
    height = row_h * n + 8
    plot_w = width - label_w - value_w
    parts = [f'<svg class="chart hchart" viewBox="0 0 {width:.0f} {height:.0f}" role="img">']
    for i in range(n):
        y = 4 + i * row_h
        parts.append(
            f'<text class="rowlabel" x="{label_w - 10}" y="{y + row_h * 0.62:.1f}" text-anchor="end">'
            f"{_esc(labels[i])}</text>"
        )
        x = label_w
        for s in series:
            v = s.values[i]
            if v <= 0:
                continue
            w = plot_w * v / vmax
            parts.append(
                f'<rect class="bar {s.css}" x="{x:.2f}" y="{y + 4:.1f}" width="{w:.2f}" height="{row_h - 10:.1f}" '
                f'data-value="{v:g}"><title>{_esc(labels[i])} · {_esc(s.label)}: {_esc(fmt.usd(v))}</title></rect>'
            )
            x += w
        parts.append(
            f'<text class="rowvalue" x="{x + 8:.1f}" y="{y + row_h * 0.62:.1f}">{_esc(right_labels[i])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
