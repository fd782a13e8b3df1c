"""Latency the gateway adds, against calling the emulator directly and against LiteLLM's proxy.

Every server runs in its own process on loopback: the emulator (``tokenomy emulate``, zero
latency), ``tokenomy serve`` in front of it (aiohttp upstream client, and httpx for the
comparison the upstream-client choice rests on), and LiteLLM's proxy from its own venv
(``bench/setup_litellm.sh``) configured to pass ``/v1/messages`` through to the same emulator.
An aiohttp load generator here keeps N requests in flight for a fixed time per level.

Reported per concurrency (1, 32, 200): p50 / p99 end-to-end latency (non-streaming) and time to
the first byte of the stream (streaming), as *added* over the direct baseline measured in the same
run, plus requests per second at the highest concurrency (saturation).

    .venv/bin/python bench/bench_gateway.py [--seconds 4] [--levels 1,32,200] [--no-litellm]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
LITELLM = ROOT / "bench" / ".venv-litellm" / "bin" / "litellm"
MODEL = "claude-sonnet-4-6"
KEY = "sk-bench-" + os.urandom(24).hex()  # LiteLLM refuses to start without a strong master key
SYSTEM = "You are a careful coding assistant. " + " ".join(
    f"Rule {i}: check item {i} twice." for i in range(200)
)


def body(stream: bool, i: int) -> bytes:
    return json.dumps(
        {
            "model": MODEL,
            "max_tokens": 64,
            "stream": stream,
            "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": f"Summarise rule {i % 200}."}],
        }
    ).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server on {port} exited: {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"server on port {port} did not start in {timeout:g}s")


def start(
    cmd: list[str], port: int, env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    out = open(log, "wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    wait_port(port, proc)
    return proc


def litellm_config(emulator: str, path: Path) -> None:
    path.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: anthropic/{MODEL}\n"
        f"      api_base: {emulator}\n"
        "      api_key: sk-bench\n"
        "litellm_settings:\n"
        "  drop_params: true\n"
        "  telemetry: false\n"
    )


# -- load ------------------------------------------------------------------------------------------


async def level(url: str, concurrency: int, seconds: float, stream: bool) -> tuple[list[float], int, int]:
    """(latencies or TTFTs in seconds, requests done, errors) over ``seconds`` after a warm-up."""
    import aiohttp

    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"}
    warm = 0.5
    start = time.perf_counter()
    t_measure = start + warm
    t_end = t_measure + seconds
    samples: list[float] = []
    done = errors = 0
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        base_url=url, connector=conn, timeout=aiohttp.ClientTimeout(total=60)
    ) as h:

        async def worker(w: int) -> None:
            nonlocal done, errors
            i = w
            while True:
                t0 = time.perf_counter()
                if t0 >= t_end:
                    return
                try:
                    async with h.post("/v1/messages", data=body(stream, i), headers=headers) as r:
                        if stream:
                            await r.content.readany()
                            first = time.perf_counter()
                            while await r.content.readany():
                                pass
                        else:
                            await r.read()
                            first = time.perf_counter()
                        ok = r.status == 200
                except aiohttp.ClientError:
                    ok = False
                    first = time.perf_counter()
                i += concurrency
                if t0 >= t_measure:
                    if ok:
                        samples.append(first - t0)
                        done += 1
                    else:
                        errors += 1

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return samples, done, errors


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--levels", default="1,32,200")
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument("--no-httpx", action="store_true")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ep = free_port()
        procs.append(start([str(BIN / "tokenomy"), "emulate", "--port", str(ep)], ep))
        emulator = f"http://127.0.0.1:{ep}"
        targets: dict[str, str] = {"direct": emulator}
        gp = free_port()
        cmd = [
            str(BIN / "tokenomy"),
            "serve",
            "--port",
            str(gp),
            "--upstream",
            emulator,
            "--db",
            str(tmp / "a.db"),
        ]
        procs.append(start(cmd, gp, env={"TOKENOMY_HOME": str(tmp)}))
        targets["tokenomy"] = f"http://127.0.0.1:{gp}"
        if not args.no_httpx:
            hp = free_port()
            cmd = [
                str(BIN / "tokenomy"),
                "serve",
                "--port",
                str(hp),
                "--upstream",
                emulator,
                "--db",
                str(tmp / "h.db"),
            ]
            procs.append(start([*cmd, "--client", "httpx"], hp, env={"TOKENOMY_HOME": str(tmp)}))
            targets["tokenomy-httpx"] = f"http://127.0.0.1:{hp}"
        if not args.no_litellm:
            if not LITELLM.exists():
                raise SystemExit(
                    "LiteLLM is not installed: run bench/setup_litellm.sh first (or pass --no-litellm)"
                )
            lp = free_port()
            litellm_config(emulator, tmp / "litellm.yaml")
            env = {
                "LITELLM_LOG": "ERROR",
                "LITELLM_TELEMETRY": "False",
                "DISABLE_SCHEMA_UPDATE": "true",
                "LITELLM_MASTER_KEY": KEY,
            }
            cmd = [
                str(LITELLM),
                "--config",
                str(tmp / "litellm.yaml"),
                "--port",
                str(lp),
                "--num_workers",
                "1",
            ]
            procs.append(start(cmd, lp, env=env, log=tmp / "litellm.log"))
            targets["litellm"] = f"http://127.0.0.1:{lp}"
        results: dict[tuple[str, int, bool], tuple[list[float], int, int]] = {}
        for conc in levels:
            for stream in (False, True):
                for name, url in targets.items():
                    results[(name, conc, stream)] = asyncio.run(level(url, conc, args.seconds, stream))
                    s, n, e = results[(name, conc, stream)]
                    print(
                        f"{name:15s} c={conc:<4d} {'stream' if stream else 'json  '} n={n:<6d} err={e:<4d} "
                        f"p50={pct(s, 50) * 1e3:8.2f}ms p99={pct(s, 99) * 1e3:8.2f}ms",
                        file=sys.stderr,
                    )
        report(results, targets, levels, args.seconds)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def report(
    results: dict[tuple[str, int, bool], tuple[list[float], int, int]],
    targets: dict[str, str],
    levels: list[int],
    seconds: float,
) -> None:
    others = [t for t in targets if t != "direct"]
    head = "| clients | kind | direct p50 / p99 | " + " | ".join(f"{t} added p50 / p99" for t in others)
    if "litellm" in targets:
        head += " | LiteLLM ÷ tokenomy (p50 / p99)"
    print(head + " |")
    print("|" + "---|" * (head.count("|")))
    for conc in levels:
        for stream in (False, True):
            d = results[("direct", conc, stream)][0]
            dp50, dp99 = pct(d, 50), pct(d, 99)
            row = f"| {conc} | {'TTFT (stream)' if stream else 'latency (JSON)'} | {dp50 * 1e3:.2f} / {dp99 * 1e3:.2f} ms"
            added: dict[str, tuple[float, float]] = {}
            for t in others:
                s = results[(t, conc, stream)][0]
                added[t] = (pct(s, 50) - dp50, pct(s, 99) - dp99)
                row += f" | {added[t][0] * 1e3:+.2f} / {added[t][1] * 1e3:+.2f} ms"
            if "litellm" in targets:
                a, b = added["tokenomy"], added["litellm"]
                row += f" | {b[0] / max(a[0], 1e-5):.0f}× / {b[1] / max(a[1], 1e-5):.0f}×"
            print(row + " |")
    top = max(levels)
    print()
    print(f"Requests per second at {top} clients (non-streaming, {seconds:g} s per level):")
    for t in targets:
        s, n, e = results[(t, top, False)]
        print(f"- {t}: {n / seconds:.0f} req/s ({e} errors)")


if __name__ == "__main__":
    main()
