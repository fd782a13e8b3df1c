"""``tokenomy report``: where the tokens went, as a terminal table, JSON or one HTML page.

``data`` builds pure ``ReportData`` from ``Run``s; ``terminal`` and ``html`` render it. The CLI in
``tokenomy.cli.report`` loads runs from the sources and picks the renderer.
"""

from __future__ import annotations

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
