"""Pure report builders: ``Run``s in, ``ReportData`` out, no I/O and no rendering.

The terminal, HTML and JSON renderers all read the same ``ReportData`` so the three never
disagree on a figure. Cost is derived here, per turn, from ``tokenomy.pricing.cost``: a turn
whose model has no known price adds nothing to the dollars and marks its group's cost unknown
(``None``), never $0. A turn without recorded usage is estimated from its request (all prompt
tokens counted as uncached input) and flagged, never silently mixed with exact figures.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tokenomy.model import Exactness, Run, Turn, Usage
from tokenomy.pricing import Cost, cost, model_info
from tokenomy.sources._summary import LONG_CONTEXT_SPLIT, Agg, RunSums

from .options import GROUPINGS, GroupBy

__all__ = [
    "GROUPINGS",
    "TOKEN_CLASSES",
    "GroupBy",
    "PageData",
    "ReportData",
    "Row",
    "RunDetail",
    "Tally",
    "TurnFigures",
    "build_page",
    "build_report",
    "build_run_detail",
    "costliest_run",
    "date_bounds",
    "find_run",
    "report_json",
    "run_detail_json",
    "turn_figures",
]


# The four token classes the report speaks of, in the order bars and tables show them.
TOKEN_CLASSES = ("input", "cache_write", "cache_read", "output")
_RANK: Mapping[str, int] = {"exact": 0, "lower_bound": 1, "estimated": 2}
_ESTIMATED: Mapping[str, Exactness] = {c: "estimated" for c in TOKEN_CLASSES}


def _token_class(key: str) -> str | None:
    """Map a source's quality key (``input_tokens``, ``cache_creation``, ``output`` …) to a class."""
    k = key.lower()
    if "read" in k:
        return "cache_read"
    if "creat" in k or "write" in k:
        return "cache_write"
    if "output" in k:
        return "output"
    if "input" in k:
        return "input"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnFigures:
    """One request as the report sees it: usage (recorded or estimated), cost and timing."""

    run_id: str
    index: int
    model: str
    started_at: float | None
    usage: Usage
    cost: Cost | None
    estimated: bool
    gap_s: float | None
    quality: Mapping[str, Exactness]

    @property
    def prompt_tokens(self) -> int:
        return self.usage.prompt_tokens

    @property
    def cache_hit_rate(self) -> float | None:
        p = self.usage.prompt_tokens
        return self.usage.cache_read / p if p else None


def _turn_usage(turn: Turn) -> tuple[Usage, bool]:
    if turn.usage is not None:
        return turn.usage, False
    if turn.request is not None:
        return Usage(input_tokens=turn.request.total_tokens), True
    return Usage(), True


def _turn_cost(usage: Usage, model: str) -> Cost | None:
    if usage.total_tokens == 0 and usage.web_search_requests == 0:
        return Cost()  # nothing billed, whatever the price (e.g. Claude Code's "<synthetic>" turns)
    return cost(usage, model)


def turn_figures(run: Run) -> list[TurnFigures]:
    """Every turn of ``run`` with its usage, cost and the gap since the previous request."""
    out: list[TurnFigures] = []
    prev: float | None = None
    for i, t in enumerate(run.turns):
        usage, estimated = _turn_usage(t)
        quality: Mapping[str, Exactness] = t.quality
        if estimated:
            quality = _ESTIMATED
        gap = t.started_at - prev if t.started_at is not None and prev is not None else None
        if t.started_at is not None:
            prev = t.started_at
        out.append(
            TurnFigures(
                run_id=run.run_id,
                index=i + 1,
                model=t.model,
                started_at=t.started_at,
                usage=usage,
                cost=_turn_cost(usage, t.model),
                estimated=estimated,
                gap_s=gap,
                quality=quality,
            )
        )
    return out


@dataclass(slots=True)
class Tally:
    """Sums over a set of turns. ``cost`` holds the priced part; ``cost_usd`` is ``None`` if any is unpriced."""

    requests: int = 0
    input_tokens: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    cache_read: int = 0
    output_tokens: int = 0
    cost: Cost = field(default_factory=Cost)
    unpriced_requests: int = 0
    unpriced_models: set[str] = field(default_factory=set)
    estimated_requests: int = 0
    models: dict[str, int] = field(default_factory=dict)
    first_at: float | None = None
    last_at: float | None = None

    def add(self, tf: TurnFigures) -> None:
        u = tf.usage
        self.requests += 1
        self.input_tokens += u.input_tokens
        self.cache_write_5m += u.cache_write_5m
        self.cache_write_1h += u.cache_write_1h
        self.cache_read += u.cache_read
        self.output_tokens += u.output_tokens
        if tf.cost is None:
            self.unpriced_requests += 1
            self.unpriced_models.add(tf.model)
        else:
            self.cost = self.cost + tf.cost
        if tf.estimated:
            self.estimated_requests += 1
        self.models[tf.model] = self.models.get(tf.model, 0) + 1
        if tf.started_at is not None:
            if self.first_at is None or tf.started_at < self.first_at:
                self.first_at = tf.started_at
            if self.last_at is None or tf.started_at > self.last_at:
                self.last_at = tf.started_at

    def add_bucket(self, b: _Bucket, c: Cost | None) -> None:
        """Add a bucket of turns of one model whose summed cost is ``c`` (``None``: unpriced)."""
        self._add_counts(b, c is None)
        if c is not None:
            self.cost = self.cost + c

    def _merge(self, t: Tally) -> None:
        """Add another tally's counts (not its cost)."""
        self.requests += t.requests
        self.input_tokens += t.input_tokens
        self.cache_write_5m += t.cache_write_5m
        self.cache_write_1h += t.cache_write_1h
        self.cache_read += t.cache_read
        self.output_tokens += t.output_tokens
        self.unpriced_requests += t.unpriced_requests
        if t.unpriced_models:
            self.unpriced_models |= t.unpriced_models
        self.estimated_requests += t.estimated_requests
        models = self.models
        for m, n in t.models.items():
            models[m] = models.get(m, 0) + n
        if t.first_at is not None and (self.first_at is None or t.first_at < self.first_at):
            self.first_at = t.first_at
        if t.last_at is not None and (self.last_at is None or t.last_at > self.last_at):
            self.last_at = t.last_at

    def _add_counts(self, b: _Bucket, unpriced: bool) -> None:
        self.requests += b.n
        self.input_tokens += b.input_tokens
        self.cache_write_5m += b.cache_write_5m
        self.cache_write_1h += b.cache_write_1h
        self.cache_read += b.cache_read
        self.output_tokens += b.output_tokens
        if unpriced:
            self.unpriced_requests += b.n - b.zero
            self.unpriced_models.add(b.model)
        self.estimated_requests += b.estimated
        self.models[b.model] = self.models.get(b.model, 0) + b.n
        if b.first_at is not None and (self.first_at is None or b.first_at < self.first_at):
            self.first_at = b.first_at
        if b.last_at is not None and (self.last_at is None or b.last_at > self.last_at):
            self.last_at = b.last_at

    @property
    def cache_creation_input_tokens(self) -> int:
        return self.cache_write_5m + self.cache_write_1h

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read

    @property
    def cache_hit_rate(self) -> float | None:
        p = self.prompt_tokens
        return self.cache_read / p if p else None

    @property
    def cost_usd(self) -> float | None:
        return None if self.unpriced_requests else self.cost.total

    def cost_by_class(self) -> dict[str, float]:
        """Priced dollars per token class (cache writes 5m + 1h together; web search apart)."""
        c = self.cost
        out = {
            "input": c.input,
            "cache_write": c.cache_write_5m + c.cache_write_1h,
            "cache_read": c.cache_read,
            "output": c.output,
        }
        if c.web_search:
            out["web_search"] = c.web_search
        return out

    def cost_shares(self) -> dict[str, float] | None:
        """Share of the priced cost per token class, or ``None`` when nothing was priced."""
        total = self.cost.total
        if total <= 0:
            return None
        return {k: v / total for k, v in self.cost_by_class().items()}

    def to_json(self) -> dict[str, Any]:
        """The exact key names of ``tokenomy report --json`` (the API's own usage names)."""
        rate = self.cache_hit_rate
        c = self.cost_usd
        return {
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read,
            "output_tokens": self.output_tokens,
            "cost_usd": round(c, 6) if c is not None else None,
            "cache_hit_rate": round(rate, 6) if rate is not None else None,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One group of the report: a run (``by="session"``) or a day, week, month, model or project."""

    key: str
    tally: Tally
    run: Run | None = None
    depth: int = 0  # 1 for a sub-agent or compaction run listed under its parent session


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportData:
    by: GroupBy
    totals: Tally
    rows: tuple[Row, ...]
    quality: Mapping[str, Exactness]
    runs: int
    skipped_lines: int = 0
    files: int = 0
    sources: Mapping[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    pricing_notes: tuple[str, ...] = ()
    since: dt.date | None = None
    until: dt.date | None = None


def date_bounds(
    since: dt.date | None, until: dt.date | None, tz: dt.tzinfo | None = None
) -> tuple[float | None, float | None]:
    """Epoch seconds of the start of ``since`` and the end of ``until`` (inclusive) in ``tz`` (local)."""

    def start(d: dt.date) -> float:
        naive = dt.datetime(d.year, d.month, d.day)
        return (naive.replace(tzinfo=tz) if tz else naive.astimezone()).timestamp()

    lo = start(since) if since is not None else None
    hi = start(until + dt.timedelta(days=1)) if until is not None else None
    return lo, hi


def _local(ts: float, tz: dt.tzinfo | None) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, tz) if tz else dt.datetime.fromtimestamp(ts).astimezone()


def _time_key(at: float, by: GroupBy, tz: dt.tzinfo | None) -> str:
    d = _local(at, tz)
    if by == "day":
        return d.strftime("%Y-%m-%d")
    if by == "week":
        y, w, _ = d.isocalendar()
        return f"{y}-W{w:02d}"
    return d.strftime("%Y-%m")


def _merge_quality(into: dict[str, Exactness], quality: Mapping[str, Exactness]) -> None:
    for key, q in quality.items():
        cls = _token_class(key)
        if cls is not None and _RANK.get(q, 0) > _RANK.get(into.get(cls, "exact"), 0):
            into[cls] = q


class _Bucket:
    """Turns of one group, model, tier and geo: summed as integers, priced once (cost is linear).

    A model with long-context pricing is priced per turn instead, since whether a request is
    "long" is decided per request.
    """

    __slots__ = (
        "band",
        "cache_read",
        "cache_write_1h",
        "cache_write_5m",
        "cost",
        "estimated",
        "first_at",
        "geo",
        "input_tokens",
        "last_at",
        "model",
        "n",
        "output_tokens",
        "per_turn",
        "tier",
        "unpriced",
        "web",
        "zero",
    )

    def __init__(
        self, model: str, tier: str, geo: str | None, per_turn: bool, band: int | None = None
    ) -> None:
        self.model, self.tier, self.geo, self.per_turn = model, tier, geo, per_turn
        self.band = band  # sums of a per-turn-priced model: requests all above (1) or all below (0) a split
        self.n = self.zero = self.estimated = 0
        self.input_tokens = self.cache_write_5m = self.cache_write_1h = self.cache_read = 0
        self.output_tokens = self.web = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.cost = Cost()
        self.unpriced = False

    def add(self, u: Usage, at: float | None, estimated: bool) -> None:
        self.n += 1
        self.input_tokens += u.input_tokens
        self.cache_write_5m += u.cache_write_5m
        self.cache_write_1h += u.cache_write_1h
        self.cache_read += u.cache_read
        self.output_tokens += u.output_tokens
        self.web += u.web_search_requests
        if estimated:
            self.estimated += 1
        if at is not None:
            if self.first_at is None or at < self.first_at:
                self.first_at = at
            if self.last_at is None or at > self.last_at:
                self.last_at = at
        if self.per_turn:
            c = _turn_cost(u, self.model)
            if c is None:
                self.unpriced = True
            else:
                self.cost = self.cost + c
        elif u.total_tokens == 0 and not u.web_search_requests:
            self.zero += 1

    def add_sum(self, a: Agg) -> None:
        """Add a source's pre-summed requests (see ``tokenomy.sources.load_summaries``)."""
        self.n += a.n
        self.zero += a.zero
        self.input_tokens += a.input_tokens
        self.cache_write_5m += a.cache_write_5m
        self.cache_write_1h += a.cache_write_1h
        self.cache_read += a.cache_read
        self.output_tokens += a.output_tokens
        self.web += a.web_search
        if a.first_at is not None and (self.first_at is None or a.first_at < self.first_at):
            self.first_at = a.first_at
        if a.last_at is not None and (self.last_at is None or a.last_at > self.last_at):
            self.last_at = a.last_at

    def priced_parts(self) -> tuple[float, float, float, float, float, float] | None:
        """``priced()`` as dollars per class: input, writes 5m and 1h, read, output, web search."""
        if self.band is not None:
            if self.n == self.zero:
                return (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # nothing billed, whatever the price
            rates = _band_rates(self.model, self.tier, self.geo, self.band == 1)
            if rates is None:
                return None
            r_in, r_w5, r_w1, r_read, r_out, r_web = rates
            return (
                self.input_tokens * r_in,
                self.cache_write_5m * r_w5,
                self.cache_write_1h * r_w1,
                self.cache_read * r_read,
                self.output_tokens * r_out,
                self.web * r_web,
            )
        c = self.priced()
        if c is None:
            return None
        return (c.input, c.cache_write_5m, c.cache_write_1h, c.cache_read, c.output, c.web_search)

    def priced(self) -> Cost | None:
        if self.band is not None:
            parts = self.priced_parts()
            return None if parts is None else _cost_of(parts)
        if self.per_turn:
            return None if self.unpriced else self.cost
        usage = Usage(
            input_tokens=self.input_tokens,
            cache_write_5m=self.cache_write_5m,
            cache_write_1h=self.cache_write_1h,
            cache_read=self.cache_read,
            output_tokens=self.output_tokens,
            service_tier=self.tier,  # type: ignore[arg-type]
            inference_geo=self.geo,
            web_search_requests=self.web,
        )
        return _turn_cost(usage, self.model)


_CLASSES = ("input_tokens", "cache_write_5m", "cache_write_1h", "cache_read", "output_tokens")


@functools.lru_cache(maxsize=4096)
def _band_rates(model: str, tier: str, geo: str | None, long: bool) -> tuple[float, ...] | None:
    """Dollars per token of each class (and per web search) in one prompt-size band, each read
    from ``pricing.cost`` on a request of that band: the price rules stay in pricing."""
    n = LONG_CONTEXT_SPLIT  # at most the split: the base rates
    rates: list[float] = []
    for name in _CLASSES:
        tokens: dict[str, int] = {name: n}
        if long:
            # one token above the split in a prompt class puts the request in the long band
            tokens = {"input_tokens": n + 1} | ({} if name == "input_tokens" else {name: n})
        c = cost(Usage(**tokens, service_tier=tier, inference_geo=geo), model)  # type: ignore[arg-type]
        if c is None:
            return None
        dollars = {
            "input_tokens": c.input,
            "cache_write_5m": c.cache_write_5m,
            "cache_write_1h": c.cache_write_1h,
            "cache_read": c.cache_read,
            "output_tokens": c.output,
        }[name]
        rates.append(dollars / tokens[name])
    web = cost(Usage(web_search_requests=1000, service_tier=tier, inference_geo=geo), model)  # type: ignore[arg-type]
    if web is None:
        return None
    rates.append(web.web_search / 1000)
    return tuple(rates)


@functools.lru_cache(maxsize=4096)
def _per_turn_pricing(model: str) -> bool:
    info = model_info(model)
    return info is not None and info.long_context_threshold is not None


def _order_sessions(rows: list[Row]) -> list[Row]:
    """Parents by start time, each followed by its sub-agent and compaction runs."""
    by_id = {r.key: r for r in rows}
    children: dict[str, list[Row]] = {}
    tops: list[Row] = []
    for r in rows:
        parent = r.run.parent_id if r.run is not None else None
        if parent is not None and parent in by_id and parent != r.key:
            children.setdefault(parent, []).append(r)
        else:
            tops.append(r)

    def when(r: Row) -> tuple[float, str]:
        return (r.tally.first_at if r.tally.first_at is not None else float("inf"), r.key)

    out: list[Row] = []
    for top in sorted(tops, key=when):
        out.append(top)
        for child in sorted(children.get(top.key, []), key=when):
            out.append(Row(key=child.key, tally=child.tally, run=child.run, depth=1))
    return out


def _add_runs(
    runs: Iterable[Run],
    by: GroupBy,
    lo: float | None,
    hi: float | None,
    tz: dt.tzinfo | None,
    buckets: dict[tuple[str, str, str, str | None, int | None], _Bucket],
    time_keys: dict[int, str],
    qualities: dict[int, Mapping[str, Exactness]],
) -> list[Run]:
    """Add every turn of ``runs`` inside the window to ``buckets``; the runs with such a turn."""
    windowed = lo is not None or hi is not None
    seen: list[Run] = []
    for run in runs:
        counted = False
        fixed_key = (
            run.run_id if by == "session" else (run.project or "(no project)") if by == "project" else None
        )
        for t in run.turns:
            at = t.started_at
            if windowed and (at is None or (lo is not None and at < lo) or (hi is not None and at >= hi)):
                continue
            counted = True
            u = t.usage
            estimated = u is None
            if u is None:
                u, _ = _turn_usage(t)
                qualities.setdefault(-1, _ESTIMATED)
            else:
                q = t.quality
                if id(q) not in qualities:
                    qualities[id(q)] = q
            if fixed_key is not None:
                key = fixed_key
            elif by == "model":
                key = t.model
            elif at is None:
                key = "undated"
            else:
                slot = int(at // 900)  # every zone's offset is a multiple of 15 minutes
                key = time_keys.get(slot) or time_keys.setdefault(slot, _time_key(at, by, tz))
            bk = (key, t.model, u.service_tier, u.inference_geo, None)
            b = buckets.get(bk)
            if b is None:
                b = buckets[bk] = _Bucket(
                    t.model, u.service_tier, u.inference_geo, _per_turn_pricing(t.model)
                )
            b.add(u, at, estimated)
        if counted:
            seen.append(run)
    return seen


def build_report(
    runs: Iterable[Run],
    *,
    by: GroupBy = "session",
    since: dt.date | None = None,
    until: dt.date | None = None,
    tz: dt.tzinfo | None = None,
    skipped_lines: int = 0,
    files: int = 0,
    sources: Mapping[str, int] | None = None,
    notes: Sequence[str] = (),
    pricing_notes: Sequence[str] = (),
    sums: Sequence[RunSums] | None = None,
) -> ReportData:
    """Group every turn of ``runs`` (inside ``since``..``until``, dates inclusive) by ``by``.

    ``tz`` is the zone days, weeks and months are cut in (``None``: the local zone). Runs with no
    turn in the window are left out. Turns are summed per group and model and priced once per
    sum, so a large history costs one dictionary update per turn. ``sums`` are runs a source has
    already summed (``tokenomy.sources.load_summaries``); they add in as if their turns were
    here, provided ``report.sums.can_sum`` holds. With ``sums`` and no ``sources``, the runs counted per
    source are filled in.
    """
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, not {by!r}")
    lo, hi = date_bounds(since, until, tz)
    buckets: dict[tuple[str, str, str, str | None, int | None], _Bucket] = {}
    qualities: dict[int, Mapping[str, Exactness]] = {}
    time_keys: dict[int, str] = {}
    runs_seen = _add_runs(runs, by, lo, hi, tz, buckets, time_keys, qualities)
    n_runs = len(runs_seen)
    run_of: dict[str, Run] = {}
    if by == "session":
        for run in runs_seen:
            run_of.setdefault(run.run_id, run)
    from .sums import add_sums, count_sources

    counted_sums = add_sums(sums or (), by, lo, hi, tz, buckets, time_keys, qualities)
    n_runs += len(counted_sums)
    if by == "session":
        for rs in counted_sums:
            run_of.setdefault(rs.run.run_id, rs.run)
    if sums is not None and sources is None:
        sources = count_sources(runs_seen, counted_sums)
    groups, totals = _tally(buckets)
    quality: dict[str, Exactness] = {c: "exact" for c in TOKEN_CLASSES}
    for q in qualities.values():
        _merge_quality(quality, q)
    rows = [Row(key=k, tally=t, run=run_of.get(k)) for k, t in groups.items()]
    if by == "session":
        rows = _order_sessions(rows)
    elif by == "model" or by == "project":
        rows.sort(key=lambda r: (-(r.tally.cost.total), r.key))
    else:
        rows.sort(key=lambda r: r.key)
    return ReportData(
        by=by,
        totals=totals,
        rows=tuple(rows),
        quality=quality,
        runs=n_runs,
        skipped_lines=skipped_lines,
        files=files,
        sources=dict(sources or {}),
        notes=tuple(notes),
        pricing_notes=tuple(pricing_notes),
        since=since,
        until=until,
    )


def _tally(
    buckets: Mapping[tuple[str, str, str, str | None, int | None], _Bucket],
) -> tuple[dict[str, Tally], Tally]:
    """Tallies per group key, and the totals (the sum of the groups): counts added per bucket,
    dollars per class summed as floats and made a ``Cost`` once per tally, without an object per
    step."""
    groups: dict[str, Tally] = {}
    dollars: dict[str, list[float]] = {}
    for (key, *_), b in buckets.items():
        c = b.priced_parts()
        tally = groups.get(key)
        if tally is None:
            tally = groups[key] = Tally()
            dollars[key] = [0.0] * 6
        tally._add_counts(b, c is None)
        if c is not None:
            acc = dollars[key]
            acc[0] += c[0]
            acc[1] += c[1]
            acc[2] += c[2]
            acc[3] += c[3]
            acc[4] += c[4]
            acc[5] += c[5]
    totals = Tally()
    total_dollars = [0.0] * 6
    for key, tally in groups.items():
        acc = dollars[key]
        tally.cost = _cost_of(acc)
        totals._merge(tally)
        for i in range(6):
            total_dollars[i] += acc[i]
    totals.cost = _cost_of(total_dollars)
    return groups, totals


def _cost_of(d: Sequence[float]) -> Cost:
    return Cost(
        input=d[0], cache_write_5m=d[1], cache_write_1h=d[2], cache_read=d[3], output=d[4], web_search=d[5]
    )


def report_json(data: ReportData) -> dict[str, Any]:
    """``{"totals": {...}, "rows": [...]}`` plus what a reader needs to trust the numbers."""
    rows = []
    for r in data.rows:
        row: dict[str, Any] = {data.by: r.key}
        row.update(r.tally.to_json())
        rows.append(row)
    return {
        "totals": data.totals.to_json(),
        "rows": rows,
        "group_by": data.by,
        "unpriced_models": sorted(data.totals.unpriced_models),
        "priced_cost_usd": round(data.totals.cost.total, 6),
        "quality": dict(data.quality),
        "estimated_requests": data.totals.estimated_requests,
        "runs": data.runs,
        "files": data.files,
        "skipped_lines": data.skipped_lines,
        "notes": list(data.notes),
        "pricing_notes": list(data.pricing_notes),
    }


# ----------------------------------------------------------------------------------------------
# One run, turn by turn


@dataclass(frozen=True, slots=True, kw_only=True)
class RunDetail:
    run: Run
    turns: tuple[TurnFigures, ...]
    totals: Tally
    quality: Mapping[str, Exactness]


def build_run_detail(run: Run) -> RunDetail:
    turns = turn_figures(run)
    totals = Tally()
    quality: dict[str, Exactness] = {c: "exact" for c in TOKEN_CLASSES}
    for tf in turns:
        totals.add(tf)
        _merge_quality(quality, tf.quality)
    return RunDetail(run=run, turns=tuple(turns), totals=totals, quality=quality)


def run_detail_json(detail: RunDetail) -> dict[str, Any]:
    run = detail.run
    rows = []
    for tf in detail.turns:
        one = Tally()
        one.add(tf)
        row: dict[str, Any] = {"turn": tf.index}
        row.update(one.to_json())
        row.update(
            {
                "model": tf.model,
                "started_at": _iso(tf.started_at),
                "gap_s": round(tf.gap_s, 3) if tf.gap_s is not None else None,
                "prompt_tokens": tf.prompt_tokens,
                "estimated": tf.estimated,
            }
        )
        rows.append(row)
    return {
        "run": {
            "run_id": run.run_id,
            "kind": run.kind,
            "parent_id": run.parent_id,
            "project": run.project,
            "title": run.title,
            "path": run.path,
        },
        "totals": detail.totals.to_json(),
        "rows": rows,
        "unpriced_models": sorted(detail.totals.unpriced_models),
        "quality": dict(detail.quality),
    }


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def find_run(runs: Sequence[Run], run_id: str) -> Run | None:
    """The run ``run_id`` names: its full id, a sub-agent's own name, or a prefix or suffix naming one run.

    A prefix that matches a session and its sub-agents names the session. ``None`` when no run or
    several unrelated runs match.
    """
    for r in runs:
        if r.run_id == run_id:
            return r
    needle = run_id.lstrip("…")
    matches = [r for r in runs if r.run_id.startswith(needle) or r.run_id.endswith(needle)]
    if len(matches) > 1:
        ids = {r.run_id for r in matches}
        matches = [r for r in matches if r.parent_id not in ids]
    return matches[0] if len(matches) == 1 else None


def costliest_run(runs: Sequence[Run]) -> Run | None:
    """The run with the highest priced cost (ties: the most tokens), or ``None`` if no run has a turn."""
    return _costliest(build_report(runs, by="session").rows)


def _costliest(rows: Sequence[Row]) -> Run | None:
    best: tuple[float, int] | None = None
    found: Run | None = None
    for r in rows:
        t = r.tally
        score = (t.cost.total, t.prompt_tokens + t.output_tokens)
        if r.run is not None and t.requests and (best is None or score > best):
            best, found = score, r.run
    return found


# ----------------------------------------------------------------------------------------------
# The HTML page


@dataclass(frozen=True, slots=True, kw_only=True)
class PageData:
    """What the HTML page shows: the session table, one run turn by turn, cost by model and by day."""

    sessions: ReportData
    by_model: ReportData
    by_day: ReportData
    detail: RunDetail | None
    generated_at: float


def build_page(
    runs: Sequence[Run],
    *,
    run_id: str | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
    tz: dt.tzinfo | None = None,
    skipped_lines: int = 0,
    files: int = 0,
    notes: Sequence[str] = (),
    pricing_notes: Sequence[str] = (),
    generated_at: float = 0.0,
) -> PageData:
    """Build every view the page needs; the run shown is ``run_id``'s, else the costliest."""
    common: dict[str, Any] = {
        "since": since,
        "until": until,
        "tz": tz,
        "skipped_lines": skipped_lines,
        "files": files,
        "notes": notes,
        "pricing_notes": pricing_notes,
    }
    sessions = build_report(runs, by="session", **common)
    run = find_run(runs, run_id) if run_id is not None else _costliest(sessions.rows)
    return PageData(
        sessions=sessions,
        by_model=build_report(runs, by="model", **common),
        by_day=build_report(runs, by="day", **common),
        detail=build_run_detail(run) if run is not None else None,
        generated_at=generated_at,
    )
