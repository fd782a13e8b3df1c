"""``tokenomy serve``: a cost gateway in front of the Anthropic API.

One base-URL change (``ANTHROPIC_BASE_URL=http://127.0.0.1:8787``) gives every agent behind it a
ledger row per request, a live cache diagnosis (``x-tokenomy-cache``), ``/metrics`` and, when
asked, requests rewritten to cache better. ``create_app(settings, transport=...)`` builds the
ASGI app; tests inject the upstream as an ``httpx`` transport. docs/gateway.md has the details.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenomy.gateway._app import GatewayApp
from tokenomy.gateway._metrics import Metrics
from tokenomy.gateway._optimize import ALL_REWRITES, stable_prefix
from tokenomy.gateway._pipeline import GatewaySettings, Inspector, Prepared, cache_header, key_scope
from tokenomy.gateway._upstream import AiohttpUpstream, H1Upstream, HttpxUpstream, Upstream
from tokenomy.ledger.requests import LedgerWriter

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ALL_REWRITES",
    "GatewayApp",
    "GatewaySettings",
    "Inspector",
    "Metrics",
    "Prepared",
    "Upstream",
    "cache_header",
    "create_app",
    "key_scope",
    "stable_prefix",
]


def create_app(
    settings: GatewaySettings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    upstream: Upstream | None = None,
) -> GatewayApp:
    """The gateway's ASGI app. ``transport`` makes the upstream client httpx over that transport
    (``httpx.MockTransport``, ``httpx.ASGITransport(emulator)``); ``upstream`` replaces the
    client outright. Otherwise the client is ``settings.client``: ``h1`` by default, a small httptools keep-alive client that
    measured the least added latency (``docs/gateway.md``); ``aiohttp`` and ``httpx`` remain.

    Run it under uvicorn with lifespan on (the CLI does), or call ``close()`` when done, so the
    ledger writer drains.
    """
    settings = settings or GatewaySettings()
    if upstream is None:
        if transport is not None or settings.client == "httpx":
            upstream = HttpxUpstream(
                transport=transport,
                connect_timeout=settings.connect_timeout_s,
                read_timeout=settings.read_timeout_s,
            )
        elif settings.client == "aiohttp":
            upstream = AiohttpUpstream(
                connect_timeout=settings.connect_timeout_s, read_timeout=settings.read_timeout_s
            )
        else:
            upstream = H1Upstream(
                connect_timeout=settings.connect_timeout_s, read_timeout=settings.read_timeout_s
            )
    writer = LedgerWriter(settings.db_path) if settings.ledger else None
    inspector = Inspector(settings, sink=writer.submit if writer is not None else None)
    return GatewayApp(settings, upstream, writer, inspector)
