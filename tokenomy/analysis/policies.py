"""Caching policies: each decides where a request's cache breakpoints go, as one small class.

A policy answers ``plan(request, ctx) -> Plan``: breakpoints as ``[(block_index, ttl)]``, an
optional top-level automatic ``cache_control``, or "keep what the request already carries".
Policies never bill anything: ``tokenomy.analysis.simulate`` pushes every plan through the one
``CacheEngine`` and prices it with ``tokenomy.pricing``. The same plan is applied to a parsed
``Request`` (``apply_plan``) or to a raw Messages body (``apply_plan_to_body``), so the gateway,
``wrap()`` and ``simulate`` share one function.

Adding a policy is one class with ``name``, ``plan`` and (if it learns) ``observe``; register it
in ``POLICIES``. The online planner lives in ``planner.py``, the lower bound in ``oracle.py``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol

from tokenomy.cache import CacheResult
from tokenomy.errors import UserError
from tokenomy.model import TTL, Block, Request

__all__ = [
    "AsRecordedPolicy",
    "AutoPolicy",
    "LiteLLMInjectionPolicy",
    "NonePolicy",
    "Ping",
    "Plan",
    "PlanContext",
    "Policy",
    "RequestTransform",
    "SystemOnlyPolicy",
    "TransformedPolicy",
    "apply_plan",
    "apply_plan_to_body",
    "base_index",
    "order_ttls",
    "top_index",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """Where one request's breakpoints go.

    ``breakpoints`` are ``(block_index, ttl)`` in any order (applied sorted); ``auto_ttl`` sets
    the top-level automatic ``cache_control``; ``keep`` leaves the request exactly as recorded.
    """

    breakpoints: tuple[tuple[int, TTL], ...] = ()
    auto_ttl: TTL | None = None
    keep: bool = False


KEEP = Plan(keep=True)
NO_CACHE = Plan()


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanContext:
    """What a policy may know when it plans one request: the run, the turn, the time.

    ``at`` is the request's start in seconds (virtual time in a simulation, wall time in the
    gateway); ``turn_index`` counts the run's requests from 0.
    """

    run_id: str
    turn_index: int
    at: float
    ttft: float = 0.0
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping:
    """A keep-alive request a policy sends at ``at``: ``request`` ends at the kept entry."""

    at: float
    request: Request
    run_id: str


class Policy(Protocol):
    """A caching policy. ``observe`` and ``due_pings`` let online policies learn and keep alive;
    stateless policies inherit the no-op versions from ``StatelessPolicy``."""

    @property
    def name(self) -> str: ...

    def plan(self, request: Request, ctx: PlanContext) -> Plan: ...

    def observe(self, request: Request, ctx: PlanContext, result: CacheResult) -> None: ...

    def due_pings(self, until: float) -> list[Ping]: ...


class StatelessPolicy:
    """Base for policies that neither learn nor ping."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def plan(self, request: Request, ctx: PlanContext) -> Plan:
        raise NotImplementedError

    def observe(self, request: Request, ctx: PlanContext, result: CacheResult) -> None:
        return None

    def due_pings(self, until: float) -> list[Ping]:
        return []


def top_index(request: Request) -> int:
    """The last block that may carry ``cache_control`` (thinking and empty text may not), or -1."""
    for b in reversed(request.blocks):
        if b.cacheable:
            return b.index
    return -1


def base_index(request: Request) -> int:
    """The last cacheable block of tools + system (the prefix agents share), or -1."""
    found = -1
    for b in request.blocks:
        if b.section == "messages":
            break
        if b.cacheable:
            found = b.index
    return found


def order_ttls(bps: Mapping[int, TTL]) -> tuple[tuple[int, TTL], ...]:
    """Breakpoints in prompt order, each one before a 1h breakpoint raised to 1h (the API
    requires 1h entries before 5m ones; raising a breakpoint that hits costs nothing)."""
    out: list[tuple[int, TTL]] = []
    seen_1h = False
    for idx, ttl in sorted(bps.items(), reverse=True):
        seen_1h = seen_1h or ttl == "1h"
        out.append((idx, "1h" if seen_1h else ttl))
    return tuple(reversed(out))


class NonePolicy(StatelessPolicy):
    name = "none"
    description = "no cache_control at all (what a naive agent pays)"

    def plan(self, request: Request, ctx: PlanContext) -> Plan:
        return NO_CACHE


class AsRecordedPolicy(StatelessPolicy):
    name = "as_recorded"
    description = "the breakpoints the recorded requests carried (usage-only logs: the recorded usage)"

    def plan(self, request: Request, ctx: PlanContext) -> Plan:
        return KEEP


class AutoPolicy(StatelessPolicy):
    name = "auto"
    description = "the API's top-level automatic cache_control: one 5m breakpoint on the last block"

    def plan(self, request: Request, ctx: PlanContext) -> Plan:
        return Plan(auto_ttl="5m")


class SystemOnlyPolicy(StatelessPolicy):
    name = "system_only"
    description = "one 5m breakpoint after tools + system"

    def plan(self, request: Request, ctx: PlanContext) -> Plan:
        i = base_index(request)
        return Plan(breakpoints=((i, "5m"),)) if i >= 0 else NO_CACHE


class LiteLLMInjectionPolicy(StatelessPolicy):
    """LiteLLM's documented ``cache_control_injection_points: [{location: message, role: system}]``.

    On ``/v1/messages`` (LiteLLM ``AnthropicCacheControlHook.apply_to_anthropic_messages_request``)
    a ``role: system`` point with no system-role message and a top-level ``system`` is applied to
    the top-level system: the marker goes on its last block (a string system becomes one text
    block). Without a ``system`` nothing is injected. docs/simulate.md records the sources.
    """

    name = "litellm_injection"
    description = "LiteLLM cache_control_injection_points [{location: message, role: system}]"

    def plan(self, request: Request, ctx: PlanContext) -> Plan:
        last_system = -1
        for b in request.blocks:
            if b.section == "system":
                last_system = b.index
        if last_system < 0 or not request.blocks[last_system].cacheable:
            return NO_CACHE
        return Plan(breakpoints=((last_system, "5m"),))


# ----------------------------------------------------------------------------------------------
# Context transforms: policies that change what is sent before the caching policy plans it

SideCall = tuple[Request, int]  # an extra request a transform makes (e.g. a summary), and its output tokens


class RequestTransform(Protocol):
    """Rewrites each request before a caching policy plans it (masking, context editing,
    compaction: ``tokenomy.context``). ``transform`` may add side calls, which are billed too;
    ``observe`` gets the engine's result for the rewritten request."""

    @property
    def name(self) -> str: ...

    def transform(
        self, request: Request, *, run_id: str, at: float
    ) -> tuple[Request, Sequence[SideCall]]: ...

    def observe(self, request: Request, *, run_id: str, at: float, result: CacheResult) -> None: ...


class TransformedPolicy:
    """A caching policy (the planner, usually) applied to the requests a transform rewrote.

    ``simulate`` calls ``rewrite`` first, bills its side calls, then plans and bills the
    rewritten request; keep-alive pings are the inner policy's, and their results reach the
    transform too (a ping keeps the cache it counts on alive).
    """

    def __init__(self, name: str, transform: RequestTransform, inner: Policy) -> None:
        self._name = name
        self.transform = transform
        self.inner = inner

    @property
    def name(self) -> str:
        return self._name

    def rewrite(self, request: Request, ctx: PlanContext) -> tuple[Request, Sequence[SideCall]]:
        return self.transform.transform(request, run_id=ctx.run_id, at=ctx.at)

    def plan(self, request: Request, ctx: PlanContext) -> Plan:
        return self.inner.plan(request, ctx)

    def observe(self, request: Request, ctx: PlanContext, result: CacheResult) -> None:
        self.inner.observe(request, ctx, result)
        self.transform.observe(request, run_id=ctx.run_id, at=ctx.at, result=result)

    def observe_ping(self, ping: Ping, result: CacheResult) -> None:
        hook = getattr(self.transform, "observe_ping", None)
        if hook is not None:
            hook(run_id=ping.run_id, at=ping.at, result=result)

    def due_pings(self, until: float) -> list[Ping]:
        return self.inner.due_pings(until)


# ----------------------------------------------------------------------------------------------
# Applying a plan


def apply_plan(request: Request, plan: Plan) -> Request:
    """The request with its markers replaced by the plan's (``keep`` returns it unchanged).

    Only blocks whose marker changes are rebuilt, so applying a plan costs little per request.
    """
    if plan.keep:
        return request
    want: dict[int, TTL] = dict(plan.breakpoints)
    blocks = request.blocks
    changed: list[Block] | None = None
    for b in blocks:
        ttl = want.get(b.index)
        if b.cache_ttl != ttl:
            if changed is None:
                changed = list(blocks)
            changed[b.index] = replace(b, cache_ttl=ttl)
    if changed is None and request.auto_cache_ttl == plan.auto_ttl:
        return request
    return replace(
        request, blocks=tuple(changed) if changed is not None else blocks, auto_cache_ttl=plan.auto_ttl
    )


def _marker(ttl: TTL) -> dict[str, str]:
    return {"type": "ephemeral", "ttl": "1h"} if ttl == "1h" else {"type": "ephemeral"}


def _strip_markers(body: dict[str, Any]) -> None:
    body.pop("cache_control", None)
    for section in ("tools", "system"):
        items = body.get(section)
        if isinstance(items, list):
            for it in items:
                if isinstance(it, dict):
                    it.pop("cache_control", None)
    messages = body.get("messages")
    if isinstance(messages, list):
        for msg in messages:
            content = msg.get("content") if isinstance(msg, dict) else None
            if isinstance(content, list):
                for blk in content:
                    if isinstance(blk, dict):
                        blk.pop("cache_control", None)


def _target(body: dict[str, Any], path: Sequence[str | int]) -> dict[str, Any]:
    """The block dict at a block path, turning a string system/content into one text block."""
    if path[0] == "system":
        system = body.get("system")
        if isinstance(system, str):
            body["system"] = [{"type": "text", "text": system}]
        container: Any = body["system"]
        return dict_at(container, path[1])
    if path[0] == "tools":
        return dict_at(body["tools"], path[1])
    msg = body["messages"][path[1]]
    if isinstance(msg.get("content"), str):
        msg["content"] = [{"type": "text", "text": msg["content"]}]
    return dict_at(msg["content"], path[3])


def dict_at(items: Any, index: Any) -> dict[str, Any]:
    item = items[index]
    if not isinstance(item, dict):
        raise UserError(f"cannot place cache_control at item {index}: it is not a JSON object")
    return item


def apply_plan_to_body(body: Mapping[str, Any], request: Request, plan: Plan) -> dict[str, Any]:
    """A copy of a Messages API body with the plan's ``cache_control`` markers in place.

    ``request`` must be ``parse_request(body)``: its block paths say where each marker goes.
    Existing markers are dropped (unless ``plan.keep``); a string ``system`` or ``content`` that
    receives a marker becomes the one-text-block form, which is the same prompt.
    """
    out = copy.deepcopy(dict(body))
    if plan.keep:
        return out
    _strip_markers(out)
    for index, ttl in sorted(plan.breakpoints):
        _target(out, request.blocks[index].path)["cache_control"] = _marker(ttl)
    if plan.auto_ttl is not None:
        out["cache_control"] = _marker(plan.auto_ttl)
    return out
