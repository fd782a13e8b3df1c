"""Runs built by hand for the report tests: known usage, known models, known times."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from tokenomy.model import Run, Turn, Usage

T0 = dt.datetime(2025, 6, 8, 10, 0, tzinfo=dt.UTC).timestamp()
SONNET = "claude-sonnet-4-20250514"
HAIKU = "claude-haiku-4-5-20251001"
LOWER: dict[str, Any] = {
    "input": "lower_bound",
    "cache_write": "exact",
    "cache_read": "exact",
    "output": "lower_bound",
}


def turn(
    at: float, *, model: str = SONNET, i: int = 0, w: int = 0, r: int = 0, o: int = 0, **kw: Any
) -> Turn:
    usage = Usage(input_tokens=i, cache_write_5m=w, cache_read=r, output_tokens=o)
    return Turn(model=model, usage=usage, started_at=at, **kw)


@dataclass
class Sample:
    main: Run
    agent: Run
    other: Run

    @property
    def runs(self) -> list[Run]:
        return [self.main, self.agent, self.other]


def make_sample() -> Sample:
    """Three runs: a session with a sub-agent on day 1 (one 10-minute gap), a haiku session on day 3."""
    main = Run(
        run_id="aaaa1111-session",
        project="/home/u/proj-a",
        title="Fix the build",
        turns=(
            turn(T0, i=10, w=20_000, r=0, o=100),
            turn(T0 + 30, i=5, w=1_000, r=20_000, o=300, quality=LOWER),
            turn(T0 + 630, i=5, w=21_000, r=0, o=50),  # after a 10 minute pause: cache expired
            turn(T0 + 640, i=3, w=500, r=21_000, o=700),
        ),
    )
    agent = Run(
        run_id="agent-bbbb2222",
        kind="subagent",
        parent_id="aaaa1111-session",
        project="/home/u/proj-a",
        turns=(turn(T0 + 40, i=2, w=3_000, o=80), turn(T0 + 50, i=2, w=100, r=3_000, o=90)),
    )
    other = Run(
        run_id="cccc3333-session",
        project="/home/u/proj-b",
        turns=(turn(T0 + 2 * 86400, model=HAIKU, i=50, w=4_000, r=10_000, o=400),),
    )
    return Sample(main=main, agent=agent, other=other)
