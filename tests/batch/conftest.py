"""Fixtures for the batch suite: a private TOKENOMY_HOME and an emulator on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from batch_support import Emu

from tokenomy.emulator import VirtualClock
from tokenomy.testing import emulator_server


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("TOKENOMY_HOME", str(h))
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    return h


@pytest.fixture
def emu(request: pytest.FixtureRequest) -> Iterator[Emu]:
    """Virtual batch time by default; ``indirect`` params set emulator options."""
    options = dict(getattr(request, "param", {}) or {})
    clock = options.get("clock")
    if options.get("batch_time", "virtual") == "virtual" and clock is None:
        clock = VirtualClock(1_800_000_000.0)
        options["clock"] = clock
    options.setdefault("batch_duration", 300.0)
    with emulator_server(**options) as (url, app):
        yield Emu(url, app, clock)
