"""``tokenomy emulate``: serve the local Anthropic-compatible API (docs/emulator.md)."""

from __future__ import annotations

import click

from tokenomy.errors import UserError


@click.command(name="emulate")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8788, show_default=True, type=click.IntRange(0, 65535), help="Port to bind.")
@click.option(
    "--responses",
    "responses",
    default="echo",
    show_default=True,
    metavar="MODE",
    help="echo | script:FILE (canned turns) | replay:FILE (recorded run).",
)
@click.option(
    "--latency",
    default="0",
    show_default=True,
    help="Seconds to first token, or 'ttft=0.4,tps=60' (also output tokens per second).",
)
@click.option(
    "--faults",
    default="",
    help="Faults for every request, e.g. '429:p=0.05:retry-after=2', '529', 'slow:delay=3', 'drop', 'truncate'.",
)
@click.option(
    "--batch-duration", default=5.0, show_default=True, type=float, help="Seconds a message batch takes."
)
@click.option("--allow-retired", is_flag=True, help="Serve retired models instead of answering 404.")
@click.option("--seed", type=int, default=None, help="Seed for probabilistic faults.")
@click.option(
    "--clock",
    type=click.Choice(["wall", "virtual"]),
    default="wall",
    show_default=True,
    help='virtual: time moves only on POST /_tokenomy/clock/advance {"seconds": N}, so a dry run '
    "can cross a TTL or finish a batch at once.",
)
def emulate(
    host: str,
    port: int,
    responses: str,
    latency: str,
    faults: str,
    batch_duration: float,
    allow_retired: bool,
    seed: int | None,
    clock: str,
) -> None:
    """Run a local Anthropic-compatible API whose usage follows the real caching rules.

    Point the SDK or Claude Code at it with ANTHROPIC_BASE_URL=http://127.0.0.1:8788.
    """
    from tokenomy.emulator import VirtualClock, create_app

    if batch_duration < 0:
        raise UserError(f"--batch-duration {batch_duration}: must be >= 0 seconds")
    app = create_app(
        responses=responses,
        latency=latency,
        faults=faults or None,
        batch_time="virtual" if clock == "virtual" else "wall",
        clock=VirtualClock() if clock == "virtual" else None,
        batch_duration=batch_duration,
        allow_retired=allow_retired,
        fault_seed=seed,
    )
    _serve(app, host, port, responses)


def _serve(app: object, host: str, port: int, responses: str) -> None:
    import socket

    import uvicorn

    try:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        raise UserError(
            f"cannot listen on {host}:{port}: {e.strerror}; pick another --port or stop what holds it"
        ) from None
    bound = sock.getsockname()[1]
    click.echo(
        f"tokenomy emulator on http://{host}:{bound} (responses: {responses}); Ctrl-C stops it", err=True
    )
    click.echo(f"  export ANTHROPIC_BASE_URL=http://{host}:{bound}", err=True)
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        loop=_best("uvloop", "asyncio"),
        http=_best("httptools", "h11"),
        lifespan="off",
        log_level="warning",
        access_log=False,
    )
    uvicorn.Server(config).run(sockets=[sock])


def _best(fast: str, fallback: str) -> str:
    import importlib.util

    return fast if importlib.util.find_spec(fast) is not None else fallback
