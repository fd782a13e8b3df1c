"""The public surface: ``__all__`` is sorted, complete and every name resolves."""

from __future__ import annotations

import subprocess
import sys

import tokenomy


def test_all_is_sorted_and_resolves() -> None:
    assert tokenomy.__all__ == sorted(tokenomy.__all__)
    for name in tokenomy.__all__:
        assert getattr(tokenomy, name) is not None, name


def test_lazy_names_are_all_public() -> None:
    assert set(tokenomy._LAZY) <= set(tokenomy.__all__)


def test_import_stays_light() -> None:
    code = "import sys, tokenomy; print(','.join(m for m in ('anthropic', 'starlette', 'aiohttp', 'rich') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
