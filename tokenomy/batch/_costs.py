"""The cost report: what the job cost, and what the same requests would have cost live.

Actual figures come from the usage each line came back with (read from the ledger), priced by
``tokenomy.pricing.cost`` at the batch tier for batch lines and at their own tier for live ones.
The counterfactuals are never a hand-written discount: the requests are replayed, one after
another, through a fresh ``CacheEngine`` (the one implementation of the caching rules), once as
written and once with the shared prefix marked 1h, with each request's prompt scaled to the
exact total its result reported, and priced at the standard tier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tokenomy.blocks import parse_request, scale_to_total
from tokenomy.cache import CacheEngine
from tokenomy.errors import CacheControlError
from tokenomy.model import Request, Usage
from tokenomy.pricing import Cost, cost

__all__ = ["LIVE_SPACING_S", "LIVE_TTFT_S", "CostReport", "build_cost_report", "cost_json", "line_cost"]

# The live counterfactual sends the requests one after another: one every 2 s, first token after 1 s.
LIVE_SPACING_S = 2.0
LIVE_TTFT_S = 1.0


def cost_json(c: Cost | None) -> dict[str, float] | None:
    if c is None:
        return None
    return {
        "input": c.input,
        "cache_write_5m": c.cache_write_5m,
        "cache_write_1h": c.cache_write_1h,
        "cache_read": c.cache_read,
        "output": c.output,
        "total": c.total,
    }


def line_cost(usage: Mapping[str, Any] | None, model: str, lane: str) -> Cost | None:
    """The dollars one result line billed: batch lines at the batch tier (spec §3.4)."""
    if usage is None:
        return None
    u = Usage.from_api(usage)
    return cost(u, model, tier="batch" if lane == "batch" else None)


@dataclass(slots=True)
class Dollars:
    """A sum of costs that remembers how many lines had no known price."""

    total: float = 0.0
    unknown: int = 0

    def add(self, c: Cost | None) -> None:
        if c is None:
            self.unknown += 1
        else:
            self.total += c.total

    def to_json(self) -> dict[str, Any]:
        return {
            "usd": round(self.total, 6) if not self.unknown else None,
            "usd_known": round(self.total, 6),
            "unpriced_lines": self.unknown,
        }

    def text(self) -> str:
        if self.unknown:
            return f"${self.total:,.4f} + unknown ({self.unknown} line(s) without a price)"
        return f"${self.total:,.4f}"


@dataclass(slots=True)
class CostReport:
    """Figures for the end of a job; ``to_json`` for machines, ``lines`` for people."""

    requests: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    retried: int = 0
    billed_lines: int = 0
    batch: Dollars = field(default_factory=Dollars)
    live_lane: Dollars = field(default_factory=Dollars)
    warm: Dollars = field(default_factory=Dollars)
    usage: Usage = field(default_factory=Usage)
    cache_read_lines: int = 0
    live_as_written: Dollars = field(default_factory=Dollars)
    live_with_prefix_cache: Dollars = field(default_factory=Dollars)
    batch_without_cache: Dollars = field(default_factory=Dollars)
    has_prefix_marks: bool = False

    @property
    def actual(self) -> Dollars:
        return Dollars(
            total=self.batch.total + self.live_lane.total + self.warm.total,
            unknown=self.batch.unknown + self.live_lane.unknown + self.warm.unknown,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_status": dict(sorted(self.by_status.items())),
            "retried": self.retried,
            "billed_lines": self.billed_lines,
            "cost": {
                "batch": self.batch.to_json(),
                "live_lane": self.live_lane.to_json(),
                "warm_up": self.warm.to_json(),
                "total": self.actual.to_json(),
            },
            "counterfactual_live": {
                "as_written": self.live_as_written.to_json(),
                "with_shared_prefix_cache": self.live_with_prefix_cache.to_json()
                if self.has_prefix_marks
                else None,
            },
            "counterfactual_batch": {"without_cache": self.batch_without_cache.to_json()},
            "usage": {
                k: v for k, v in self.usage.to_api().items() if k not in ("service_tier", "inference_geo")
            },
            "cache_read_lines": self.cache_read_lines,
        }

    def lines(self) -> list[str]:
        status = ", ".join(f"{k} {v}" for k, v in sorted(self.by_status.items()))
        out = [
            f"requests: {self.requests} ({status}); retried: {self.retried}",
            f"cost of this job: {self.actual.text()}  (batch {self.batch.text()}, live lane "
            f"{self.live_lane.text()}, warm-up {self.warm.text()})",
            f"the same {self.billed_lines} billed request(s) sent live, as written: {self.live_as_written.text()}",
        ]
        if self.has_prefix_marks:
            out.append(f"  … live with the shared prefix cached (1h): {self.live_with_prefix_cache.text()}")
        out.append(f"the batch lines without any cache: {self.batch_without_cache.text()}")
        out.append(
            f"cache reads achieved: {self.usage.cache_read:,} tokens on {self.cache_read_lines} line(s); "
            f"cache writes {self.usage.cache_creation_input_tokens:,}; uncached input {self.usage.input_tokens:,}; "
            f"output {self.usage.output_tokens:,}"
        )
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Line:
    """One request's outcome, as the cost report needs it."""

    lane: str
    model: str
    status: str
    usage: Mapping[str, Any] | None
    params: Mapping[str, Any] | None  # as written in the file
    marked: Mapping[str, Any] | None = None  # with the shared prefix marked, when --warm marked it
    retried: bool = False


def _prepare(params: Mapping[str, Any], usage: Usage) -> Request:
    """The request as the engine sees it, its prompt scaled to the exact total its result reported."""
    return scale_to_total(parse_request(params, keep_body=False), usage.prompt_tokens)


def _replay(engine: CacheEngine, req: Request, usage: Usage, model: str, at: float) -> Cost | None:
    try:
        res = engine.process(req, at=at, ttft=LIVE_TTFT_S, output_tokens=usage.output_tokens)
    except CacheControlError:
        return None
    return cost(res.usage, model, tier="standard")


def build_cost_report(
    lines: Sequence[Line], warm_usages: Sequence[tuple[str, Mapping[str, Any]]] = ()
) -> CostReport:
    """Sum what the job cost and replay the billed requests live, with and without the prefix cache."""
    rep = CostReport(requests=len(lines))
    plain = CacheEngine()
    marked = CacheEngine()
    t = 0.0
    for ln in lines:
        rep.by_status[ln.status] = rep.by_status.get(ln.status, 0) + 1
        rep.retried += 1 if ln.retried else 0
        if ln.usage is None:
            continue
        u = Usage.from_api(ln.usage)
        rep.billed_lines += 1
        rep.usage = rep.usage + u
        rep.cache_read_lines += 1 if u.cache_read else 0
        c = line_cost(ln.usage, ln.model, ln.lane)
        (rep.batch if ln.lane == "batch" else rep.live_lane).add(c)
        if ln.lane == "batch":  # the same line with every prompt token uncached
            uncached = Usage(input_tokens=u.prompt_tokens, output_tokens=u.output_tokens)
            rep.batch_without_cache.add(cost(uncached, ln.model, tier="batch"))
        if ln.params is not None:
            req = _prepare(ln.params, u)
            rep.live_as_written.add(_replay(plain, req, u, ln.model, t))
            if ln.marked is not None:
                rep.has_prefix_marks = True
                req = _prepare(ln.marked, u)
            rep.live_with_prefix_cache.add(_replay(marked, req, u, ln.model, t))
        t += LIVE_SPACING_S
    for model, usage in warm_usages:
        rep.warm.add(cost(Usage.from_api(usage), model))
    return rep
