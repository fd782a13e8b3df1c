"""Breakpoints and TTLs in optimize mode: the ``tokenomy`` planner (``TokenomyPlanner``), the same
policy ``tokenomy simulate`` evaluates, applied to the raw body with ``apply_plan_to_body``.

What the gateway adds is only what a live proxy must: one planner per API-key scope, the
client's own breakpoints kept (the planner's fill the free slots, at most 4 in all, in a valid
TTL order), the ``ttl_1h`` / ``breakpoints`` switches, and feeding each response back to the
planner through ``observe``. Keep-alive pings (``due_pings``) are not sent: the gateway would
have to hold a client's API key to send them, and it holds none.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from tokenomy.analysis.planner import TokenomyPlanner
from tokenomy.analysis.policies import Plan, PlanContext, apply_plan, apply_plan_to_body
from tokenomy.cache import CacheResult, effective_breakpoints
from tokenomy.errors import ApiRequestError
from tokenomy.model import TTL, Request

__all__ = ["BreakpointPlanner"]

MAX_BREAKPOINTS = 4


def merge_client_breakpoints(request: Request, planned: dict[int, TTL]) -> tuple[tuple[int, TTL], ...]:
    """Client breakpoints win; planner ones fill free slots, deepest first; TTLs ordered 1h→5m."""
    client = {b.index: b.cache_ttl for b in request.blocks if b.cache_ttl is not None}
    merged: dict[int, TTL] = dict(client)
    for idx in sorted(planned, reverse=True):
        if len(merged) >= MAX_BREAKPOINTS:
            break
        merged.setdefault(idx, planned[idx])
    # a 1h entry may not follow a 5m one: planner 5m breakpoints before a client 1h one become 1h
    out: list[tuple[int, TTL]] = []
    seen_1h = False
    for idx in sorted(merged, reverse=True):
        ttl = merged[idx]
        if seen_1h and ttl == "5m" and idx not in client:
            ttl = "1h"
        seen_1h = seen_1h or ttl == "1h"
        out.append((idx, ttl))
    return tuple(sorted(out))


class BreakpointPlanner:
    """One ``TokenomyPlanner`` per API-key scope (caches are per workspace), bounded in number."""

    def __init__(self, *, place: bool, allow_1h: bool, max_scopes: int = 256) -> None:
        self.place = place
        self.allow_1h = allow_1h
        self.max_scopes = max_scopes
        self._planners: OrderedDict[str, TokenomyPlanner] = OrderedDict()

    def _planner(self, scope: str) -> TokenomyPlanner:
        p = self._planners.get(scope)
        if p is None:
            p = self._planners[scope] = TokenomyPlanner()
            while len(self._planners) > self.max_scopes:
                self._planners.popitem(last=False)
        else:
            self._planners.move_to_end(scope)
        return p

    def plan(
        self, body: dict[str, Any], request: Request, *, scope: str, ctx: PlanContext
    ) -> tuple[dict[str, Any], tuple[str, ...]] | None:
        if request.auto_cache_ttl is not None:
            return None  # the client chose the API's automatic caching: leave it to the API
        plan = self._planner(scope).plan(request, ctx)
        if plan.keep:
            return None
        planned: dict[int, TTL] = dict(plan.breakpoints)
        edits: list[str] = []
        if not self.allow_1h:
            planned = {i: "5m" for i in planned}
        if self.place:
            bps = merge_client_breakpoints(request, planned)
            if tuple(sorted(bps)) != tuple(
                sorted((b.index, b.cache_ttl) for b in request.blocks if b.cache_ttl)
            ):
                edits.append("breakpoints")
        else:
            wants_1h = any(t == "1h" for t in planned.values())
            bps = tuple((b.index, "1h" if wants_1h else b.cache_ttl) for b in request.blocks if b.cache_ttl)
        if any(t == "1h" for _, t in bps) and not any(b.cache_ttl == "1h" for b in request.blocks):
            edits.append("ttl_1h")
        if not edits:
            return None
        new_plan = Plan(breakpoints=bps)
        try:
            effective_breakpoints(apply_plan(request, new_plan))
        except ApiRequestError:
            return None  # never send a request the API would refuse because of us
        return apply_plan_to_body(body, request, new_plan), tuple(edits)

    def observe(self, request: Request, *, scope: str, ctx: PlanContext, result: CacheResult) -> None:
        self._planner(scope).observe(request, ctx, result)
