"""Fixtures for the batch suite: a private TOKENOMY_HOME and an emulator on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tokenomy.emulator import VirtualClock
from tokenomy.testing import emulator_server


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("TOKENOMY_HOME", str(h))
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    return h


class Emu:
    def __init__(self, url: str, app: Any, clock: VirtualClock | None) -> None:
        self.url = url
        self.app = app
        self.clock = clock

    def client(self, key: str = "sk-batch-test", **kw: Any) -> Any:
        import anthropic

        kw.setdefault("max_retries", 0)
        return anthropic.Anthropic(base_url=self.url, api_key=key, **kw)


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
