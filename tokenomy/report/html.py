"""``tokenomy report --html``: one self-contained page (inline CSS, JS and SVG; nothing fetched).

The page leads with the answer (what it cost and where the money went), then one run turn by
turn, then cost by model and by day, then the table of runs, then the notes that qualify it all.
"""

from __future__ import annotations

import datetime as dt
import html
import importlib.resources
from collections.abc import Sequence
from string import Template

from . import charts, fmt
from .charts import Series
from .data import PageData, ReportData, RunDetail, Tally

__all__ = ["render_html"]

MAX_TABLE_ROWS = 200  # the runs table lists the costliest ones when there are more
FILL_DAYS = 62  # cost by day shows idle days too when the span is shorter than this
_CLASSES = (  # token class → CSS class, legend label
    ("input", "c-input", "uncached input"),
    ("cache_write", "c-write", "cache write"),
    ("cache_read", "c-read", "cache read"),
    ("output", "c-output", "output"),
)


def _e(s: object) -> str:
    return html.escape(str(s), quote=True)


def _legend(items: Sequence[tuple[str, str]]) -> str:
    return (
        '<div class="legend">'
        + "".join(f'<span><i class="{c}"></i>{_e(lbl)}</span>' for c, lbl in items)
        + "</div>"
    )


def _card(key: str, value: str, sub: str = "") -> str:
    return (
        f'<div class="card"><div class="k">{_e(key)}</div><div class="v">{_e(value)}</div>'
        f'<div class="s">{_e(sub)}</div></div>'
    )


def _cards(data: ReportData) -> str:
    t = data.totals
    days = ""
    if t.first_at is not None and t.last_at is not None:
        days = f"{fmt.when(t.first_at)[:10]} → {fmt.when(t.last_at)[:10]}"
    return "".join(
        [
            _card("Total cost", fmt.cost_of(t), days),
            _card("Requests", fmt.tokens(t.requests), f"{data.runs:,} runs"),
            _card("Cache-hit rate", fmt.pct(t.cache_hit_rate, 1), "cache read / prompt tokens"),
            _card(
                "Prompt tokens", fmt.compact(t.prompt_tokens), f"{fmt.compact(t.cache_read)} read from cache"
            ),
            _card(
                "Output tokens", fmt.compact(t.output_tokens), f"{fmt.compact(t.input_tokens)} uncached input"
            ),
        ]
    )


def _split(t: Tally) -> str:
    by_class = t.cost_by_class()
    total = t.cost.total
    if total <= 0:
        return '<p class="empty">No priced cost to split.</p>'
    bar = []
    legend = []
    items = [*_CLASSES, ("web_search", "c-web", "web search")]
    for key, css, label in items:
        v = by_class.get(key, 0.0)
        if key == "web_search" and not v:
            continue
        share = v / total
        bar.append(f'<span class="{css}" style="width:{share * 100:.3f}%" title="{_e(label)}"></span>')
        legend.append((css, f"{label} {fmt.usd(v)} · {share * 100:.0f}%"))
    return '<div class="split">' + "".join(bar) + "</div>" + _legend(legend)


def _turn_tip(detail: RunDetail, i: int) -> str:
    tf = detail.turns[i]
    u = tf.usage
    c = "unknown" if tf.cost is None else fmt.usd(tf.cost.total)
    lines = [
        f"Turn {tf.index} · {fmt.short_model(tf.model)} · {fmt.when(tf.started_at, seconds=True)}",
        f"prompt {fmt.tokens(tf.prompt_tokens)} = input {fmt.tokens(u.input_tokens)} + write "
        f"{fmt.tokens(u.cache_creation_input_tokens)} + read {fmt.tokens(u.cache_read)}",
        f"output {fmt.tokens(u.output_tokens)} · cost {c} · hit {fmt.pct(tf.cache_hit_rate)}",
    ]
    if tf.gap_s is not None:
        lines.append(f"{fmt.gap(tf.gap_s)} since the previous request")
    if tf.estimated:
        lines.append("usage estimated (none recorded)")
    return "\n".join(lines)


def _run_section(detail: RunDetail | None, chosen: bool) -> str:
    if detail is None:
        return ""
    run, turns, t = detail.run, detail.turns, detail.totals
    labels = [str(tf.index) for tf in turns]
    tips = [_turn_tip(detail, i) for i in range(len(turns))]
    token_series = [
        Series("c-read", "cache read", [tf.usage.cache_read for tf in turns]),
        Series("c-write", "cache write", [tf.usage.cache_creation_input_tokens for tf in turns]),
        Series("c-input", "uncached input", [tf.usage.input_tokens for tf in turns]),
        Series("c-output", "output", [tf.usage.output_tokens for tf in turns]),
    ]

    def dollars(attr: str) -> list[float]:
        out = []
        for tf in turns:
            c = tf.cost
            if c is None:
                out.append(0.0)
            elif attr == "cache_write":
                out.append(c.cache_write_5m + c.cache_write_1h)
            else:
                out.append(float(getattr(c, attr)))
        return out

    cost_series = [
        Series("c-read", "cache read", dollars("cache_read")),
        Series("c-write", "cache write", dollars("cache_write")),
        Series("c-input", "uncached input", dollars("input")),
        Series("c-output", "output", dollars("output")),
    ]
    gaps = [i for i, tf in enumerate(turns) if tf.gap_s is not None and tf.gap_s > fmt.TTL_5M_S]
    misses = sum(1 for tf in turns[1:] if (tf.cache_hit_rate or 0) < 0.5 and tf.prompt_tokens)
    why = "chosen with --run" if chosen else "the costliest run"
    title = f" — {run.title}" if run.title and run.title != run.run_id else ""
    kind = "" if run.kind == "session" else f" ({run.kind})"
    facts = [
        ("requests", fmt.tokens(t.requests)),
        ("cost", fmt.cost_of(t)),
        ("cache-hit rate", fmt.pct(t.cache_hit_rate, 1)),
        ("turns under 50% hit", str(misses)),
        ("gaps over 5 min", str(len(gaps))),
    ]
    legend = _legend([(css, label) for _, css, label in _CLASSES])
    rate_tips = [
        f"Turn {tf.index}: {fmt.pct(tf.cache_hit_rate)} read from cache"
        + (f" after {fmt.gap(tf.gap_s)} idle" if tf.gap_s and tf.gap_s > fmt.TTL_5M_S else "")
        for tf in turns
    ]
    return f"""<section id="run">
  <input type="radio" name="m" id="m-tokens" checked><input type="radio" name="m" id="m-cost">
  <div class="toggle"><label for="m-tokens">tokens</label><label for="m-cost">dollars</label></div>
  <h2>One run, turn by turn: <code>{_e(run.run_id)}</code>{_e(kind)}{_e(title)}</h2>
  <p class="sub">{_e(why)}{" · " + _e(run.project) if run.project else ""} · each bar is one request</p>
  <div class="facts">{"".join(f"<span>{_e(k)} <b>{_e(v)}</b></span>" for k, v in facts)}</div>
  {legend}
  <div class="v-tokens">{charts.stacked_bars(token_series, labels, tooltips=tips)}</div>
  <div class="v-cost">{charts.stacked_bars(cost_series, labels, tooltips=tips, value_label=fmt.usd)}</div>
  <h2 style="margin-top:18px">Cache-hit rate across turns</h2>
  <p class="sub">cache read / prompt tokens per request · red dots: under 50% · dashed: idle over 5 minutes</p>
  {charts.line([tf.cache_hit_rate for tf in turns], labels, marks=gaps, tooltips=rate_tips)}
</section>"""


def _class_series(rows: Sequence[Tally]) -> list[Series]:
    return [
        Series(css, label, [r.cost_by_class().get(key, 0.0) for r in rows]) for key, css, label in _CLASSES
    ]


def _by_model(data: ReportData) -> str:
    rows = [r for r in data.rows if r.tally.requests][:12]
    if not rows:
        return '<p class="empty">No requests.</p>'
    total = data.totals.cost.total or 1.0
    right = [
        f"{fmt.cost_of(r.tally)} · {r.tally.cost.total / total * 100:.0f}% · {r.tally.requests:,} req"
        for r in rows
    ]
    return charts.hbars(
        _class_series([r.tally for r in rows]), [fmt.short_model(r.key) for r in rows], right_labels=right
    )


def _by_day(data: ReportData) -> tuple[str, str]:
    rows = [r for r in data.rows if r.key != "undated"]
    if not rows:
        return '<p class="empty">No dated requests.</p>', ""
    first = dt.date.fromisoformat(rows[0].key)
    last = dt.date.fromisoformat(rows[-1].key)
    by_key = {r.key: r.tally for r in rows}
    if (last - first).days < FILL_DAYS:
        # a short span: every day on the axis, idle ones empty, so the time axis is honest
        days = [(first + dt.timedelta(days=k)).isoformat() for k in range((last - first).days + 1)]
        gaps = ""
    else:
        days = [r.key for r in rows]
        gaps = " · days without requests left out"
    tallies = [by_key.get(k, Tally()) for k in days]
    tips = [f"{k}: {fmt.cost_of(t)} · {t.requests:,} requests" for k, t in zip(days, tallies, strict=True)]
    one_year = first.year == last.year
    labels = [k[5:] if one_year else k[2:] for k in days]
    svg = charts.stacked_bars(
        _class_series(tallies),
        labels,
        height=250,
        value_label=fmt.usd,
        tooltips=tips,
        width=520,
        max_labels=6,
    )
    busiest = max(rows, key=lambda r: r.tally.cost.total)
    n = len(rows)
    sub = (
        f"{n} active day{'s' if n != 1 else ''} · busiest {busiest.key} ({fmt.cost_of(busiest.tally)}){gaps}"
    )
    return svg, sub


def _sessions(data: ReportData) -> tuple[str, str]:
    rows = list(data.rows)
    if not rows:
        return '<p class="empty">No runs in this window.</p>', ""
    shown = rows
    sub = f"{len(rows):,} runs · click a column to sort"
    if len(rows) > MAX_TABLE_ROWS:
        shown = sorted(rows, key=lambda r: -r.tally.cost.total)[:MAX_TABLE_ROWS]
        sub = f"the {MAX_TABLE_ROWS} costliest of {len(rows):,} runs · click a column to sort"
    head = (
        "<thead><tr><th>Run</th><th class='l'>Title · project</th><th class='l'>Started</th>"
        "<th class='l'>Model</th>"
        "<th>Req</th><th>Input</th><th>Cache write</th><th>Cache read</th><th>Output</th><th>Hit</th>"
        "<th>Cost</th></tr></thead>"
    )
    body = []
    for r in shown:
        t = r.tally
        run = r.run
        title = (run.title or "") if run is not None and run.title != run.run_id else ""
        project = fmt.project_name(run.project) if run is not None else ""
        child = bool(r.depth) and len(shown) == len(rows)
        name = fmt.child_name(r.key, run.parent_id if run else None) if child else fmt.short_id(r.key)
        if run is not None and run.kind not in ("session", "subagent"):
            name += f" ({run.kind})"
        cls = ' class="child"' if child else ""
        rate = t.cache_hit_rate
        body.append(
            f'<tr{cls}><td class="run" title="{_e(r.key)}"><code>{_e(name)}</code></td>'
            f'<td class="l title" title="{_e(run.project if run else "")}">{_e(title)}'
            f'{" · " if title and project else ""}<span class="muted">{_e(project)}</span></td>'
            f'<td class="l" data-v="{t.first_at or 0}">{_e(fmt.when(t.first_at)[2:])}</td>'
            f'<td class="l">{_e(fmt.models_label(t.models))}</td>'
            f'<td data-v="{t.requests}">{t.requests:,}</td>'
            f'<td data-v="{t.input_tokens}">{t.input_tokens:,}</td>'
            f'<td data-v="{t.cache_creation_input_tokens}">{t.cache_creation_input_tokens:,}</td>'
            f'<td data-v="{t.cache_read}">{t.cache_read:,}</td>'
            f'<td data-v="{t.output_tokens}">{t.output_tokens:,}</td>'
            f'<td data-v="{rate if rate is not None else -1}">{fmt.pct(rate)}</td>'
            f'<td data-v="{t.cost.total}">{_e(fmt.cost_of(t))}</td></tr>'
        )
    table = f'<div class="scroll"><table class="sortable">{head}<tbody>{"".join(body)}</tbody></table></div>'
    return table, sub


def render_html(page: PageData, *, chosen_run: bool = False) -> str:
    """The whole page as one string; write it with UTF-8."""
    data = page.sessions
    template = Template(
        importlib.resources.files(__package__).joinpath("templates/report.html").read_text(encoding="utf-8")
    )
    by_day, day_sub = _by_day(page.by_day)
    sessions, sessions_sub = _sessions(data)
    bits = [
        f"{data.files:,} files" if data.files else "",
        f"{data.runs:,} runs",
        f"{data.totals.requests:,} requests",
    ]
    if data.since or data.until:
        bits.append(f"window {data.since or '…'} .. {data.until or '…'}")
    if page.generated_at:
        bits.append("generated " + fmt.when(page.generated_at))
    notes = fmt.footer_lines(data)
    return template.substitute(
        title=_e(f"tokenomy report · {fmt.cost_of(data.totals)}"),
        heading="Where the tokens went",
        subtitle=_e(" · ".join(b for b in bits if b)),
        cards=_cards(data),
        split=_split(data.totals),
        run_section=_run_section(page.detail, chosen_run),
        by_model=_by_model(page.by_model),
        by_day=by_day,
        day_sub=_e(day_sub),
        sessions=sessions,
        sessions_sub=_e(sessions_sub),
        notes="".join(f"<li>{_e(n)}</li>" for n in notes),
    )
