"""Adding sources' pre-summed runs (``tokenomy.sources.load_summaries``) into a report.

A summed run carries sums per model, tier, geo, long-context band and 15-minute slot instead of
turns. ``build_report`` adds them into the same priced buckets as turns, so both give the same
figures; ``can_sum`` says when that holds exactly (a window on 15-minute boundaries, and
long-context rates that switch at the split the sums use).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from tokenomy.model import Exactness, Run
from tokenomy.pricing import model_info
from tokenomy.sources._summary import LONG_CONTEXT_SPLIT, SLOT_S, RunSums

from .data import TOKEN_CLASSES, GroupBy, _Bucket, _per_turn_pricing, _time_key, date_bounds

__all__ = ["add_sums", "can_sum", "count_sources"]


def can_sum(
    sums: Iterable[RunSums], since: dt.date | None, until: dt.date | None, tz: dt.tzinfo | None = None
) -> bool:
    """Whether ``build_report`` prices and windows ``sums`` exactly: every window bound falls on a
    15-minute slot, and every model with long-context rates switches at the split the sums use."""
    lo, hi = date_bounds(since, until, tz)
    if any(b is not None and b % SLOT_S for b in (lo, hi)):
        return False
    for model in {a.model for rs in sums for a in rs.coarse}:
        info = model_info(model)
        if info is not None and info.long_context_threshold not in (None, LONG_CONTEXT_SPLIT):
            return False
    return True


def add_sums(
    sums: Iterable[RunSums],
    by: GroupBy,
    lo: float | None,
    hi: float | None,
    tz: dt.tzinfo | None,
    buckets: dict[tuple[str, str, str, str | None, int | None], _Bucket],
    time_keys: dict[int, str],
    qualities: dict[int, Mapping[str, Exactness]],
) -> list[RunSums]:
    """Add pre-summed runs to ``buckets``; the ones with something inside the window."""
    windowed = lo is not None or hi is not None
    counted: list[RunSums] = []
    lower = False
    for rs in sums:
        run = rs.run
        fixed_key = (
            run.run_id if by == "session" else (run.project or "(no project)") if by == "project" else None
        )
        seen = False
        for a in rs.aggs if windowed or fixed_key is None and by != "model" else rs.coarse:
            slot = a.slot
            if windowed:
                if slot is None:
                    continue
                start = slot * SLOT_S
                if (lo is not None and start < lo) or (hi is not None and start >= hi):
                    continue
            seen = True
            if a.lower:
                lower = True
            if fixed_key is not None:
                key = fixed_key
            elif by == "model":
                key = a.model
            elif slot is None:
                key = "undated"
            else:
                key = time_keys.get(slot) or time_keys.setdefault(slot, _time_key(slot * SLOT_S, by, tz))
            # a model with long-context rates: requests above and below the split are summed apart
            band = int(a.long) if _per_turn_pricing(a.model) else 0
            bk = (key, a.model, a.tier, a.geo, band)
            b = buckets.get(bk)
            if b is None:
                b = buckets[bk] = _Bucket(a.model, a.tier, a.geo, False, band)
            b.add_sum(a)
        if seen:
            counted.append(rs)
    if counted:
        qualities.setdefault(id(_SUMMED_EXACT), _SUMMED_EXACT)
    if lower:
        qualities.setdefault(id(_SUMMED_LOWER), _SUMMED_LOWER)
    return counted


# the qualities summed sources report (Claude Code: cache counts exact, input/output maybe lower bounds)
_SUMMED_EXACT: Mapping[str, Exactness] = {c: "exact" for c in TOKEN_CLASSES}
_SUMMED_LOWER: Mapping[str, Exactness] = {
    "input": "lower_bound",
    "cache_write": "exact",
    "cache_read": "exact",
    "output": "lower_bound",
}


def count_sources(runs: Iterable[Run], sums: Iterable[RunSums]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in [*runs, *(rs.run for rs in sums)]:
        out[r.source] = out.get(r.source, 0) + 1
    return out
