"""The HTML page: self-contained, escaped, and its charts really draw in a browser."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from tokenomy.model import Run
from tokenomy.report import data as rd
from tokenomy.report.html import render_html

from ._sample import T0, Sample, turn

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _page(sample: Sample, **kw: object) -> str:
    return render_html(rd.build_page(sample.runs, tz=dt.UTC, **kw))  # type: ignore[arg-type]


def test_page_is_self_contained(sample: Sample) -> None:
    text = _page(sample)
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "<link" not in text and "@import" not in text
    for heading in ("Where the money went", "One run, turn by turn", "Cache-hit rate across turns"):
        assert heading in text
    assert "Cost by model" in text and "Cost by day" in text


def test_per_turn_bars_for_the_costliest_run(sample: Sample) -> None:
    text = _page(sample)
    assert "aaaa1111-session" in text and "the costliest run" in text
    tokens_chart = text.split('<div class="v-tokens">', 1)[1].split("</div>", 1)[0]
    # four turns: cache read on turns 2 and 4, cache write, input and output on all four
    assert tokens_chart.count('class="bar c-read"') == 2
    assert tokens_chart.count('class="bar c-write"') == 4
    assert tokens_chart.count('class="bar c-output"') == 4
    assert tokens_chart.count("<circle") == 0
    rate_chart = text.split("Cache-hit rate across turns", 1)[1]
    assert rate_chart.count('class="dot miss"') == 2  # turn 1 (cold) and turn 3 (after a 10 minute pause)
    assert rate_chart.count('class="gapmark"') == 1


def test_chosen_run_and_escaping(sample: Sample) -> None:
    evil = Run(run_id="evil", title="<script>alert(1)</script>", turns=(turn(T0, i=5, w=100, o=10),))
    page = rd.build_page([*sample.runs, evil], run_id="evil", tz=dt.UTC)
    text = render_html(page, chosen_run=True)
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "chosen with --run" in text


def test_unknown_prices_say_unknown(sample: Sample) -> None:
    odd = Run(run_id="odd", turns=(turn(T0, model="gpt-4o", i=1000, o=10),))
    text = render_html(rd.build_page([odd], tz=dt.UTC))
    assert '<div class="k">Total cost</div><div class="v">unknown</div>' in text


def test_empty_page_renders() -> None:
    text = render_html(rd.build_page([], tz=dt.UTC))
    assert "No requests." in text and "No runs in this window." in text


def _png_is_not_blank(png: bytes) -> bool:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    return len(set(raw)) > 32


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_charts_render_in_headless_chromium(sample: Sample, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    page = tmp_path / "report.html"
    page.write_text(_page(sample), encoding="utf-8")
    url = page.as_uri()
    base = [CHROMIUM, *_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [*base, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    heights = [float(h) for h in re.findall(r'<rect class="bar [^"]*"[^>]*height="([0-9.]+)"', dom)]
    assert len(heights) >= 10 and all(h > 0 for h in heights)
    assert "<circle" in dom and "<polyline" in dom
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1200,1600", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert _png_is_not_blank(shot.read_bytes())
