"""The progress display while a job is waited on: one row per batch and an overall ETA.

Shown only on a terminal (the CLI passes a console only when stderr is a TTY), so piped output
stays clean. The API keeps every request counted as ``processing`` until its whole batch ends
(spec §4.4), so the ETA comes from how many batches have ended, not from request counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from tokenomy.batch._client import COUNT_KEYS
from tokenomy.batch._state import Chunk, Job

__all__ = ["LiveProgress", "eta_seconds", "progress_table"]


def eta_seconds(chunks: Sequence[Chunk], started: float, now: float) -> float | None:
    """Seconds left, from the share of batches that ended so far; ``None`` before the first ends."""
    active = [c for c in chunks if c.state in ("submitted", "collected")]
    if not active:
        return None
    ended = sum(1 for c in active if c.processing_status == "ended" or c.state == "collected")
    if ended == 0:
        return None
    if ended == len(active):
        return 0.0
    elapsed = max(now - started, 0.0)
    return elapsed / ended * (len(active) - ended)


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA unknown until the first batch ends (most end within an hour)"
    if seconds <= 0:
        return "done"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"ETA {h}h{m:02d}m" if h else f"ETA {m}m{s:02d}s"


def progress_table(job: Job, chunks: Sequence[Chunk], eta: float | None) -> Any:
    from rich.table import Table

    table = Table(title=f"job {job.id}: {_fmt_eta(eta)}", title_justify="left")
    table.add_column("batch")
    table.add_column("try", justify="right")
    table.add_column("status")
    for key in COUNT_KEYS:
        table.add_column(key, justify="right")
    for c in chunks:
        if c.state in ("planned", "foreign"):
            continue
        status = "collected" if c.state == "collected" else (c.processing_status or c.state)
        table.add_row(
            c.batch_id or "(creating)",
            str(c.attempt + 1),
            status,
            *(str(c.counts.get(k, 0)) for k in COUNT_KEYS),
        )
    return table


class LiveProgress:
    """A ``rich.live.Live`` display fed by the runner's progress callback."""

    def __init__(self, console: Any, *, clock: Callable[[], float] = time.time) -> None:
        from rich.live import Live

        self.clock = clock
        self.started = clock()
        self.live = Live(console=console, auto_refresh=False, transient=False)

    def __enter__(self) -> LiveProgress:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def __call__(self, job: Job, chunks: Sequence[Chunk]) -> None:
        eta = eta_seconds(chunks, self.started, self.clock())
        self.live.update(progress_table(job, chunks, eta), refresh=True)
