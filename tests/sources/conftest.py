"""Fixtures for the sources tests: the shared workloads (skipped when absent) and the examples."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WORKLOADS = REPO.parent / "shared" / "workloads"
EXAMPLES = REPO / "examples"


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the scan index (and any other state) out of the real home directory."""
    monkeypatch.setenv("TOKENOMY_HOME", str(tmp_path / "home"))


@pytest.fixture
def workloads() -> Path:
    if not WORKLOADS.is_dir():
        pytest.skip("../shared/workloads is not present")
    return WORKLOADS
