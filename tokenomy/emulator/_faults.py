"""Faults for reliability tests: errors, a slow first token, a dropped or truncated stream.

One grammar serves the ``--faults`` flag (every request of the run) and the
``x-tokenomy-fault`` request header (that request only)::

    spec   := item ("," item)*
    item   := kind (":" option)*
    kind   := 429 | 529 | 500 | slow | drop | truncate
    option := p=<0..1>          probability per request (default 1)
            | times=<n>         only the first n requests that meet it (per run);
                                in a header: only the first n attempts of a request,
                                counted by the SDK's x-stainless-retry-count header
            | retry-after=<s>   seconds in the 429's retry-after header (default 1)
            | delay=<s>         slow: seconds before the first token (default 5)
            | after=<n>         drop/truncate: SSE events sent before the cut (default: half)

Examples: ``429:times=1:retry-after=0.1``, ``529:p=0.05``, ``slow:delay=3,truncate``.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Literal

from tokenomy.errors import UserError

__all__ = ["ERROR_FAULTS", "Fault", "FaultPlan", "Triggered", "parse_faults"]

FaultKind = Literal["429", "529", "500", "slow", "drop", "truncate"]
KINDS: tuple[FaultKind, ...] = ("429", "529", "500", "slow", "drop", "truncate")
ERROR_FAULTS: dict[str, tuple[int, str, str]] = {
    "429": (429, "rate_limit_error", "Number of requests has exceeded your rate limit (emulated fault)."),
    "529": (529, "overloaded_error", "Overloaded"),
    "500": (500, "api_error", "Internal server error"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    kind: FaultKind
    p: float = 1.0
    times: int | None = None
    retry_after: float = 1.0
    delay: float = 5.0
    after: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Triggered:
    """The faults that hit one request."""

    error: Fault | None = None
    slow: Fault | None = None
    cut: Fault | None = None  # drop or truncate

    @property
    def any(self) -> bool:
        return self.error is not None or self.slow is not None or self.cut is not None


NO_FAULT = Triggered()


@dataclass(slots=True)
class FaultPlan:
    """Faults for a whole run, with their own counters and seeded randomness."""

    faults: tuple[Fault, ...] = ()
    seed: int | None = None
    _fired: dict[int, int] = field(default_factory=dict)
    _rng: random.Random = field(default_factory=random.Random)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def draw(self, *, streaming_faults: bool = True) -> Triggered:
        if not self.faults:
            return NO_FAULT
        with self._lock:
            hit: list[Fault] = []
            for i, f in enumerate(self.faults):
                if not streaming_faults and f.kind in ("slow", "drop", "truncate"):
                    continue
                if f.times is not None and self._fired.get(i, 0) >= f.times:
                    continue
                if f.p < 1.0 and self._rng.random() >= f.p:
                    continue
                self._fired[i] = self._fired.get(i, 0) + 1
                hit.append(f)
        return _combine(hit)


def draw_header(
    faults: tuple[Fault, ...], attempt: int, rng: random.Random, *, streaming_faults: bool = True
) -> Triggered:
    """Faults named in one request's header; ``times`` counts the attempts of that request."""
    hit = [
        f
        for f in faults
        if (streaming_faults or f.kind not in ("slow", "drop", "truncate"))
        and (f.times is None or attempt < f.times)
        and (f.p >= 1.0 or rng.random() < f.p)
    ]
    return _combine(hit)


def _combine(hit: list[Fault]) -> Triggered:
    if not hit:
        return NO_FAULT
    error = next((f for f in hit if f.kind in ERROR_FAULTS), None)
    slow = next((f for f in hit if f.kind == "slow"), None)
    cut = next((f for f in hit if f.kind in ("drop", "truncate")), None)
    return Triggered(error=error, slow=slow, cut=cut)


def parse_faults(spec: str | None, *, where: str = "--faults") -> tuple[Fault, ...]:
    """Parse the fault grammar above; a mistake raises ``UserError`` naming the bad part."""
    if spec is None or not spec.strip():
        return ()
    out: list[Fault] = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        kind, *options = item.split(":")
        kind = kind.strip().lower()
        if kind not in KINDS:
            raise UserError(f"{where} {spec!r}: unknown fault {kind!r}; the faults are {', '.join(KINDS)}")
        values: dict[str, float] = {}
        for opt in options:
            key, sep, value = opt.partition("=")
            key = key.strip().lower().replace("_", "-")
            if not sep or key not in ("p", "times", "retry-after", "delay", "after"):
                raise UserError(
                    f"{where} {spec!r}: bad option {opt!r} in {item!r}; "
                    "use p=, times=, retry-after=, delay= or after= (e.g. '429:times=1:retry-after=0.5')"
                )
            try:
                number = float(value)
            except ValueError:
                raise UserError(f"{where} {spec!r}: {key}={value!r} is not a number") from None
            if number < 0 or number != number or (key == "p" and number > 1):
                raise UserError(f"{where} {spec!r}: {key}={value} is out of range")
            values[key] = number
        out.append(
            Fault(
                kind=kind,
                p=values.get("p", 1.0),
                times=int(values["times"]) if "times" in values else None,
                retry_after=values.get("retry-after", 1.0),
                delay=values.get("delay", 5.0),
                after=int(values["after"]) if "after" in values else None,
            )
        )
    return tuple(out)
