"""Time for the emulator: an injectable clock and the emulated latency.

Cache lifetimes and batch progress follow the app's clock, so tests hand in a ``VirtualClock``
and jump past a TTL with ``advance(seconds)`` instead of sleeping. Latency is what the cache
engine is told a response took (``ttft``); only a wall clock actually sleeps it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from tokenomy.errors import UserError

__all__ = ["Latency", "VirtualClock", "parse_latency"]


class VirtualClock:
    """A clock that moves only when told to. Call it for the time; ``advance`` to jump ahead."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move forward ``seconds`` (never back) and return the new time."""
        if seconds < 0:
            raise ValueError(f"VirtualClock.advance: seconds must be >= 0, got {seconds}")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, when: float) -> None:
        with self._lock:
            self._now = float(when)


@dataclass(frozen=True, slots=True, kw_only=True)
class Latency:
    """Emulated response timing: seconds to the first token, then output tokens per second.

    ``tokens_per_second`` of 0 means the rest of the response arrives at once.
    """

    ttft: float = 0.0
    tokens_per_second: float = 0.0

    def generation_seconds(self, output_tokens: int) -> float:
        if self.tokens_per_second <= 0:
            return 0.0
        return output_tokens / self.tokens_per_second

    @property
    def is_zero(self) -> bool:
        return self.ttft <= 0 and self.tokens_per_second <= 0


def parse_latency(spec: str | float | Latency | None) -> Latency:
    """``"0.4"`` (ttft seconds) or ``"ttft=0.4,tps=60"``; a number is the ttft."""
    if spec is None:
        return Latency()
    if isinstance(spec, Latency):
        return spec
    if isinstance(spec, (int, float)):
        return Latency(ttft=_non_negative(float(spec), "ttft", str(spec)))
    text = spec.strip()
    if not text:
        return Latency()
    ttft = 0.0
    tps = 0.0
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep:
            key, value = "ttft", key
        try:
            number = float(value)
        except ValueError:
            raise UserError(
                f"--latency {spec!r}: {value.strip()!r} is not a number; use e.g. '0.4' or 'ttft=0.4,tps=60'"
            ) from None
        if key == "ttft":
            ttft = _non_negative(number, key, spec)
        elif key in ("tps", "tokens_per_second"):
            tps = _non_negative(number, key, spec)
        else:
            raise UserError(f"--latency {spec!r}: unknown key {key!r}; the keys are ttft and tps")
    return Latency(ttft=ttft, tokens_per_second=tps)


def _non_negative(value: float, key: str, spec: str) -> float:
    if value < 0 or value != value:
        raise UserError(f"--latency {spec!r}: {key} must be a number >= 0")
    return value
