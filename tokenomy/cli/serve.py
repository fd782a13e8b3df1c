"""``tokenomy serve``: run the cost gateway (``tokenomy.gateway``) under uvicorn.

Point any agent at it with ``ANTHROPIC_BASE_URL=http://127.0.0.1:8787``. Binds loopback by
default; binding anywhere else prints a warning, and ``--auth-token`` then keeps strangers out.
In optimize mode the cache rewrites are on unless switched off (``--no-rewrite``); the context
rewrites change what the model sees, so they are off unless switched on (``--rewrite``).
"""

from __future__ import annotations

import ipaddress
import os

import click

from tokenomy.errors import UserError

REWRITE_CHOICES = ("stable_prefix", "breakpoints", "ttl_1h")  # on in optimize mode unless --no-rewrite
CONTEXT_CHOICES = ("mask", "context_editing", "compact")  # off unless --rewrite


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8787, show_default=True, type=click.IntRange(0, 65535), help="Port to bind.")
@click.option(
    "--upstream", default="https://api.anthropic.com", show_default=True, help="Where requests are forwarded."
)
@click.option("--db", "db", default=None, help="Ledger file (default: $TOKENOMY_HOME/ledger.db).")
@click.option(
    "--mode",
    type=click.Choice(["observe", "optimize"]),
    default="observe",
    show_default=True,
    help="observe only logs; optimize also rewrites requests to cache better.",
)
@click.option(
    "--no-rewrite",
    "disabled",
    multiple=True,
    type=click.Choice(REWRITE_CHOICES),
    help="Turn one cache rewrite of optimize mode off (repeatable).",
)
@click.option(
    "--rewrite",
    "enabled",
    multiple=True,
    type=click.Choice(CONTEXT_CHOICES),
    help="Turn one context rewrite on (repeatable; needs --mode optimize). These change what the model sees.",
)
@click.option(
    "--summary-model",
    default="claude-haiku-4-5",
    show_default=True,
    help="The model that writes compaction summaries (--rewrite compact).",
)
@click.option("--store-bodies", is_flag=True, help="Also keep request and response bodies in the ledger.")
@click.option(
    "--auth-token",
    "auth_tokens",
    multiple=True,
    help="Require this gateway token (x-tokenomy-token header); repeatable. Also TOKENOMY_GATEWAY_TOKEN.",
)
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for upstream data.")
@click.option(
    "--client", type=click.Choice(["h1", "aiohttp", "httpx"]), default="h1", show_default=True, hidden=True
)
def serve(
    host: str,
    port: int,
    upstream: str,
    db: str | None,
    mode: str,
    disabled: tuple[str, ...],
    enabled: tuple[str, ...],
    summary_model: str,
    store_bodies: bool,
    auth_tokens: tuple[str, ...],
    timeout: float,
    client: str,
) -> None:
    """Run the cost gateway: a ledger row and a cache diagnosis for every request."""
    import uvicorn

    from tokenomy.context import CompactOptions
    from tokenomy.gateway import GatewaySettings, create_app
    from tokenomy.gateway._context import ContextOptions

    if enabled and mode != "optimize":
        raise UserError(
            f"--rewrite {' --rewrite '.join(enabled)} changes requests: add --mode optimize "
            "(observe mode never rewrites)"
        )
    if not upstream.startswith(("http://", "https://")):
        raise UserError(f"--upstream {upstream!r}: give a URL starting with http:// or https://")
    env_token = os.environ.get("TOKENOMY_GATEWAY_TOKEN")
    tokens = auth_tokens + ((env_token,) if env_token else ())
    if not _is_loopback(host):
        click.echo(
            f"warning: binding {host}: the gateway is reachable from other machines"
            + ("" if tokens else " and anyone who reaches it can use it; add --auth-token"),
            err=True,
        )
    settings = GatewaySettings(
        upstream=upstream,
        db_path=db,
        mode="optimize" if mode == "optimize" else "observe",
        rewrites=(frozenset(REWRITE_CHOICES) - frozenset(disabled)) | frozenset(enabled),
        context=ContextOptions(compact=CompactOptions(summary_model=summary_model)),
        store_bodies=store_bodies,
        auth_tokens=tokens,
        read_timeout_s=timeout,
        client="httpx" if client == "httpx" else "aiohttp" if client == "aiohttp" else "h1",
    )
    app = create_app(settings)
    extra = f"; context rewrites: {', '.join(sorted(set(enabled)))}" if enabled else ""
    click.echo(f"tokenomy gateway on http://{host}:{port} -> {upstream} ({mode}{extra})", err=True)
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            server_header=False,  # the upstream's own server and date headers pass through
            date_header=False,
        )
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}; choose another --port") from None
