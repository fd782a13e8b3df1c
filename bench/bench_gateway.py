"""Latency the gateway adds, against calling the emulator directly and against LiteLLM's proxy.

Every server runs in its own process on loopback: the emulator (``tokenomy emulate``, zero
latency), ``tokenomy serve`` in front of it once per upstream client (h1: the lean HTTP/1.1
client, aiohttp, httpx), and LiteLLM's proxy from its own venv (``bench/setup_litellm.sh``)
passing ``/v1/messages`` through to the same emulator. An aiohttp load generator here drives
them in two modes, at 1, 32 and 200 concurrent clients, non-streaming and streaming:

- **closed loop** (saturation): every client sends its next request the moment the last one
  returns. This measures requests per second at saturation; on a 2-core box shared by load
  generator, emulator and proxy its latencies are mostly CPU queueing, not proxy time.
- **paced** (open loop): every client sends on a fixed schedule, so the total offered rate is a
  set fraction of what the paths can carry. Latency counts from the scheduled send time, so a
  proxy that falls behind shows it. Two rates per level: *light*, half the closed-loop maximum of
  the slowest proxy (LiteLLM), where every proxy is comparable; and *half-load*, half the
  tokenomy gateway's own maximum, for the gateway alone (LiteLLM would be saturated there).

"Added" is p50 (p99) through the proxy minus p50 (p99) direct at the same rate in the same run:
end-to-end for JSON, time to the first body byte for streams. The gateway's CPU per request is
read from /proc for the closed-loop runs (less noisy than latency on a shared machine).

    bash bench/setup_litellm.sh    # once
    .venv/bin/python bench/bench_gateway.py [--seconds 4] [--paced-seconds 6] [--levels 1,32,200]
        [--clients h1,aiohttp,httpx] [--no-litellm] [--fraction 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
LITELLM = ROOT / "bench" / ".venv-litellm" / "bin" / "litellm"
MODEL = "claude-sonnet-4-6"
KEY = "sk-bench-" + os.urandom(24).hex()  # LiteLLM refuses to start without a strong master key
SYSTEM = "You are a careful coding assistant. " + " ".join(
    f"Rule {i}: check item {i} twice." for i in range(200)
)
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"}


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


# -- servers ---------------------------------------------------------------------------------------


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


def cli_clients() -> tuple[str, ...]:
    """The upstream clients ``tokenomy serve --client`` accepts."""
    from tokenomy.cli.serve import serve

    for p in serve.params:
        if p.name == "client":
            return tuple(getattr(p.type, "choices", ()))
    return ()


def gateway_cmd(client: str, port: int, upstream: str, db: Path) -> list[str]:
    """``tokenomy serve`` itself when its ``--client`` offers ``client``; otherwise this script's
    ``--serve`` mode, which builds the same app with the same uvicorn options."""
    if client in cli_clients():
        return [
            str(BIN / "tokenomy"),
            "serve",
            "--port",
            str(port),
            "--upstream",
            upstream,
            "--db",
            str(db),
            "--client",
            client,
        ]
    return [str(BIN / "python"), __file__, "--serve", client, str(port), upstream, str(db)]


def serve_main(client: str, port: int, upstream: str, db: str) -> None:
    """The gateway with a given upstream client, run exactly as ``tokenomy serve`` runs it."""
    import uvicorn

    from tokenomy.gateway import GatewaySettings, create_app
    from tokenomy.gateway._upstream import AiohttpUpstream, H1Upstream, HttpxUpstream, Upstream

    settings = GatewaySettings(upstream=upstream, db_path=db)
    kinds: dict[str, type[Upstream]] = {"h1": H1Upstream, "aiohttp": AiohttpUpstream, "httpx": HttpxUpstream}
    up = kinds[client](connect_timeout=settings.connect_timeout_s, read_timeout=settings.read_timeout_s)
    uvicorn.run(
        create_app(settings, upstream=up),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        server_header=False,
        date_header=False,
    )


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


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- load ------------------------------------------------------------------------------------------


@dataclass
class Result:
    samples: list[float] = field(default_factory=list)  # seconds: latency (JSON) or TTFT (stream)
    done: int = 0
    errors: int = 0
    late: int = 0  # paced: sends that left after their slot because the previous one was still out
    seconds: float = 0.0
    cpu_ms: float | None = None  # the proxy's CPU per request (closed loop)

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0


async def level(url: str, concurrency: int, seconds: float, stream: bool, rate: float | None) -> Result:
    """Drive ``url`` for ``seconds`` after a warm-up: closed loop when ``rate`` is None, else each
    client sends every ``concurrency / rate`` seconds (staggered), timed from its scheduled slot."""
    import aiohttp

    warm = 0.5 if rate is None else min(max(1.0, 2 * concurrency / rate), 3.0)
    t_start = time.perf_counter()
    t_measure = t_start + warm
    t_end = t_measure + seconds
    res = Result(seconds=seconds)
    interval = concurrency / rate if rate else 0.0
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        base_url=url, connector=conn, timeout=aiohttp.ClientTimeout(total=60)
    ) as h:

        async def worker(w: int) -> None:
            i = w
            slot = t_start + interval * w / concurrency
            while True:
                now = time.perf_counter()
                if rate is not None:
                    if slot > now:
                        await asyncio.sleep(slot - now)
                    elif now - slot > 1e-3 and slot >= t_measure:
                        res.late += 1
                    t0 = slot
                    slot += interval
                else:
                    t0 = now
                if t0 >= t_end:
                    return
                try:
                    async with h.post("/v1/messages", data=body(stream, i), headers=HEADERS) as r:
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
                        res.samples.append(first - t0)
                        res.done += 1
                    else:
                        res.errors += 1

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return res


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def run_level(
    url: str, pid: int | None, conc: int, seconds: float, stream: bool, rate: float | None
) -> Result:
    c0 = cpu_seconds(pid) if pid else 0.0
    res = asyncio.run(level(url, conc, seconds, stream, rate))
    if pid and res.done:
        res.cpu_ms = (cpu_seconds(pid) - c0) / (res.done + res.errors) * 1e3  # warm-up included
    return res


# -- main ------------------------------------------------------------------------------------------


Key = tuple[str, int, bool, str]  # (mode, clients, stream, target)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0, help="closed-loop seconds per run")
    ap.add_argument("--paced-seconds", type=float, default=6.0, help="paced seconds per run")
    ap.add_argument("--levels", default="1,32,200")
    ap.add_argument("--clients", default="h1,aiohttp,httpx", help="gateway upstream clients to run")
    ap.add_argument("--fraction", type=float, default=0.5, help="paced rate as a fraction of a max")
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument("--no-paced", action="store_true")
    ap.add_argument("--serve", nargs=4, metavar=("CLIENT", "PORT", "UPSTREAM", "DB"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        client, port, upstream, db = args.serve
        serve_main(client, int(port), upstream, db)
        return
    levels = [int(x) for x in args.levels.split(",")]
    clients = [c for c in args.clients.split(",") if c]
    tmp = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ep = free_port()
        procs.append(start([str(BIN / "tokenomy"), "emulate", "--port", str(ep)], ep))
        emulator = f"http://127.0.0.1:{ep}"
        targets: dict[str, tuple[str, int | None]] = {"direct": (emulator, None)}
        for client in clients:
            gp = free_port()
            cmd = gateway_cmd(client, gp, emulator, tmp / f"{client}.db")
            proc = start(cmd, gp, env={"TOKENOMY_HOME": str(tmp)})
            procs.append(proc)
            targets["tokenomy" if client == clients[0] else f"tokenomy-{client}"] = (
                f"http://127.0.0.1:{gp}",
                proc.pid,
            )
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
            proc = start(cmd, lp, env=env, log=tmp / "litellm.log")
            procs.append(proc)
            targets["litellm"] = (f"http://127.0.0.1:{lp}", proc.pid)
        print(
            f"targets: {', '.join(targets)} (h1 via `tokenomy serve`: {'h1' in cli_clients()})",
            file=sys.stderr,
        )
        results: dict[Key, Result] = {}
        rates: dict[tuple[str, int, bool], float] = {}

        def measure(mode: str, conc: int, stream: bool, names: list[str], rate: float | None) -> None:
            # a paced run lasts long enough for ~500 samples (a p99 worth the name), at most 20 s
            secs = args.seconds if rate is None else min(max(args.paced_seconds, 500 / rate), 20.0)
            for name in names:
                url, pid = targets[name]
                r = results[(mode, conc, stream, name)] = run_level(url, pid, conc, secs, stream, rate)
                print(
                    f"{mode:9s} {name:16s} c={conc:<4d} {'stream' if stream else 'json  '} "
                    f"{'' if rate is None else f'@{rate:.0f}/s '}n={r.done:<6d} err={r.errors:<4d} "
                    f"late={r.late:<5d} p50={pct(r.samples, 50) * 1e3:8.2f}ms "
                    f"p99={pct(r.samples, 99) * 1e3:8.2f}ms"
                    + (f" cpu={r.cpu_ms:.3f}ms/req" if r.cpu_ms is not None else ""),
                    file=sys.stderr,
                )

        for conc in levels:
            for stream in (False, True):
                measure("closed", conc, stream, list(targets), None)
                if args.no_paced:
                    continue
                # light: a load every proxy compared carries at half its own maximum or less
                light_names = [t for t in targets if t in ("direct", "tokenomy", "litellm")]
                slowest = min(results[("closed", conc, stream, t)].rate for t in light_names)
                light = rates[("light", conc, stream)] = max(args.fraction * slowest, 1.0)
                measure("light", conc, stream, light_names, light)
                # half-load: half of what the gateway itself carries (LiteLLM would be saturated)
                half_names = [t for t in targets if t not in ("litellm", "tokenomy-httpx")]
                top = results[("closed", conc, stream, "tokenomy")].rate
                half = rates[("half", conc, stream)] = max(args.fraction * top, 1.0)
                measure("half", conc, stream, half_names, half)
        report(results, rates, targets, levels, args)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def _ratio(theirs: float, ours: float) -> str:
    """LiteLLM's added latency over ours; none when ours is within noise of zero (a p99 of a few
    hundred samples can come out below the direct path's)."""
    return f"{theirs / ours:.0f}×" if ours > 1e-4 else "— (ours ≤ 0.1 ms)"


def _ms(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x * 1e3:+.2f}"


def report(
    results: dict[Key, Result],
    rates: dict[tuple[str, int, bool], float],
    targets: dict[str, tuple[str, int | None]],
    levels: list[int],
    args: argparse.Namespace,
) -> None:
    proxies = [t for t in targets if t != "direct"]
    head = "| clients | mode | kind | direct p50 / p99 | " + " | ".join(
        f"{t} added p50 / p99" for t in proxies
    )
    head += " | LiteLLM added ÷ tokenomy added (p50 / p99) |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    names = {"closed": "closed loop", "light": "paced, light", "half": "paced, half-load"}
    for conc in levels:
        for mode in ("closed", "light", "half"):
            for stream in (False, True):
                d = results.get((mode, conc, stream, "direct"))
                if d is None:
                    continue
                dp50, dp99 = pct(d.samples, 50), pct(d.samples, 99)
                label = names[mode]
                if mode != "closed":
                    label += f" @ {rates[(mode, conc, stream)]:.0f} req/s, n={d.done}"
                row = f"| {conc} | {label} | {'TTFT (stream)' if stream else 'latency (JSON)'} "
                row += f"| {dp50 * 1e3:.2f} / {dp99 * 1e3:.2f} ms"
                added: dict[str, tuple[float, float]] = {}
                for t in proxies:
                    r = results.get((mode, conc, stream, t))
                    if r is None:
                        row += " | —"
                        continue
                    added[t] = (pct(r.samples, 50) - dp50, pct(r.samples, 99) - dp99)
                    row += f" | {_ms(added[t][0])} / {_ms(added[t][1])} ms"
                if "litellm" in added and "tokenomy" in added:
                    a, b = added["tokenomy"], added["litellm"]
                    row += f" | {_ratio(b[0], a[0])} / {_ratio(b[1], a[1])}"
                else:
                    row += " | —"
                print(row + " |")
    print()
    print(f"Closed loop, requests per second (and proxy CPU per request), {args.seconds:g} s per run:")
    print()
    print("| clients | kind | " + " | ".join(targets) + " |")
    print("|" + "---|" * (len(targets) + 2))
    for conc in levels:
        for stream in (False, True):
            cells = []
            for t in targets:
                r = results[("closed", conc, stream, t)]
                cpu = f" ({r.cpu_ms:.2f} ms CPU)" if r.cpu_ms is not None else ""
                err = f", {r.errors} errors" if r.errors else ""
                cells.append(f"{r.rate:.0f}{cpu}{err}")
            print(f"| {conc} | {'stream' if stream else 'JSON'} | " + " | ".join(cells) + " |")
    late = [
        (k, r.late, r.done) for k, r in results.items() if k[0] != "closed" and r.late > 0.01 * max(r.done, 1)
    ]
    if late:
        print()
        print("Paced runs that fell behind their schedule (late sends / requests):")
        for (mode, conc, stream, t), n, done in late:
            print(f"- {t}, {conc} clients, {mode}, {'stream' if stream else 'JSON'}: {n} / {done}")


if __name__ == "__main__":
    main()
