"""Requests per second one emulator process serves, streaming and not, over loopback.

Each server runs in its own process (uvicorn, uvloop + httptools, one worker); a bounded
aiohttp load generator in this process sends a fixed number of requests with N concurrent
workers. Baselines in the same run: a raw ASGI app returning a fixed JSON body (the ceiling of
the server stack) and a Starlette app doing the same (what a framework would cost).

    .venv/bin/python bench/bench_emulator.py [--requests 3000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

FIXED = json.dumps(
    {
        "id": "msg_01bench",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": "Echo (turn 1, 1 messages): hello"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 10},
    }
).encode()

SYSTEM = "You are a careful coding assistant. " + " ".join(
    f"Rule {i}: check item {i} twice." for i in range(400)
)


def body(stream: bool, i: int) -> bytes:
    return json.dumps(
        {
            "model": "claude-sonnet-4-6",
            "max_tokens": 256,
            "stream": stream,
            "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": "Summarise the rules."},
                {"role": "assistant", "content": "They ask for care."},
                {"role": "user", "content": f"And rule {i % 400}?"},
            ],
        }
    ).encode()


# -- servers (run in a child process) ------------------------------------------------------------


async def raw_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(FIXED)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": FIXED})


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def messages(request: Request) -> Response:
        json.loads(await request.body())
        return Response(FIXED, media_type="application/json")

    return Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])])


def serve(kind: str, port: int) -> None:
    import uvicorn

    if kind == "emulator":
        from tokenomy.emulator import create_app

        app: Any = create_app()
    elif kind == "starlette":
        app = starlette_app()
    else:
        app = raw_app
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


# -- load generator ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(kind: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--port", str(port)], env=env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start")


async def load(port: int, stream: bool, total: int, concurrency: int) -> tuple[float, list[float]]:
    import aiohttp

    url = f"http://127.0.0.1:{port}/v1/messages"
    headers = {"x-api-key": "bench", "anthropic-version": "2023-06-01", "content-type": "application/json"}
    bodies = [body(stream, i) for i in range(64)]
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker(session: aiohttp.ClientSession) -> None:
        for i in counter:
            t0 = time.perf_counter()
            async with session.post(url, data=bodies[i % 64], headers=headers) as r:
                data = await r.read()
                if r.status != 200 or (stream and not data.rstrip().endswith(b'{"type":"message_stop"}')):
                    raise RuntimeError(f"bad response {r.status}: {data[:200]!r}")
            latencies.append(time.perf_counter() - t0)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return elapsed, latencies


def run_case(kind: str, stream: bool, total: int, concurrency: int) -> tuple[float, float]:
    proc, port = start(kind)
    try:
        asyncio.run(load(port, stream, min(200, total), concurrency))  # warm-up
        elapsed, lat = asyncio.run(load(port, stream, total, concurrency))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    lat.sort()
    return total / elapsed, lat[len(lat) // 2] * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--serve")
    ap.add_argument("--port", type=int)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    cases = [
        ("raw ASGI, fixed JSON (ceiling)", "raw", False),
        ("Starlette, parse + fixed JSON", "starlette", False),
        ("emulator, JSON", "emulator", False),
        ("emulator, SSE stream", "emulator", True),
    ]
    print(
        f"{args.requests} requests, {args.concurrency} concurrent, {os.cpu_count()} CPUs, body {len(body(False, 0))} bytes"
    )
    print(f"{'case':34} {'req/s':>9} {'p50 ms':>8} {'vs ceiling':>11}")
    ceiling = None
    for label, kind, stream in cases:
        rps, p50 = run_case(kind, stream, args.requests, args.concurrency)
        ceiling = ceiling or rps
        print(f"{label:34} {rps:9.0f} {p50:8.2f} {rps / ceiling:10.2f}x")


if __name__ == "__main__":
    main()
