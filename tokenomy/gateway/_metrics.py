"""``/metrics`` in the Prometheus text format (0.0.4), kept by hand: a few counters and two
histograms do not need a client library, and nothing here may block the event loop.

Nothing that identifies a caller (keys, tokens, run ids) ever becomes a label.
"""

from __future__ import annotations

import threading
from collections import defaultdict

from tokenomy.model import Usage
from tokenomy.pricing import cost

__all__ = ["Metrics"]

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_CLASSES = ("input", "cache_write_5m", "cache_write_1h", "cache_read", "output")


class _Histogram:
    __slots__ = ("counts", "total", "n")

    def __init__(self) -> None:
        self.counts = [0] * len(BUCKETS)
        self.total = 0.0
        self.n = 0

    def observe(self, v: float) -> None:
        for i, b in enumerate(BUCKETS):
            if v <= b:
                self.counts[i] += 1
                break
        self.total += v
        self.n += 1


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.tokens: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.cost_usd: defaultdict[str, float] = defaultdict(float)
        self.unpriced: defaultdict[str, int] = defaultdict(int)
        self.upstream_errors: defaultdict[str, int] = defaultdict(int)
        self.latency = _Histogram()
        self.ttft = _Histogram()

    def observe_request(
        self,
        endpoint: str,
        status: int | None,
        model: str | None,
        usage: Usage | None,
        latency_s: float,
        ttft_s: float | None,
    ) -> None:
        c = cost(usage, model) if usage is not None and model else None
        with self._lock:
            self.requests[(endpoint, str(status) if status is not None else "none")] += 1
            self.latency.observe(latency_s)
            if ttft_s is not None:
                self.ttft.observe(ttft_s)
            if usage is not None and model:
                for cls, n in zip(
                    _CLASSES,
                    (
                        usage.input_tokens,
                        usage.cache_write_5m,
                        usage.cache_write_1h,
                        usage.cache_read,
                        usage.output_tokens,
                    ),
                    strict=True,
                ):
                    if n:
                        self.tokens[(model, cls)] += n
                if c is not None:
                    self.cost_usd[model] += c.total
                else:
                    self.unpriced[model] += 1

    def upstream_error(self, kind: str) -> None:
        with self._lock:
            self.upstream_errors[kind] += 1

    def render(self) -> str:
        out: list[str] = []
        with self._lock:
            out += [
                "# HELP tokenomy_requests_total Requests served.",
                "# TYPE tokenomy_requests_total counter",
            ]
            for (ep, st), n in sorted(self.requests.items()):
                out.append(f'tokenomy_requests_total{{endpoint="{_label(ep)}",status="{st}"}} {n}')
            out += [
                "# HELP tokenomy_tokens_total Tokens billed, by class.",
                "# TYPE tokenomy_tokens_total counter",
            ]
            for (model, cls), n in sorted(self.tokens.items()):
                out.append(f'tokenomy_tokens_total{{model="{_label(model)}",class="{cls}"}} {n}')
            out += [
                "# HELP tokenomy_cost_usd_total Dollars billed (models with a known price).",
                "# TYPE tokenomy_cost_usd_total counter",
            ]
            for model, usd in sorted(self.cost_usd.items()):
                out.append(f'tokenomy_cost_usd_total{{model="{_label(model)}"}} {usd:.6f}')
            out += [
                "# HELP tokenomy_unpriced_requests_total Requests whose model has no known price.",
                "# TYPE tokenomy_unpriced_requests_total counter",
            ]
            for model, n in sorted(self.unpriced.items()):
                out.append(f'tokenomy_unpriced_requests_total{{model="{_label(model)}"}} {n}')
            read = sum(n for (_, cls), n in self.tokens.items() if cls == "cache_read")
            prompt = sum(n for (_, cls), n in self.tokens.items() if cls != "output")
            out += [
                "# HELP tokenomy_cache_hit_ratio Cache-read tokens over all prompt tokens.",
                "# TYPE tokenomy_cache_hit_ratio gauge",
                f"tokenomy_cache_hit_ratio {read / prompt if prompt else 0.0:.6f}",
                "# HELP tokenomy_upstream_errors_total Upstream failures by kind.",
                "# TYPE tokenomy_upstream_errors_total counter",
            ]
            for kind, n in sorted(self.upstream_errors.items()):
                out.append(f'tokenomy_upstream_errors_total{{kind="{_label(kind)}"}} {n}')
            for name, h, what in (
                ("tokenomy_request_duration_seconds", self.latency, "Request latency, end to end."),
                ("tokenomy_time_to_first_token_seconds", self.ttft, "Time to the first streamed byte."),
            ):
                out += [f"# HELP {name} {what}", f"# TYPE {name} histogram"]
                acc = 0
                for b, n in zip(BUCKETS, h.counts, strict=True):
                    acc += n
                    out.append(f'{name}_bucket{{le="{b}"}} {acc}')
                out.append(f'{name}_bucket{{le="+Inf"}} {h.n}')
                out.append(f"{name}_sum {h.total:.6f}")
                out.append(f"{name}_count {h.n}")
        return "\n".join(out) + "\n"
