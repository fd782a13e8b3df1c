"""``tokenomy emulate``: a local Anthropic-compatible API whose bills follow the real rules.

The official SDK, Claude Code or any agent pointed at it with a base URL works unchanged; its
``usage`` numbers come from the one cache engine (``tokenomy.cache``) and the one token
estimator (``tokenomy.tokens``), so caching hits, misses, TTL expiry and batch-tier billing
behave as spec §1-§2 say. It is the upstream for the gateway's and the batch runner's tests
and for every benchmark, and a free dry run for users. docs/emulator.md has the details.
"""

from __future__ import annotations

from tokenomy.emulator._app import EmulatorApp, create_app
from tokenomy.emulator._clock import Latency, VirtualClock, parse_latency
from tokenomy.emulator._faults import Fault, parse_faults
from tokenomy.emulator._responses import (
    EchoResponder,
    ReplayResponder,
    Reply,
    Responder,
    ScriptResponder,
    load_responder,
)

__all__ = [
    "EchoResponder",
    "EmulatorApp",
    "Fault",
    "Latency",
    "ReplayResponder",
    "Reply",
    "Responder",
    "ScriptResponder",
    "VirtualClock",
    "create_app",
    "load_responder",
    "parse_faults",
    "parse_latency",
]
