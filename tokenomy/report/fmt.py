"""Number and label formatting shared by the terminal and HTML renderers, so both read the same."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

from tokenomy.model import Exactness

from .data import TOKEN_CLASSES, ReportData, Tally

CLASS_LABELS: Mapping[str, str] = {
    "input": "uncached input",
    "cache_write": "cache write",
    "cache_read": "cache read",
    "output": "output",
    "web_search": "web search",
}
GROUP_LABELS: Mapping[str, str] = {
    "session": "Session",
    "day": "Day",
    "week": "Week",
    "month": "Month",
    "model": "Model",
    "project": "Project",
}
# A 5-minute cache entry is gone after this many idle seconds (the API's default TTL).
TTL_5M_S = 300.0

_DATE_SUFFIX = re.compile(r"-\d{8}$")


def tokens(n: int) -> str:
    return f"{n:,}"


def compact(n: float) -> str:
    """1234 → 1.2k, 4302385 → 4.3M: for chart labels where width is scarce."""
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            v = n / div
            return f"{v:.0f}{unit}" if v >= 100 else f"{v:.1f}{unit}"
    return f"{n:.0f}"


def usd(x: float) -> str:
    if x == 0:
        return "$0"
    if x < 0.01:
        return f"${x:.4f}"
    if x < 100:
        return f"${x:,.2f}"
    return f"${x:,.0f}"


def cost_of(t: Tally) -> str:
    """The dollars of a tally; never $0 for a price that is unknown."""
    if t.unpriced_requests == 0:
        return usd(t.cost.total)
    if t.cost.total > 0:
        return f"≥ {usd(t.cost.total)}"
    return "unknown"


def pct(rate: float | None, digits: int = 0) -> str:
    return "–" if rate is None else f"{rate * 100:.{digits}f}%"


def shares(t: Tally) -> str:
    """Share of the priced cost per class as ``in·wr·rd·out`` percentages."""
    s = t.cost_shares()
    if s is None:
        return "–"
    return "·".join(f"{round(s.get(c, 0.0) * 100):d}" for c in TOKEN_CLASSES)


def gap(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = max(seconds, 0.0)
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    if s < 86400:
        return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"
    return f"{s / 86400:.1f}d"


def short_model(model: str) -> str:
    m = _DATE_SUFFIX.sub("", model)
    return m[len("claude-") :] if m.startswith("claude-") else m


def short_id(run_id: str) -> str:
    """A UUID's first 8 characters, other ids' last 16: either one is enough for ``--run``."""
    if len(run_id) == 36 and run_id[8] == "-":
        return run_id[:8]
    return run_id if len(run_id) <= 16 else "…" + run_id[-15:]


def child_name(run_id: str, parent_id: str | None) -> str:
    """A sub-agent run's own name: its id without the parent session's id in front."""
    if parent_id and run_id.startswith(parent_id):
        return run_id[len(parent_id) :].lstrip("/:") or run_id
    return run_id


def project_name(project: str | None) -> str:
    """The last part of a project path: ``/home/u/dev/spotter`` → ``spotter``."""
    if not project:
        return ""
    return project.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or project


def models_label(models: Mapping[str, int]) -> str:
    if not models:
        return ""
    ordered = sorted(models, key=lambda m: -models[m])
    head = short_model(ordered[0])
    return head if len(ordered) == 1 else f"{head} +{len(ordered) - 1}"


def when(ts: float | None, tz: dt.tzinfo | None = None, *, seconds: bool = False, short: bool = False) -> str:
    """Local (or ``tz``) time; ``short`` drops the year, ``seconds`` adds them."""
    if ts is None:
        return ""
    d = dt.datetime.fromtimestamp(ts, tz) if tz else dt.datetime.fromtimestamp(ts).astimezone()
    if short:
        return d.strftime("%m-%d %H:%M")
    return d.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def quality_lines(quality: Mapping[str, Exactness], estimated_requests: int) -> list[str]:
    """Which figures are exact, which are lower bounds and which are estimates, in words."""
    groups: dict[str, list[str]] = {"exact": [], "lower_bound": [], "estimated": []}
    for c in TOKEN_CLASSES:
        groups[quality.get(c, "exact")].append(CLASS_LABELS[c])
    out: list[str] = []
    if groups["exact"]:
        out.append("Exact (as recorded by the API): " + ", ".join(groups["exact"]) + ".")
    if groups["lower_bound"]:
        out.append("Lower bounds: " + ", ".join(groups["lower_bound"]) + " (the logs under-record them).")
    if groups["estimated"] or estimated_requests:
        n = f"{estimated_requests:,} request{'s' if estimated_requests != 1 else ''}"
        out.append(
            f"Estimated: {n} had no recorded usage; their prompt tokens are estimated from the request "
            "and counted as uncached input."
        )
    return out


def cost_lines(t: Tally) -> list[str]:
    out: list[str] = []
    if t.unpriced_requests:
        models = ", ".join(sorted(t.unpriced_models))
        out.append(
            f"Cost unknown for {t.unpriced_requests:,} request{'s' if t.unpriced_requests != 1 else ''} "
            f"on {models} (no known price): dollar figures marked ≥ leave them out."
        )
    return out


def footer_lines(data: ReportData) -> list[str]:
    """Everything a reader needs to trust the figures: exactness, skipped lines, notes, prices."""
    out = quality_lines(data.quality, data.totals.estimated_requests)
    out.extend(cost_lines(data.totals))
    if data.skipped_lines:
        out.append(f"Skipped {data.skipped_lines:,} unreadable line{'s' if data.skipped_lines != 1 else ''}.")
    out.extend(data.notes)
    out.extend(f"Pricing: {n}" for n in data.pricing_notes)
    return out
