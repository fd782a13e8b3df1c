"""``tokenomy report``: where the tokens went, as a terminal table, JSON or one HTML page.

``data`` builds pure ``ReportData`` from ``Run``s; ``terminal`` and ``html`` render it; ``memo``
serves the last JSON report again when no log changed. The CLI in ``tokenomy.cli.report`` loads
runs from the sources and picks the renderer. ``data`` loads on first use, so a report served
from the memo never imports it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .data import (
        GROUPINGS,
        GroupBy,
        PageData,
        ReportData,
        RunDetail,
        Tally,
        build_page,
        build_report,
        build_run_detail,
        report_json,
        run_detail_json,
    )

__all__ = [
    "GROUPINGS",
    "GroupBy",
    "PageData",
    "ReportData",
    "RunDetail",
    "Tally",
    "build_page",
    "build_report",
    "build_run_detail",
    "report_json",
    "run_detail_json",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'tokenomy.report' has no attribute {name!r}")
    value = getattr(importlib.import_module("tokenomy.report.data"), name)
    globals()[name] = value
    return value
