"""tokenomy report against ccusage on a ~1 GB Claude Code history, in the same run.

    python bench/bench_report.py [--size-mb 1000] [--repeat 1]

1. Builds ``bench/.work/claude/projects`` by copying the real transcripts in
   ``../shared/workloads/claude-code-*`` with fresh ids (session uuids, ``msg_`` message ids and
   ``req_`` request ids get a per-copy tag), so nothing dedupes across copies.
2. Installs ccusage with npm into ``bench/.work/npm`` (the newest version whose native binary
   the registry has) and runs it offline.
3. Reads the tree once so both tools start from the same warm page cache, then times, on the
   same tree: ``ccusage session --offline --json`` and ``tokenomy report --json`` with a fresh
   index (cold), then ``tokenomy report --json`` again over the unchanged tree (warm: served from
   the report memo), then once more with one response appended to the largest session (the
   incremental index reads the appended bytes only; the file is restored afterwards).
4. Checks both agree on input, cache write, cache read and output totals, and that they equal
   the per-copy totals times the number of copies.

tokenomy runs with its bytecode cached (``PYTHONPYCACHEPREFIX`` under ``bench/.work``), as an
installed package has it, even where ``PYTHONDONTWRITEBYTECODE`` is set: otherwise every run
would compile the package from source first.

Peak memory is measured two ways: ``ru_maxrss`` from ``wait4`` (the largest single process of the
command) and the largest sum of RSS over the whole process tree, sampled every 20 ms (tokenomy
scans with worker processes, so the sum is the figure that matters).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
WORKLOADS = ROOT.parent / "shared" / "workloads"
TREE = WORK / "claude"
NPM_DIR = WORK / "npm"
VENV_BIN = ROOT / ".venv" / "bin"
GENERATOR_VERSION = 1
PROJECTS = 40  # copies are spread over this many project folders

# a uuid's first 8 hex digits (replaced by the copy tag), or a message / request id prefix
# (the tag is inserted after it): either way, the copy's text is tag.join(segments)
_ID = re.compile(rb"[0-9a-f]{8}(?=-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})|(?<=\"msg_)|(?<=\"req_)")
_UUID_NAME = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

TOTAL_KEYS = {  # tokenomy --json totals key -> ccusage totals key
    "input_tokens": "inputTokens",
    "cache_creation_input_tokens": "cacheCreationTokens",
    "cache_read_input_tokens": "cacheReadTokens",
    "output_tokens": "outputTokens",
}


# ----------------------------------------------------------------------------------------------
# The history


@dataclass
class Template:
    rel: str  # path under a project folder, ids marked
    segments: list[bytes]


def _samples() -> list[Path]:
    out: list[Path] = []
    for folder in sorted(WORKLOADS.glob("claude-code-*")):
        out.extend(p for p in sorted(folder.rglob("*.jsonl")) if "peer_expected" not in p.parts)
    if not out:
        sys.exit(f"no Claude Code samples under {WORKLOADS}/claude-code-*")
    return out


def _templates(samples: list[Path]) -> list[Template]:
    out = []
    for p in samples:
        rel = str(p.relative_to(p.parent if p.parent.name == "sessions" else _sample_root(p)))
        out.append(Template(rel=rel, segments=_ID.split(p.read_bytes())))
    return out


def _sample_root(p: Path) -> Path:
    for parent in p.parents:
        if parent.parent == WORKLOADS:
            return parent
    return p.parent


def _copy_rel(rel: str, tag: str) -> str:
    parts = []
    for part in rel.split("/"):
        if _UUID_NAME.match(part):
            parts.append(tag + part[8:])
        elif part.endswith(".jsonl") and not part.startswith("agent-"):
            parts.append(f"{tag}-{part}")  # short.jsonl, tool_heavy.jsonl: unique per copy
        else:
            parts.append(part)
    return "/".join(parts)


def build_tree(size_mb: float) -> tuple[int, int]:
    """Write the history (reused when it was built with the same size); returns (copies, bytes)."""
    templates = _templates(_samples())
    per_copy = sum(sum(len(s) for s in t.segments) + 8 * (len(t.segments) - 1) for t in templates)
    copies = max(1, math.ceil(size_mb * 1e6 / per_copy))
    marker = TREE / "built.json"
    want = {"generator": GENERATOR_VERSION, "copies": copies, "per_copy": per_copy}
    if marker.exists() and json.loads(marker.read_text()) == want:
        return copies, copies * per_copy
    shutil.rmtree(TREE, ignore_errors=True)
    t0 = time.perf_counter()
    for k in range(copies):
        tag = f"{k + 1:08x}"
        btag = tag.encode()
        project = TREE / "projects" / f"-home-bench-project-{k % PROJECTS:02d}"
        for t in templates:
            dest = project / _copy_rel(t.rel, tag)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(btag.join(t.segments))
    marker.write_text(json.dumps(want))
    print(
        f"built {copies} copies ({copies * per_copy / 1e6:,.0f} MB) in {time.perf_counter() - t0:.1f}s",
        flush=True,
    )
    return copies, copies * per_copy


def warm_cache(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for f in files:
            with open(os.path.join(dirpath, f), "rb") as fh:
                while fh.read(1 << 24):
                    pass


# ----------------------------------------------------------------------------------------------
# ccusage


def _npm(*args: str) -> str:
    res = subprocess.run(["npm", *args], capture_output=True, text=True, timeout=600)
    if res.returncode:
        sys.exit(f"npm {' '.join(args)} failed: {res.stderr.strip()[-500:]}")
    return res.stdout.strip()


def _native_package() -> str:
    arch = {"x86_64": "x64", "aarch64": "arm64", "arm64": "arm64"}[os.uname().machine]
    return f"@ccusage/ccusage-linux-{arch}"


def install_ccusage() -> tuple[Path, str]:
    """ccusage in bench/.work/npm: the newest release whose native binary the registry serves."""
    latest = _npm("view", "ccusage", "version")
    native = _native_package()
    binary = NPM_DIR / "node_modules" / ".bin" / "ccusage"
    installed = NPM_DIR / "node_modules" / "ccusage" / "package.json"
    native_dir = NPM_DIR / "node_modules" / native
    if installed.exists() and native_dir.exists():
        return binary, json.loads(installed.read_text())["version"]
    # the wrapper package can be newer than its platform binaries on a mirror: pin to one that exists
    native_versions = json.loads(_npm("view", native, "versions", "--json"))
    version = latest if latest in native_versions else native_versions[-1]
    NPM_DIR.mkdir(parents=True, exist_ok=True)
    (NPM_DIR / "package.json").write_text('{"name": "tokenomy-bench-ccusage", "private": true}\n')
    _npm("install", "--prefix", str(NPM_DIR), "--no-audit", "--no-fund", f"ccusage@{version}")
    if not native_dir.exists():
        sys.exit(f"ccusage {version} installed without its native binary {native}")
    print(f"installed ccusage {version} (latest on the registry: {latest})", flush=True)
    return binary, version


# ----------------------------------------------------------------------------------------------
# Timing


def _tree_rss(root: int) -> int:
    """Sum of RSS (bytes) of ``root`` and every descendant."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        pid = int(name)
        children.setdefault(int(fields[1]), []).append(pid)
        rss[pid] = int(fields[21]) * page
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


@dataclass
class Timed:
    label: str
    wall_s: float
    max_rss: int  # largest single process (wait4)
    tree_rss: int  # largest sampled sum over the process tree
    cpu_s: float  # user + system time of the command and its children
    stdout: str
    extra: dict[str, Any] = field(default_factory=dict)


def timed(label: str, cmd: list[str], env: dict[str, str]) -> Timed:
    out_path = WORK / f"{label.replace(' ', '_')}.out"
    with open(out_path, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, env=env)
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _tree_rss(proc.pid))
                done.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode:
        sys.exit(f"{label} failed ({proc.returncode}): {err.strip()[-800:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return Timed(label, wall, usage.ru_maxrss * 1024, peak[0], cpu, out_path.read_text())


def _tokenomy_totals(t: Timed) -> dict[str, int]:
    data = json.loads(t.stdout)
    return {k: int(data["totals"][k]) for k in (*TOTAL_KEYS, "requests")}


def _ccusage_totals(t: Timed) -> dict[str, int]:
    data = json.loads(t.stdout)
    return {k: int(data["totals"][v]) for k, v in TOTAL_KEYS.items()}


def _per_copy_totals(env: dict[str, str]) -> dict[str, int]:
    """tokenomy's totals over one copy of the samples (the copies multiply these exactly)."""
    one = WORK / "one-copy"
    shutil.rmtree(one, ignore_errors=True)
    for t in _templates(_samples()):
        dest = one / "projects" / "p" / _copy_rel(t.rel, "00000000")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(b"00000000".join(t.segments))
    res = subprocess.run(
        [str(VENV_BIN / "tokenomy"), "report", "--json", "--no-index", str(one / "projects")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    data = json.loads(res.stdout)
    return {k: int(data["totals"][k]) for k in (*TOTAL_KEYS, "requests")}


def _largest_session(root: Path) -> Path:
    return max(
        (p for p in root.rglob("*.jsonl") if "subagents" not in p.parts), key=lambda p: p.stat().st_size
    )


@contextmanager
def _appended(path: Path, k: int) -> Iterator[None]:
    """One more response (a copy of the file's last assistant line with fresh ids) appended to the
    session while the block runs, as a live Claude Code session grows; then the file is restored."""
    original = path.read_bytes()
    line = next(x for x in reversed(original.splitlines()) if b'"type":"assistant"' in x)
    rec = json.loads(line)
    rec["message"]["id"] = f"msg_bench_appended_{k}"
    rec["requestId"] = f"req_bench_appended_{k}"
    try:
        with path.open("ab") as fh:
            fh.write(json.dumps(rec).encode() + b"\n")
        yield
    finally:
        path.write_bytes(original)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--size-mb", type=float, default=1000.0, help="size of the history to build (default 1000)"
    )
    ap.add_argument("--repeat", type=int, default=1, help="timed rounds; the best of each is reported")
    args = ap.parse_args()

    WORK.mkdir(parents=True, exist_ok=True)
    copies, size = build_tree(args.size_mb)
    n_files = sum(len(f) for _, _, f in os.walk(TREE / "projects"))
    ccusage, cc_version = install_ccusage()
    drop = ("CLAUDE_CONFIG_DIR", "TOKENOMY_HOME", "PYTHONDONTWRITEBYTECODE")
    base_env = {k: v for k, v in os.environ.items() if k not in drop}
    base_env["TOKENOMY_HOME"] = str(WORK / "home-scratch")
    # bytecode cached as an installed package has it (pip compiles on install); kept out of the repo
    base_env["PYTHONPYCACHEPREFIX"] = str(WORK / "pycache")
    per_copy = _per_copy_totals(base_env)
    warm_cache(TREE)
    env = dict(base_env, CLAUDE_CONFIG_DIR=str(TREE))
    tokenomy = [str(VENV_BIN / "tokenomy"), "report", "--json"]

    rounds: dict[str, list[Timed]] = {"ccusage": [], "cold": [], "warm": [], "appended": []}
    grown = _largest_session(TREE / "projects")
    for r in range(args.repeat):
        rounds["ccusage"].append(timed("ccusage", [str(ccusage), "session", "--offline", "--json"], env))
        home = WORK / f"home-{r}"
        shutil.rmtree(home, ignore_errors=True)
        run_env = dict(env, TOKENOMY_HOME=str(home))
        rounds["cold"].append(timed("tokenomy cold", tokenomy, run_env))
        rounds["warm"].append(timed("tokenomy warm", tokenomy, run_env))
        with _appended(grown, r):
            t = timed("tokenomy appended", tokenomy, run_env)
        t.extra["requests"] = _tokenomy_totals(t)["requests"]
        rounds["appended"].append(t)
    best = {k: min(v, key=lambda t: t.wall_s) for k, v in rounds.items()}

    cc, cold, warm = (
        _ccusage_totals(best["ccusage"]),
        _tokenomy_totals(best["cold"]),
        _tokenomy_totals(best["warm"]),
    )
    expected = {k: v * copies for k, v in per_copy.items()}
    print()
    print(
        f"history: {size / 1e6:,.0f} MB in {n_files:,} files ({copies} copies of the samples), {os.cpu_count()} cores"
    )
    load = os.getloadavg()[0]
    print(
        f"ccusage {cc_version} (native binary) vs tokenomy report, best of {args.repeat}; load average {load:.1f}"
    )
    sift = subprocess.run(
        [
            str(VENV_BIN / "python"),
            "-c",
            "from tokenomy.sources._sift import NATIVE; print(NATIVE is not None)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(
        f"tokenomy's line sift: {'C (tokenomy/sources/_csift.c)' if sift == 'True' else 'pure Python (no compiler)'}"
    )
    print()
    head = f"{'run':<16}{'wall s':>9}{'cpu s':>8}{'vs ccusage':>12}{'max RSS MB':>12}{'tree RSS MB':>13}"
    print(head)
    print("-" * len(head))
    base = best["ccusage"].wall_s
    for key in ("ccusage", "cold", "warm", "appended"):
        t = best[key]
        ratio = "1.00" if key == "ccusage" else f"{t.wall_s / base:.3f}"
        print(
            f"{t.label:<16}{t.wall_s:>9.2f}{t.cpu_s:>8.2f}{ratio:>12}{t.max_rss / 1e6:>12.0f}{t.tree_rss / 1e6:>13.0f}"
        )
    print()
    head2 = f"{'total':<30}{'ccusage':>16}{'tokenomy':>16}{'expected':>16}  agree"
    print(head2)
    print("-" * len(head2))
    agree = True
    for k in TOTAL_KEYS:
        ok = cc[k] == cold[k] == warm[k] == expected[k]
        agree &= ok
        print(f"{k:<30}{cc[k]:>16,}{cold[k]:>16,}{expected[k]:>16,}  {'yes' if ok else 'NO'}")
    print(f"{'requests':<30}{'':>16}{cold['requests']:>16,}{expected['requests']:>16,}")
    appended_ok = best["appended"].extra["requests"] == expected["requests"] + 1
    agree &= appended_ok
    print(
        f"one response appended: {best['appended'].extra['requests']:,} requests ({'yes' if appended_ok else 'NO'})"
    )
    cold_ratio = best["cold"].wall_s / base
    warm_speedup = base / best["warm"].wall_s
    appended_speedup = base / best["appended"].wall_s
    print()
    print(
        f"cold time ratio tokenomy/ccusage: {cold_ratio:.3f} (target <= 0.5): {'met' if cold_ratio <= 0.5 else 'MISSED'}"
    )
    print(
        f"warm run vs ccusage: {warm_speedup:.1f}x faster (target >= 20x): {'met' if warm_speedup >= 20 else 'MISSED'}"
    )
    print(
        f"one session appended (index reads the new bytes only): {appended_speedup:.1f}x faster than ccusage"
    )
    peak = max(best["cold"].tree_rss, best["warm"].tree_rss, best["appended"].tree_rss)
    print(f"tokenomy peak memory (process tree): {peak / 1e6:,.0f} MB (target well under 1 GB)")
    result = {
        "size_bytes": size,
        "files": n_files,
        "copies": copies,
        "cores": os.cpu_count(),
        "ccusage_version": cc_version,
        "wall_s": {k: t.wall_s for k, t in best.items()},
        "cpu_s": {k: t.cpu_s for k, t in best.items()},
        "max_rss_bytes": {k: t.max_rss for k, t in best.items()},
        "tree_rss_bytes": {k: t.tree_rss for k, t in best.items()},
        "cold_ratio": cold_ratio,
        "warm_speedup": warm_speedup,
        "appended_speedup": appended_speedup,
        "totals": {"ccusage": cc, "tokenomy_cold": cold, "tokenomy_warm": warm, "expected": expected},
        "agree": agree,
    }
    (WORK / "results.json").write_text(json.dumps(result, indent=2))
    if not agree:
        sys.exit("totals disagree")


if __name__ == "__main__":
    main()
