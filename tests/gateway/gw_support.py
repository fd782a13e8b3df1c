"""Gateway test helpers: the emulator as upstream, the gateway in front, both on real loopback."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tokenomy.gateway import GatewayApp, GatewaySettings, create_app
from tokenomy.ledger.requests import RequestRow, read_rows
from tokenomy.testing import emulator_server

CANARY = "sk-ant-api03-CANARY-" + "x7Q9" * 10


@contextlib.contextmanager
def serve_with_lifespan(app: Any) -> Iterator[str]:
    """uvicorn in a thread with lifespan on, so the gateway's shutdown (ledger drain) runs."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
        server_header=False,
        date_header=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        ev = threading.Event()
        for _ in range(1000):
            if server.started or not thread.is_alive():
                break
            ev.wait(0.01)
        if not server.started:
            raise RuntimeError("gateway did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


class Stack:
    """An emulator and a gateway in front of it; ``rows()`` reads the ledger after shutdown."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.url = ""
        self.emulator_url = ""
        self.app: GatewayApp | None = None
        self.emulator: Any = None

    def rows(self) -> list[RequestRow]:
        """The ledger's rows once the gateway's writer thread has written every queued one (it
        writes in the background: a test reading straight after a response can race it)."""
        if self.app is not None:
            assert self.app.writer.flush()
        return read_rows(self.db)


@contextlib.contextmanager
def stack(tmp_path: Path, emulator: dict[str, Any] | None = None, **settings: Any) -> Iterator[Stack]:
    s = Stack(tmp_path / "ledger.db")
    with emulator_server(**(emulator or {})) as (eurl, eapp):
        app = create_app(GatewaySettings(upstream=eurl, db_path=str(s.db), **settings))
        s.app, s.emulator, s.emulator_url = app, eapp, eurl
        with serve_with_lifespan(app) as url:
            s.url = url
            yield s
