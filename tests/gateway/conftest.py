"""Gateway fixtures: an emulator upstream with the gateway in front, on real loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gw_support import Stack, stack


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Stack]:
    with stack(tmp_path) as s:
        yield s


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The gateway's slow tests (the full 60 s load test) run only when asked: ``-m slow``."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if "slow" in item.keywords and here in Path(str(item.fspath)).parents:
            item.add_marker(skip)
