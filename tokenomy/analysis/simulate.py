"""``simulate``: replay recorded runs in virtual time under several caching policies.

Each policy gets its own ``CacheEngine``; every step of the workload (and every keep-alive ping
a policy sends) goes through ``engine.process`` at its recorded start time, and the usage the
engine bills is priced with ``tokenomy.pricing.cost``. Nothing here decides what hits: the
engine does. The oracle is always replayed too, so every bill has its floor beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tokenomy.analysis._replay import Step, Workload, build_workload
from tokenomy.analysis.oracle import OraclePolicy
from tokenomy.analysis.planner import TokenomyPlanner
from tokenomy.analysis.policies import (
    AsRecordedPolicy,
    AutoPolicy,
    LiteLLMInjectionPolicy,
    NonePolicy,
    PlanContext,
    Policy,
    RequestTransform,
    SystemOnlyPolicy,
    TransformedPolicy,
    apply_plan,
)
from tokenomy.cache import CacheEngine, CacheOptions
from tokenomy.context import SIMULATE_TRANSFORMS
from tokenomy.errors import UserError
from tokenomy.model import Request, Run, Usage
from tokenomy.pricing import cost

__all__ = [
    "POLICY_NAMES",
    "PolicyResult",
    "SimulationResult",
    "make_policy",
    "replay",
    "simulate",
]

POLICY_NAMES: tuple[str, ...] = (
    "none",
    "as_recorded",
    "auto",
    "system_only",
    "litellm_injection",
    "tokenomy",
    "oracle",
)
_TAIL_S = 2 * 3600.0  # after the last request, pings due within this long are still sent

_SIMPLE: dict[str, Callable[[], Policy]] = {
    "none": NonePolicy,
    "as_recorded": AsRecordedPolicy,
    "auto": AutoPolicy,
    "system_only": SystemOnlyPolicy,
    "litellm_injection": LiteLLMInjectionPolicy,
    "tokenomy": TokenomyPlanner,
}


Transforms = Mapping[str, Callable[[], RequestTransform]]


def make_policy(name: str, workload: Workload, transforms: Transforms | None = None) -> Policy:
    """A fresh policy instance by name (the oracle needs the whole workload in advance).

    A name in ``transforms`` (``tokenomy.context.SIMULATE_TRANSFORMS``: ``mask``, ``compact``, ...)
    is that context transform followed by the ``tokenomy`` planner.
    """
    if name == "oracle":
        return OraclePolicy(workload)
    if transforms is not None and name in transforms:
        return TransformedPolicy(name, transforms[name](), TokenomyPlanner())
    factory = _SIMPLE.get(name)
    if factory is None:
        known = [*POLICY_NAMES, *(transforms or {})]
        raise UserError(f"unknown policy {name!r}: choose from {', '.join(known)}")
    return factory()


@dataclass(slots=True, kw_only=True)
class PolicyResult:
    """One policy's bill over a workload."""

    name: str
    cost_usd: float | None = 0.0
    usage: Usage = field(default_factory=Usage)
    requests: int = 0
    pings: int = 0
    ping_cost_usd: float = 0.0
    unpriced: int = 0
    by_run: dict[str, float] = field(default_factory=dict)
    side_calls: int = 0  # extra requests a context transform made (summaries), billed in cost_usd
    side_cost_usd: float = 0.0

    @property
    def prompt_tokens(self) -> int:
        return self.usage.prompt_tokens

    @property
    def hit_rate(self) -> float:
        """Share of prompt tokens read from cache."""
        p = self.usage.prompt_tokens
        return self.usage.cache_read / p if p else 0.0

    def _add(self, usage: Usage, model: str, run_id: str) -> None:
        self.usage = self.usage + usage
        c = cost(usage, model)
        if c is None:
            self.unpriced += 1
            self.cost_usd = None
            return
        if self.cost_usd is not None:
            self.cost_usd += c.total
        self.by_run[run_id] = self.by_run.get(run_id, 0.0) + c.total


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationResult:
    """Every policy's bill over one workload, oracle included."""

    runs: int
    requests: int
    policies: dict[str, PolicyResult]
    notes: tuple[str, ...] = ()

    def ratio(self, name: str, against: str) -> float | None:
        a = self.policies[name].cost_usd
        b = self.policies[against].cost_usd if against in self.policies else None
        if a is None or b is None or b <= 0:
            return None
        return a / b

    def to_json(self) -> dict[str, Any]:
        """``{"runs", "requests", "policies": {NAME: {cost_usd, vs_none, vs_oracle, cache_read_tokens,
        cache_write_tokens, input_tokens}}}`` — the shape ``tokenomy simulate --json`` prints."""
        out: dict[str, Any] = {}
        for name, r in self.policies.items():
            out[name] = {
                "cost_usd": None if r.cost_usd is None else round(r.cost_usd, 6),
                "vs_none": _round(self.ratio(name, "none")),
                "vs_oracle": _round(self.ratio(name, "oracle")),
                "cache_read_tokens": r.usage.cache_read,
                "cache_write_tokens": r.usage.cache_creation_input_tokens,
                "input_tokens": r.usage.input_tokens,
            }
        return {"runs": self.runs, "requests": self.requests, "policies": out}


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def replay(workload: Workload, policy: Policy, *, options: CacheOptions | None = None) -> PolicyResult:
    """Replay the workload under one policy through a fresh ``CacheEngine`` in virtual time."""
    engine = CacheEngine(options)
    result = PolicyResult(name=policy.name)
    keep_recorded = policy.name == "as_recorded"
    steps: Sequence[Step] = workload.steps
    for step in steps:
        _pings(engine, policy, step.at, result)
        if keep_recorded and step.reconstructed and step.recorded is not None:
            result._add(step.recorded, step.request.model, step.run_id)
            result.requests += 1
            continue
        ctx = PlanContext(
            run_id=step.run_id, turn_index=step.index, at=step.at, ttft=step.ttft, meta={"kind": step.kind}
        )
        request = step.request
        if isinstance(policy, TransformedPolicy):
            request, side = policy.rewrite(request, ctx)
            for side_request, side_output in side:
                _side_call(engine, side_request, side_output, step, result)
        plan = policy.plan(request, ctx)
        res = engine.process(
            apply_plan(request, plan),
            at=step.at,
            ttft=step.ttft,
            output_tokens=step.output_tokens,
            service_tier=step.service_tier,
        )
        policy.observe(request, ctx, res)
        result._add(res.usage, step.request.model, step.run_id)
        result.requests += 1
    if steps:
        _pings(engine, policy, steps[-1].at + _TAIL_S, result)
    return result


def _side_call(engine: CacheEngine, request: Request, output: int, step: Step, result: PolicyResult) -> None:
    """Bill a transform's extra request (a summary call) at the step's time."""
    res = engine.process(
        request, at=step.at, ttft=step.ttft, output_tokens=output, service_tier=step.service_tier
    )
    before = result.cost_usd
    result._add(res.usage, request.model, step.run_id)
    result.side_calls += 1
    if before is not None and result.cost_usd is not None:
        result.side_cost_usd += result.cost_usd - before


def _pings(engine: CacheEngine, policy: Policy, until: float, result: PolicyResult) -> None:
    for ping in policy.due_pings(until):
        res = engine.process(ping.request, at=ping.at, ttft=0.0)
        if isinstance(policy, TransformedPolicy):
            policy.observe_ping(ping, res)
        before = result.cost_usd
        result._add(res.usage, ping.request.model, ping.run_id)
        result.pings += 1
        if before is not None and result.cost_usd is not None:
            result.ping_cost_usd += result.cost_usd - before


def simulate(
    runs: Iterable[Run] | Workload,
    policies: Sequence[str] = POLICY_NAMES,
    *,
    model: str | None = None,
    options: CacheOptions | None = None,
    transforms: Transforms | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> SimulationResult:
    """Replay ``runs`` under each named policy (``oracle`` always included) and bill each.

    ``progress(name, done, total)`` is called before each policy is replayed (a large history
    takes a minute: the CLI shows which policy it is on).

    ``model`` re-targets every request to another model first (a routing what-if): prices,
    minimum cacheable length and tokenizer family follow the new model. The context policies
    (``mask``, ``mask_naive``, ``context_editing``, ``compact``: ``tokenomy.context``) are known
    by name; ``transforms`` replaces that registry. Each is replayed as the transform followed
    by the ``tokenomy`` planner, after the caching policies.
    """
    workload = runs if isinstance(runs, Workload) else build_workload(runs, model=model)
    names = list(dict.fromkeys([*policies, "none", "oracle"]))
    extra = dict(SIMULATE_TRANSFORMS if transforms is None else transforms)
    for n in names:
        if n not in POLICY_NAMES and n not in extra:
            known = [*POLICY_NAMES, *extra]
            raise UserError(f"unknown policy {n!r}: choose from {', '.join(known)}")
    ordered = [n for n in POLICY_NAMES if n in names] + [
        n for n in extra if n in names and n not in POLICY_NAMES
    ]
    results: dict[str, PolicyResult] = {}
    for k, n in enumerate(ordered):
        if progress is not None:
            progress(n, k, len(ordered))
        results[n] = replay(workload, make_policy(n, workload, extra), options=options)
    return SimulationResult(
        runs=workload.runs, requests=len(workload.steps), policies=results, notes=workload.notes
    )
