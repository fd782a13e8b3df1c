"""Fixtures for the report tests."""

from __future__ import annotations

import pytest

from ._sample import Sample, make_sample


@pytest.fixture
def sample() -> Sample:
    """Three runs: a session with a sub-agent on day 1 (one 10-minute gap), a haiku session on day 3."""
    return make_sample()
