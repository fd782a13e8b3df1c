"""``tokenomy doctor``: find every cache miss in a run, name its cause, price it, say the fix.

For every request after the first, the doctor decides what the cache should have read (the
previous request's cached prefix) and compares it with what was read. When less was read, it
names one cause:

- with full request bodies (request logs, the gateway, trajectories) it replays the run through
  the one ``CacheEngine`` in virtual time and compares the two requests block by block: the
  first differing block names the place, ``_doctor_diff`` the kind of change;
- with usage only (Claude Code transcripts) it reasons from the usage numbers, the gaps, the
  model ids and the compaction markers, and says the evidence is usage-only.

Recorded usage, when a log has it, decides *whether* a request missed and by how much; the
engine and the bytes say *why*. Dollars lost are what the request paid for the missed tokens
minus what reading them would have cost, at the request's model and tier (``pricing.cost``).

``diagnose_run`` / ``diagnose`` work on whole runs; ``LiveDoctor`` takes one turn at a time
(for the gateway) and keeps only the previous request of each run.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from tokenomy.analysis._doctor_diff import Change, ChangeKind, describe_change, first_divergence
from tokenomy.analysis._doctor_evidence import (
    change_detail,
    changed_params,
    duration,
    price_miss,
    same_model,
    ttft_of,
    ttl_or_pending,
)
from tokenomy.analysis._doctor_fixes import fix_for, ttl_fix
from tokenomy.cache import CacheEngine, CacheOptions, CacheResult, min_cacheable_tokens
from tokenomy.errors import CacheControlError
from tokenomy.model import TTL, TTL_SECONDS, Request, Run, Turn, Usage

__all__ = [
    "CAUSES",
    "Cause",
    "CauseSummary",
    "DoctorOptions",
    "DoctorReport",
    "LiveDoctor",
    "Miss",
    "RunDiagnosis",
    "TurnCheck",
    "diagnose",
    "diagnose_run",
]

Cause = Literal[
    "prefix_changed",
    "model_changed",
    "params_changed",
    "ttl_expired",
    "below_minimum",
    "lookback_exceeded",
    "no_breakpoint",
    "concurrent",
    "compaction",
    "unknown",
]
CAUSES: tuple[Cause, ...] = get_args(Cause)
Evidence = Literal["byte_level", "usage_only", "live"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DoctorOptions:
    """Knobs of the diagnosis; the defaults suit logs.

    - ``tolerance_tokens``: a read this close to the expected one is not a miss (token
      estimates and framing make tiny differences).
    - ``default_ttft_s``: seconds to first token when a log does not say (entries become
      readable then; 0 means "at once", so no request is judged concurrent without timing).
    - ``cache``: the engine's readings of open rules (``CacheOptions``).
    - ``max_live_runs``: how many runs ``LiveDoctor`` remembers before forgetting the oldest.
    """

    tolerance_tokens: int = 16
    default_ttft_s: float = 0.0
    cache: CacheOptions | None = None
    workspace: str = "default"
    max_live_runs: int = 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Miss:
    """One request that read less from the cache than it should have."""

    request_index: int  # counts the run's API requests from 1
    request_id: str | None
    cause: Cause
    tokens_rewritten: int
    usd_lost: float | None  # None: the model's price is unknown
    location: str
    detail: str
    fix: str
    evidence: Evidence
    model: str
    kind: ChangeKind | None = None  # the kind of prefix change, for prefix_changed
    before: str = ""
    after: str = ""
    expected_read: int = 0
    actual_read: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "request_index": self.request_index,
            "request_id": self.request_id,
            "cause": self.cause,
            "tokens_rewritten": self.tokens_rewritten,
            "usd_lost": None if self.usd_lost is None else round(self.usd_lost, 6),
            "location": self.location,
            "detail": self.detail,
            "fix": self.fix,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnCheck:
    """What the doctor saw at one request: for the turn-by-turn view."""

    request_index: int
    request_id: str | None
    model: str
    started_at: float | None
    gap_s: float | None
    usage: Usage | None
    expected_read: int
    evidence: Evidence | None
    miss: Miss | None = None
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunDiagnosis:
    run_id: str
    requests: int
    misses: tuple[Miss, ...]
    turns: tuple[TurnCheck, ...] = ()
    title: str | None = None
    source: str = ""

    @property
    def evidence(self) -> str:
        kinds = {t.evidence for t in self.turns if t.evidence is not None}
        if not kinds:
            return "none"
        return kinds.pop() if len(kinds) == 1 else "mixed"

    @property
    def usd_lost(self) -> float:
        return sum(m.usd_lost for m in self.misses if m.usd_lost is not None)

    @property
    def tokens_rewritten(self) -> int:
        return sum(m.tokens_rewritten for m in self.misses)

    @property
    def by_cause(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for m in self.misses:
            out[m.cause] = out.get(m.cause, 0.0) + (m.usd_lost or 0.0)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "requests": self.requests,
            "misses": [m.to_json() for m in self.misses],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CauseSummary:
    """One cause across all runs: the ranked list's row."""

    cause: Cause
    misses: int
    runs: int
    tokens_rewritten: int
    usd_lost: float
    unpriced: int  # misses on models without a known price
    fix: str
    example: Miss


@dataclass(frozen=True, slots=True, kw_only=True)
class DoctorReport:
    runs: tuple[RunDiagnosis, ...]
    causes: tuple[CauseSummary, ...] = field(default_factory=tuple)

    @property
    def usd_lost(self) -> float:
        return sum(r.usd_lost for r in self.runs)

    @property
    def misses(self) -> int:
        return sum(len(r.misses) for r in self.runs)

    @property
    def by_cause(self) -> dict[str, float]:
        return {c.cause: c.usd_lost for c in self.causes}

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": [r.to_json() for r in self.runs],
            "totals": {
                "usd_lost": round(self.usd_lost, 6),
                "by_cause": {k: round(v, 6) for k, v in self.by_cause.items()},
            },
        }


# ----------------------------------------------------------------------------------------------
# Public entry points


def diagnose_run(run: Run, *, options: DoctorOptions | None = None) -> RunDiagnosis:
    """Every miss of one run, in request order, plus a per-turn record."""
    opts = options or DoctorOptions()
    state = _RunState(opts)
    checks = [state.step(turn) for turn in run.turns]
    misses = [c.miss for c in checks if c.miss is not None]
    if any(m.cause == "ttl_expired" for m in misses):
        gaps = [c.gap_s for c in checks if c.gap_s is not None]
        misses = [_with_run_ttl_fix(m, gaps) for m in misses]
        by_index = {m.request_index: m for m in misses}
        checks = [replace(c, miss=by_index.get(c.request_index)) if c.miss else c for c in checks]
    return RunDiagnosis(
        run_id=run.run_id,
        requests=len(run.turns),
        misses=tuple(misses),
        turns=tuple(checks),
        title=run.title,
        source=run.source,
    )


def diagnose(runs: Iterable[Run], *, options: DoctorOptions | None = None) -> DoctorReport:
    """Diagnose every run, then rank the causes by dollars lost (costliest first)."""
    diagnoses = tuple(diagnose_run(r, options=options) for r in runs)
    return DoctorReport(runs=diagnoses, causes=summarize(diagnoses))


def summarize(diagnoses: Iterable[RunDiagnosis]) -> tuple[CauseSummary, ...]:
    """Misses grouped by cause; the fix shown is the one given most often for that cause."""
    groups: dict[Cause, list[tuple[str, Miss]]] = {}
    for d in diagnoses:
        for m in d.misses:
            groups.setdefault(m.cause, []).append((d.run_id, m))
    out: list[CauseSummary] = []
    for cause, items in groups.items():
        fixes = Counter(m.fix for _, m in items)
        costliest = max(items, key=lambda rm: (rm[1].usd_lost or 0.0, rm[1].tokens_rewritten))[1]
        out.append(
            CauseSummary(
                cause=cause,
                misses=len(items),
                runs=len({run_id for run_id, _ in items}),
                tokens_rewritten=sum(m.tokens_rewritten for _, m in items),
                usd_lost=sum(m.usd_lost or 0.0 for _, m in items),
                unpriced=sum(1 for _, m in items if m.usd_lost is None),
                fix=fixes.most_common(1)[0][0],
                example=costliest,
            )
        )
    out.sort(key=lambda c: (-c.usd_lost, -c.tokens_rewritten, c.cause))
    return tuple(out)


class LiveDoctor:
    """Diagnoses a run as it happens, one turn at a time (for the gateway).

    Memory is bounded: per run it keeps the previous request and that run's live cache entries,
    and it forgets the least recently used run beyond ``options.max_live_runs``.
    """

    def __init__(self, options: DoctorOptions | None = None) -> None:
        self.options = options or DoctorOptions()
        self._runs: OrderedDict[str, _RunState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._runs)

    def feed(self, turn: Turn, *, run_id: str) -> Miss | None:
        """Diagnose ``turn`` against the previous request of ``run_id``; None when it read what it should."""
        state = self._runs.get(run_id)
        if state is None:
            state = _RunState(self.options, live=True)
            self._runs[run_id] = state
            while len(self._runs) > max(1, self.options.max_live_runs):
                self._runs.popitem(last=False)
        else:
            self._runs.move_to_end(run_id)
        return state.step(turn).miss

    def forget(self, run_id: str) -> None:
        self._runs.pop(run_id, None)


# ----------------------------------------------------------------------------------------------
# The per-run state machine both entry points share


@dataclass(slots=True)
class _Prev:
    turn: Turn
    request: Request | None
    result: CacheResult | None
    usage: Usage
    at: float | None
    index: int


class _RunState:
    def __init__(self, options: DoctorOptions, *, live: bool = False) -> None:
        self.options = options
        self.engine = CacheEngine(options.cache)
        self.prev: _Prev | None = None
        self.index = 0
        self.live = live
        self.long_gaps: list[float] = []  # bounded: only min and max are kept
        self.last_write_ttl: TTL = "5m"  # usage only: the TTL of the run's latest cache write

    def step(self, turn: Turn) -> TurnCheck:
        self.index += 1
        prev = self.prev
        at = turn.started_at
        clock = at if at is not None else (prev.at if prev is not None and prev.at is not None else 0.0)
        result: CacheResult | None = None
        note = ""
        if turn.request is not None:
            try:
                result = self.engine.process(
                    turn.request,
                    workspace=self.options.workspace,
                    at=clock,
                    ttft=ttft_of(turn, self.options.default_ttft_s),
                    output_tokens=turn.usage.output_tokens if turn.usage else 0,
                    service_tier=turn.usage.service_tier if turn.usage else "standard",
                )
            except CacheControlError as e:
                note = f"the API would refuse this request: {e}"
            if self.live and len(self.engine) > 64:
                self.engine.sweep(clock)
        usage = turn.usage if turn.usage is not None else (result.usage if result is not None else None)
        gap = at - prev.at if at is not None and prev is not None and prev.at is not None else None
        if gap is not None and gap > TTL_SECONDS["5m"]:
            self.long_gaps = [min([gap, *self.long_gaps]), max([gap, *self.long_gaps])]
        check = TurnCheck(
            request_index=self.index,
            request_id=turn.request_id,
            model=turn.model or (turn.request.model if turn.request else ""),
            started_at=at,
            gap_s=gap,
            usage=usage,
            expected_read=0,
            evidence=None,
            note=note,
        )
        if usage is None or (turn.status is not None and turn.status >= 400 and turn.usage is None):
            return check  # a failed request caches nothing; the next one compares with the one before
        if prev is not None:
            if (
                turn.request is not None
                and prev.request is not None
                and result is not None
                and prev.result is not None
            ):
                check = self._byte_level(check, turn, turn.request, result, usage, prev, gap)
            elif isinstance(turn.meta.get("diagnosis"), Mapping):
                check = self._recorded(check, turn, usage, turn.meta["diagnosis"])
            else:
                check = self._usage_only(check, turn, usage, prev, gap)
        if usage.cache_write_1h or usage.cache_write_5m:
            self.last_write_ttl = "1h" if usage.cache_write_1h else "5m"
        self.prev = _Prev(
            turn=turn, request=turn.request, result=result, usage=usage, at=at, index=self.index
        )
        return check

    # -- recorded live ------------------------------------------------------------------------

    def _recorded(self, check: TurnCheck, turn: Turn, usage: Usage, diag: Mapping[str, Any]) -> TurnCheck:
        """A gateway ledger row without its body: the verdict the live doctor reached while it
        had the full request (byte level) is the best evidence left."""
        cause = diag.get("cause")
        if cause not in CAUSES:
            return replace(check, evidence="live")
        usd = diag.get("usd_lost")
        miss = Miss(
            request_index=check.request_index,
            request_id=check.request_id,
            cause=cause,
            tokens_rewritten=int(diag.get("tokens_rewritten") or 0),
            usd_lost=float(usd) if isinstance(usd, (int, float)) else None,
            location=str(diag.get("location") or ""),
            detail=str(diag.get("detail") or ""),
            fix=str(diag.get("fix"))
            if diag.get("fix")
            else fix_for(
                cause,
                kind=None,
                location=str(diag.get("location") or ""),
                model=check.model,
                gaps=(),
                evidence="live",
            ),
            evidence="live",
            model=check.model,
            actual_read=usage.cache_read,
        )
        return replace(check, evidence="live", miss=miss)

    # -- usage only ---------------------------------------------------------------------------

    def _usage_only(
        self, check: TurnCheck, turn: Turn, usage: Usage, prev: _Prev, gap: float | None
    ) -> TurnCheck:
        pu = prev.usage
        expected = pu.cache_read + pu.cache_creation_input_tokens
        check = replace(check, expected_read=expected, evidence="usage_only")
        actual = usage.cache_read
        if expected <= 0 or actual >= expected - self.options.tolerance_tokens:
            return check
        missed = expected - actual
        if actual == 0:
            # Nothing was read: the whole prompt went into a fresh cache, and without the bodies
            # this turn's own new tokens cannot be told apart from the re-written ones.
            missed = max(missed, usage.cache_creation_input_tokens)
        model, prev_model = check.model, prev.turn.model or ""
        # a turn that only read keeps the TTL its entry was written with
        ttl: TTL = "1h" if pu.cache_write_1h > 0 else self.last_write_ttl
        also: list[str] = []
        if not same_model(model, prev_model):
            also.append(f"the model also changed ({prev_model} → {model})")
        if gap is not None and gap > TTL_SECONDS[ttl]:
            also.append(f"{duration(gap)} had passed since the previous request ({ttl} TTL)")
        read_txt = f"read {actual:,} of the {expected:,} tokens the previous request had cached"
        cause: Cause
        if turn.compaction_before or turn.is_compaction:
            cause, location = "compaction", "messages"
            detail = f"the conversation was compacted before this request, so its history was re-written: {read_txt}"
        elif not same_model(model, prev_model):
            cause, location = "model_changed", "model"
            detail = (
                f"the model changed from {prev_model} to {model}; caches are per model, so this request "
                f"{read_txt} and wrote {usage.cache_creation_input_tokens:,} tokens to a new cache"
            )
            also = also[1:]
        elif gap is not None and gap > TTL_SECONDS[ttl]:
            cause, location = "ttl_expired", "cache_control"
            detail = (
                f"{duration(gap)} passed since the previous request, longer than the {ttl} TTL: it {read_txt}"
            )
            also = []
        else:
            cause, location = "unknown", f"prompt token {actual:,}"
            detail = (
                f"the cache read stopped at token {actual:,} of {expected:,}: the prompt changed near there, "
                "or the breakpoint moved more than 20 blocks on"
            )
            if gap is not None:
                detail += (
                    f"; it came {duration(gap)} after the previous request (transcript times are approximate)"
                )
        if also:
            detail += "; " + "; ".join(also)
        detail += " (usage-only evidence: the log has no request bodies)"
        miss = self._miss(
            check, turn, cause, missed, usage, location, detail, "usage_only", expected, actual, gap=gap
        )
        return replace(check, miss=miss)

    # -- full requests ------------------------------------------------------------------------

    def _byte_level(
        self,
        check: TurnCheck,
        turn: Turn,
        cur: Request,
        result: CacheResult,
        usage: Usage,
        prev: _Prev,
        gap: float | None,
    ) -> TurnCheck:
        p = prev.request
        assert p is not None and prev.result is not None
        d = first_divergence(p, cur)
        scale = 1.0
        if not p.tokens_exact and p.total_tokens > 0 and prev.usage.prompt_tokens > 0:
            scale = prev.usage.prompt_tokens / p.total_tokens
        prev_bps = prev.result.breakpoints
        pb = max((o.block_index for o in prev_bps), default=None)
        minimum = min_cacheable_tokens(p.model)
        if pb is not None:
            ideal = round(p.tokens_through(pb) * scale)
        else:
            ideal = round(p.tokens_through(d - 1) * scale) if d > 0 else 0
            if ideal < minimum:
                return replace(check, evidence="byte_level")  # caching neither tried nor possible
        usage_expected = prev.usage.cache_read + prev.usage.cache_creation_input_tokens
        expected = usage_expected if usage_expected > 0 else ideal
        check = replace(check, expected_read=expected, evidence="byte_level")
        actual = usage.cache_read
        if actual >= expected - self.options.tolerance_tokens:
            return check
        missed = expected - actual
        cause, location, detail, change = self._explain(turn, cur, result, prev, p, pb, d, gap, minimum)
        if cause in ("no_breakpoint", "below_minimum"):
            detail = f"{detail}; the {expected:,} tokens it shares with request {prev.index} were billed as new input"
        else:
            detail = f"{detail}; it read {actual:,} of the {expected:,} tokens cached by request {prev.index}"
        miss = self._miss(
            check,
            turn,
            cause,
            missed,
            usage,
            location,
            detail,
            "byte_level",
            expected,
            actual,
            change=change,
            gap=gap,
        )
        return replace(check, miss=miss)

    def _explain(
        self,
        turn: Turn,
        cur: Request,
        result: CacheResult,
        prev: _Prev,
        p: Request,
        pb: int | None,
        d: int,
        gap: float | None,
        minimum: int,
    ) -> tuple[Cause, str, str, Change | None]:
        """One cause for a miss, checked from the most to the least decisive evidence."""
        change = describe_change(p, cur, d) if d < max(len(p.blocks), len(cur.blocks)) else None
        if turn.compaction_before or turn.is_compaction:
            where = change.location if change is not None else "messages"
            return "compaction", where, "the conversation was compacted before this request", change
        if not same_model(cur.model, p.model):
            return (
                "model_changed",
                "model",
                f"the model changed from {p.model} to {cur.model}; caches are per model",
                None,
            )
        params = changed_params(p, cur, pb)
        if params is not None:
            name, before, after = params
            return "params_changed", name, f"{name} changed from {before} to {after}", None
        if pb is not None and d <= pb and change is not None:
            return "prefix_changed", change.location, change_detail(change, p, pb), change
        outcome = ttl_or_pending(result)
        if outcome is not None:
            return self._timing(cur, result, outcome, gap)
        if pb is None:
            return (
                "no_breakpoint",
                "cache_control",
                f"request {prev.index} had no cache_control, so it cached nothing",
                None,
            )
        if prev.result is not None and not any(o.qualifies for o in prev.result.breakpoints):
            tokens = max(o.tokens for o in prev.result.breakpoints)
            return (
                "below_minimum",
                p.blocks[pb].doc_path,
                f"the prefix up to the breakpoint at {p.blocks[pb].doc_path} is {tokens:,} tokens, below "
                f"{p.model}'s minimum of {minimum:,}, so nothing was cached",
                None,
            )
        if not result.breakpoints:
            return (
                "no_breakpoint",
                "cache_control",
                "this request has no cache_control, so it could read nothing",
                None,
            )
        lookback = self._lookback_gap(cur, result, pb)
        if lookback is not None:
            bp, distance = lookback
            return (
                "lookback_exceeded",
                cur.blocks[bp].doc_path,
                f"the breakpoint at {cur.blocks[bp].doc_path} is {distance} positions after the entry written at "
                f"{p.blocks[pb].doc_path}; the API looks back only {self.engine.options.lookback}",
                None,
            )
        return (
            "unknown",
            cur.blocks[pb].doc_path if pb < len(cur.blocks) else "cache_control",
            "the caching rules predict a read here; the entry may have been evicted early, or the request "
            "went to another workspace or region",
            None,
        )

    def _timing(
        self, cur: Request, result: CacheResult, outcome: tuple[str, int, float], gap: float | None
    ) -> tuple[Cause, str, str, Change | None]:
        what, block, when = outcome
        where = cur.blocks[block].doc_path
        if what == "expired":
            entry = self.engine.entry_for(cur, block, workspace=self.options.workspace)
            ttl = entry.ttl if entry is not None else "5m"
            idle = result.at - (when - TTL_SECONDS[ttl])
            return (
                "ttl_expired",
                where,
                f"the prefix cached at {where} was last used {duration(idle)} before this request; "
                f"its {ttl} TTL had run out",
                None,
            )
        wait = when - result.at
        return (
            "concurrent",
            where,
            f"this request started {wait:.1f}s before the entry at {where} became readable (the request "
            "writing it had not yet produced its first token)",
            None,
        )

    def _lookback_gap(self, cur: Request, result: CacheResult, pb: int) -> tuple[int, int] | None:
        if pb >= len(cur.blocks):
            return None
        opts = self.engine.options
        after = [o.block_index for o in result.breakpoints if o.block_index >= pb]
        if not after:
            return None
        bp = min(after)
        if opts.collapse_tool_runs:
            distance = cur.blocks[bp].position - cur.blocks[pb].position + 1
        else:
            distance = bp - pb + 1
        return (bp, distance) if distance > opts.lookback else None

    def _miss(
        self,
        check: TurnCheck,
        turn: Turn,
        cause: Cause,
        missed: int,
        usage: Usage,
        location: str,
        detail: str,
        evidence: Evidence,
        expected: int,
        actual: int,
        *,
        change: Change | None = None,
        gap: float | None = None,
    ) -> Miss:
        model = check.model
        moved, usd = price_miss(usage, model, missed)
        kind = change.kind if change is not None and cause in ("prefix_changed", "compaction") else None
        fix = fix_for(
            cause, kind=kind, location=location, model=model, gaps=self.long_gaps, evidence=evidence
        )
        return Miss(
            request_index=check.request_index,
            request_id=turn.request_id,
            cause=cause,
            tokens_rewritten=moved,
            usd_lost=usd,
            location=location,
            detail=detail,
            fix=fix,
            evidence=evidence,
            model=model,
            kind=kind,
            before=change.before if change is not None else "",
            after=change.after if change is not None else "",
            expected_read=expected,
            actual_read=actual,
        )


def _with_run_ttl_fix(miss: Miss, gaps: list[float]) -> Miss:
    if miss.cause != "ttl_expired":
        return miss
    return replace(miss, fix=ttl_fix(gaps, model=miss.model))
