"""What a report can be asked for, named once for every layer that asks: its groupings, and the
defaults of the options a memo entry is keyed on.

A module of its own, and a light one: the click command, the console script's fast path
(``tokenomy.console``) and ``memo`` read it before (or without) importing ``data``.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["GROUPINGS", "REPORT_DEFAULTS", "GroupBy"]

GroupBy = Literal["session", "day", "week", "month", "model", "project"]
GROUPINGS: tuple[GroupBy, ...] = get_args(GroupBy)

# The defaults of ``tokenomy report``'s options that are in a memo key: the click options take
# them from here, and so does the console script's quick path, which must key a report exactly
# as the command does.
REPORT_DEFAULTS: dict[str, str] = {"by": "session", "source": "auto"}
