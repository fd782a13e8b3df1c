"""Fixtures for the emulator suite: one server per test on real loopback, a virtual clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from emu_support import Emu

from tokenomy.emulator import VirtualClock
from tokenomy.testing import emulator_server


@pytest.fixture
def emu(request: pytest.FixtureRequest) -> Iterator[Emu]:
    """An emulator on loopback; ``@pytest.mark.parametrize('emu', [{...options}], indirect=True)`` sets options."""
    options = dict(getattr(request, "param", {}) or {})
    clock = VirtualClock(1_800_000_000.0)
    options.setdefault("clock", clock)
    with emulator_server(**options) as (url, app):
        emu = Emu(url, app, clock)
        try:
            yield emu
        finally:
            emu.close()
