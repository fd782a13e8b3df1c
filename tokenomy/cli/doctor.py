"""``tokenomy doctor``: every cache miss in the logs, its cause, what it cost, and the fix.

Without ``--run`` it prints the causes ranked by dollars lost (costliest first), then the
costliest single misses; ``--run ID`` walks one run request by request; ``--json`` prints the
machine shape documented in docs/doctor.md. A user's mistake ends as one line, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from tokenomy.errors import InputError, UserError

if TYPE_CHECKING:
    from rich.console import Console

    from tokenomy.analysis.doctor import DoctorReport, RunDiagnosis
    from tokenomy.model import Run

SOURCES = ("auto", "claude_code", "request_log", "openhands", "ledger")
TOP_MISSES = 10


def _load(paths: Sequence[str], source: str) -> tuple[list[Run], list[str]]:
    from tokenomy.sources import load_runs

    from ._logs import log_targets, reading_logs

    targets = log_targets(paths, "doctor")
    with reading_logs(
        index="$TOKENOMY_HOME/ledger.db",
        index_hint="set TOKENOMY_HOME to a writable folder",
        memory_hint="diagnose a smaller folder, or one session file",
    ):
        result = load_runs(targets, source=source, with_requests=True)
    return list(result.runs), list(result.notes)


def _pick_run(runs: list[Run], run_id: str) -> Run:
    exact = [r for r in runs if r.run_id == run_id]
    if exact:
        return exact[0]
    matches = [r for r in runs if r.run_id.startswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UserError(
            f"no run {run_id!r} in the logs read ({len(runs)} runs); "
            "run `tokenomy doctor` without --run to list the runs with misses"
        )
    shown = ", ".join(r.run_id for r in matches[:5])
    raise UserError(f"--run {run_id!r} matches {len(matches)} runs ({shown}…); give more of the id")


def _console() -> Console:
    from rich.console import Console

    out = Console(soft_wrap=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(width=140, soft_wrap=False)
    return out


def money(value: float | None) -> str:
    """Dollars for people: ``$1.23``, ``$0.0042``; ``unknown`` when the price is not known."""
    if value is None:
        return "unknown"
    if value == 0:
        return "$0"
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4f}"


def render_summary(console: Console, report: DoctorReport, notes: Sequence[str] = ()) -> None:
    """The ranked list: causes by dollars lost, then the costliest single misses."""
    from rich import box
    from rich.table import Table

    requests = sum(r.requests for r in report.runs)
    affected = sum(1 for r in report.runs if r.misses)
    console.print(
        f"[bold]{report.misses:,} cache misses[/] in {affected:,} of {len(report.runs):,} runs "
        f"({requests:,} requests): [bold]{money(report.usd_lost)}[/] paid for tokens that could have been read",
        highlight=False,
    )
    if not report.causes:
        console.print("Every request read what the request before it had cached. Nothing to fix.")
        _notes(console, report, notes)
        return
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
    for col, justify in (
        ("#", "right"),
        ("cause", "left"),
        ("misses", "right"),
        ("runs", "right"),
        ("tokens re-written", "right"),
        ("lost", "right"),
        ("fix", "left"),
    ):
        table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for rank, c in enumerate(report.causes, start=1):
        lost = money(c.usd_lost) + (f" (+{c.unpriced} unpriced)" if c.unpriced else "")
        table.add_row(
            str(rank), c.cause, f"{c.misses:,}", f"{c.runs:,}", f"{c.tokens_rewritten:,}", lost, c.fix
        )
    console.print(table)
    ranked = sorted(
        ((r, m) for r in report.runs for m in r.misses),
        key=lambda rm: (-(rm[1].usd_lost or 0.0), -rm[1].tokens_rewritten),
    )
    seen: dict[tuple[str, str], int] = {}
    worst = []
    for r, m in ranked:  # at most two per run and cause, so one habit does not fill the list
        key = (r.run_id, m.cause)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] <= 2:
            worst.append((r, m))
        if len(worst) >= TOP_MISSES:
            break
    console.print("[bold]Costliest misses[/] (see one run with --run ID):", highlight=False)
    for r, m in worst:
        console.print(
            f"  {money(m.usd_lost):>9}  {r.run_id} request {m.request_index}: [bold]{m.cause}[/] at {m.location}",
            highlight=False,
        )
        console.print(f"             {m.detail}", highlight=False, style="dim")
    _notes(console, report, notes)


def render_run(console: Console, run: RunDiagnosis, notes: Sequence[str] = ()) -> None:
    """One run, request by request: what each read and wrote, and every miss with its fix."""
    from rich import box
    from rich.table import Table

    title = f" — {run.title}" if run.title else ""
    console.print(
        f"[bold]{run.run_id}[/]{title}: {run.requests} requests, {len(run.misses)} misses, "
        f"{money(run.usd_lost)} lost ({run.evidence.replace('_', '-')} evidence)",
        highlight=False,
    )
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
    for col in ("#", "time", "gap", "model", "read", "written", "input", "verdict"):
        table.add_column(col, justify="left" if col in ("model", "verdict", "time") else "right")
    start = next((t.started_at for t in run.turns if t.started_at is not None), None)
    for t in run.turns:
        when = "" if t.started_at is None or start is None else _clock(t.started_at - start)
        gap = "" if t.gap_s is None else _clock(t.gap_s)
        u = t.usage
        if u is None:
            verdict = t.note or "no usage (failed request)"
        elif t.miss is not None:
            verdict = f"[red]MISS {t.miss.cause}[/] {money(t.miss.usd_lost)}"
        elif t.request_index == 1 or t.expected_read == 0:
            verdict = "first request" if t.request_index == 1 else "nothing cached before"
        else:
            verdict = "ok"
        table.add_row(
            str(t.request_index),
            when,
            gap,
            t.model,
            "" if u is None else f"{u.cache_read:,}",
            "" if u is None else f"{u.cache_creation_input_tokens:,}",
            "" if u is None else f"{u.input_tokens:,}",
            verdict,
        )
    console.print(table)
    for m in run.misses:
        console.print(
            f"[bold]request {m.request_index}[/]: {m.cause} at {m.location} — "
            f"{m.tokens_rewritten:,} tokens re-written, {money(m.usd_lost)} lost",
            highlight=False,
        )
        console.print(f"  why: {m.detail}", highlight=False)
        console.print(f"  fix: {m.fix}", highlight=False)
    for note in notes:
        console.print(f"note: {note}", style="dim", highlight=False)


def _notes(console: Console, report: DoctorReport, notes: Sequence[str]) -> None:
    from tokenomy.pricing import pricing_notes

    usage_only = sum(1 for r in report.runs if r.evidence == "usage_only")
    if usage_only:
        console.print(
            f"note: {usage_only} runs have usage only (no request bodies): their causes are inferred from the "
            "usage numbers, gaps, model ids and compaction markers",
            style="dim",
            highlight=False,
        )
    live = sum(1 for r in report.runs if any(t.evidence == "live" for t in r.turns))
    if live:
        console.print(
            f"note: {live} gateway runs were diagnosed live by the gateway, while it held the request bodies "
            "(the ledger keeps only hashes and sizes unless serve --store-bodies)",
            style="dim",
            highlight=False,
        )
    for note in [*notes, *pricing_notes()]:
        console.print(f"note: {note}", style="dim", highlight=False)


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@click.command("doctor")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option(
    "--run", "run_id", metavar="ID", help="Show one run request by request (an id or a unique prefix)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON: runs with their misses, and totals.")
@click.option(
    "--source",
    type=click.Choice(SOURCES),
    default="auto",
    show_default=True,
    help="Log format of the PATHs (auto detects it).",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=str),
    help="The gateway's ledger (tokenomy serve --db): diagnose the requests it served.",
)
def doctor(paths: tuple[str, ...], run_id: str | None, as_json: bool, source: str, db: str | None) -> None:
    """Find every prompt-cache miss in PATHs, name its cause, price it and say the fix.

    PATHs are Claude Code transcripts (the default is ~/.claude/projects), request logs
    (JSONL of {request, response}), OpenHands output or a gateway ledger (--db). With full
    requests the doctor names the exact place that changed; with usage only it infers the cause
    from the numbers.
    """
    if db is not None:
        paths = (*paths, db)
    from tokenomy.analysis.doctor import diagnose, diagnose_run
    from tokenomy.pricing import clear_pricing_notes

    clear_pricing_notes()
    runs, notes = _load(paths, source)
    if not runs:
        raise InputError(
            f"no runs found in {', '.join(paths) or 'the Claude Code history'}; "
            "check the path, or name the format with --source"
        )
    if run_id is not None:
        one = diagnose_run(_pick_run(runs, run_id))
        if as_json:
            _echo_json({"runs": [one.to_json()], "totals": _totals(one)})
        else:
            render_run(_console(), one, notes)
        return
    report = diagnose(runs)
    if as_json:
        _echo_json(report.to_json())
    else:
        render_summary(_console(), report, notes)


def _totals(run: RunDiagnosis) -> dict[str, Any]:
    return {
        "usd_lost": round(run.usd_lost, 6),
        "by_cause": {k: round(v, 6) for k, v in sorted(run.by_cause.items(), key=lambda kv: -kv[1])},
    }


def _echo_json(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    sys.stdout.flush()


__all__ = ["doctor", "money", "render_run", "render_summary"]
