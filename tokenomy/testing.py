"""Public test helpers: run any ASGI app on real loopback HTTP, and the emulator as a server.

Streaming tests need real sockets (httpx's ASGITransport buffers whole bodies), so these run
uvicorn in a thread on a socket bound to 127.0.0.1 port 0 before the server starts: no port
races, no sleeps. The gateway's and the batch runner's tests use the same helpers::

    with emulator_server(clock=VirtualClock()) as (url, app):
        client = anthropic.Anthropic(base_url=url, api_key="test")
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["emulator_server", "serve_in_thread"]

_START_TIMEOUT = 10.0


@contextlib.contextmanager
def serve_in_thread(app: Callable[..., Any], *, loop: str = "asyncio", http: str = "auto") -> Iterator[str]:
    """Serve ``app`` on ``http://127.0.0.1:<free port>`` in a daemon thread; yields the base URL.

    The server is stopped, and its thread joined, when the block ends.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, loop=loop, http=http, lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"uvicorn-{port}"
    )
    thread.start()
    try:
        started = threading.Event()

        def poll() -> bool:
            return bool(server.started) or not thread.is_alive()

        waited = 0.0
        while not poll() and waited < _START_TIMEOUT:
            started.wait(0.01)
            waited += 0.01
        if not server.started:
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port} within {_START_TIMEOUT} s")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=_START_TIMEOUT)
        sock.close()


@contextlib.contextmanager
def emulator_server(**options: Any) -> Iterator[tuple[str, Any]]:
    """Run ``tokenomy.emulator.create_app(**options)`` on loopback; yields ``(base_url, app)``.

    Pass ``clock=VirtualClock()`` to move time by hand, ``faults=...`` for failures, and so on.
    """
    from tokenomy.emulator import create_app

    app = create_app(**options)
    with serve_in_thread(app) as url:
        yield url, app
