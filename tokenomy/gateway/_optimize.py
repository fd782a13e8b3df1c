"""optimize mode: rewrites that change only how a request caches, never what the model is asked.

Three switchable rewrites, all pure (body in, body out, no I/O):

- ``stable_prefix``: canonical (sorted) key order inside tool schemas and a stable tool order
  (sorted by name). Breakpoint markers on tools stay at the same positions, so "cache all tools"
  on the last tool keeps meaning exactly that.
- ``breakpoints``: cache breakpoints placed by the planner (``tokenomy.analysis.planner``), the
  same function ``tokenomy simulate`` evaluates; client breakpoints are respected.
- ``ttl_1h``: the planner picks the 1h TTL when the run's request gaps call for it.

When no rewrite changes anything the caller forwards the client's original bytes.

These are the cache rewrites (``ALL_REWRITES``, on by default in optimize mode). The rewrites
that change what the model sees (masking, context editing, compaction) are opt-in and live in
``tokenomy.gateway._context``; they run first, and these run on their result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tokenomy.model import Request

__all__ = ["ALL_REWRITES", "Rewrite", "optimize", "stable_prefix"]

ALL_REWRITES: frozenset[str] = frozenset({"stable_prefix", "breakpoints", "ttl_1h"})  # the cache rewrites


@dataclass(frozen=True, slots=True)
class Rewrite:
    body: dict[str, Any]
    edits: tuple[str, ...]


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(v) for v in value]
    return value


def stable_prefix(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The body with tool schemas in canonical key order and tools sorted by name, or None when
    it already is. ``cache_control`` markers keep their tool positions."""
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools or not all(isinstance(t, dict) for t in tools):
        return None
    markers = [t.get("cache_control") for t in tools]
    stripped = [{k: v for k, v in t.items() if k != "cache_control"} for t in tools]
    canon = []
    for t in stripped:
        c = dict(t)
        for key in ("input_schema", "parameters"):
            if isinstance(c.get(key), dict):
                c[key] = _sorted_keys(c[key])
        canon.append(c)
    if all(isinstance(t.get("name"), str) for t in canon):
        canon.sort(key=lambda t: str(t["name"]))
    new_tools = []
    for t, cc in zip(canon, markers, strict=True):
        new_tools.append({**t, "cache_control": cc} if cc is not None else t)
    if _same_order(new_tools, tools):
        return None
    out = dict(body)
    out["tools"] = new_tools
    return out


def _same_order(a: Any, b: Any) -> bool:
    """Equal *and* with the same key order everywhere (dict equality ignores order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same_order(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_order(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


PlanFn = Callable[[dict[str, Any], Request], "tuple[dict[str, Any], tuple[str, ...]] | None"]


def optimize(
    body: dict[str, Any],
    request: Request,
    rewrites: frozenset[str],
    *,
    parse: Callable[[dict[str, Any]], Request],
    plan: PlanFn,
) -> Rewrite | None:
    """Apply the enabled rewrites in order; None when nothing changed.

    ``parse`` re-parses a rewritten body (breakpoints are planned on the prefix as it will be
    sent); ``plan`` places breakpoints and TTLs (``tokenomy.gateway._plan``).
    """
    edits: list[str] = []
    current = body
    current_req = request
    if "stable_prefix" in rewrites:
        sp = stable_prefix(current)
        if sp is not None:
            current = sp
            current_req = parse(current)
            edits.append("stable_prefix")
    if rewrites & {"breakpoints", "ttl_1h"}:
        planned = plan(current, current_req)
        if planned is not None and not _same_order(planned[0], current):
            current = planned[0]
            edits.extend(planned[1])
    if not edits:
        return None
    return Rewrite(body=current, edits=tuple(edits))
