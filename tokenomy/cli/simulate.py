"""``tokenomy simulate``: recorded runs replayed under every caching policy, beside the oracle.

Reads runs with ``tokenomy.sources.load_runs`` (or generates a synthetic shape), replays them
in virtual time through the cache engine once per policy, and prints each policy's bill: total
cost, relative to ``none`` and to ``oracle``, cache-hit rate, write and read tokens.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import click
from rich.console import Console

from tokenomy.analysis.simulate import POLICY_NAMES, SimulationResult
from tokenomy.analysis.simulate import simulate as run_simulation
from tokenomy.context import CONTEXT_POLICIES, SIMULATE_TRANSFORMS
from tokenomy.errors import UserError

UNKNOWN = "unknown"


def _money(v: float | None) -> str:
    return UNKNOWN if v is None else f"${v:,.4f}"


def _ratio(v: float | None) -> str:
    return UNKNOWN if v is None else f"{v:.3f}x"


def render_table(result: SimulationResult, console: Console) -> None:
    """The per-policy bill as a table; on a narrow terminal it wraps, it never drops digits."""
    from rich.text import Text

    from tokenomy.report.grid import Column, Grid

    table = Grid(
        [
            Column("policy"),
            *(
                Column(col, justify="right")
                for col in ("cost", "vs none", "vs oracle", "hit rate", "write tok", "read tok", "pings")
            ),
        ]
    )
    for name, r in result.policies.items():
        table.add_row(
            name,
            _money(r.cost_usd),
            _ratio(result.ratio(name, "none")),
            _ratio(result.ratio(name, "oracle")),
            f"{r.hit_rate:.1%}",
            f"{r.usage.cache_creation_input_tokens:,}",
            f"{r.usage.cache_read:,}",
            str(r.pings),
        )
    console.print(Text(f"{result.runs:,} run(s), {result.requests:,} request(s)", style="bold"))
    console.print(table, crop=False)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)


def render_html(result: SimulationResult) -> str:
    """One self-contained HTML page: the table and a bar chart of cost per policy (inline SVG)."""
    costs = {n: r.cost_usd for n, r in result.policies.items()}
    top = max((c for c in costs.values() if c is not None), default=0.0) or 1.0
    bars = []
    for i, (name, c) in enumerate(costs.items()):
        width = 0 if c is None else 560 * c / top
        y = 10 + i * 28
        bars.append(
            f'<text x="0" y="{y + 15}" font-size="13">{html.escape(name)}</text>'
            f'<rect x="150" y="{y}" width="{width:.1f}" height="20" fill="#4a78c2"/>'
            f'<text x="{155 + width:.1f}" y="{y + 15}" font-size="12">{html.escape(_money(c))}</text>'
        )
    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{_money(r.cost_usd)}</td><td>{_ratio(result.ratio(n, 'none'))}</td>"
        f"<td>{_ratio(result.ratio(n, 'oracle'))}</td><td>{r.hit_rate:.1%}</td>"
        f"<td>{r.usage.cache_creation_input_tokens:,}</td><td>{r.usage.cache_read:,}</td></tr>"
        for n, r in result.policies.items()
    )
    height = 20 + 28 * len(costs)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>tokenomy simulate</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}</style></head><body>"
        f"<h1>tokenomy simulate</h1><p>{result.runs:,} run(s), {result.requests:,} request(s)</p>"
        f'<svg width="820" height="{height}" role="img" aria-label="cost per policy">{"".join(bars)}</svg>'
        "<table><tr><th>policy</th><th>cost</th><th>vs none</th><th>vs oracle</th><th>hit rate</th>"
        f"<th>write tokens</th><th>read tokens</th></tr>{rows}</table>"
        + "".join(f"<p>note: {html.escape(n)}</p>" for n in result.notes)
        + "</body></html>"
    )


def _policy_names(given: tuple[str, ...]) -> list[str]:
    """``--policy a,b --policy c`` as ``[a, b, c]``, each checked against the known names."""
    names = [n.strip() for item in given for n in item.split(",") if n.strip()]
    known = (*POLICY_NAMES, *CONTEXT_POLICIES)
    for n in names:
        if n not in known:
            raise UserError(f"unknown policy {n!r} for --policy: choose from {', '.join(known)}")
    return names


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--policy", "policies", multiple=True, metavar="NAME[,NAME...]",
    help=f"Policies to replay (repeatable or comma-separated; default: every caching policy): "
    f"{', '.join(POLICY_NAMES)}; context policies (each + the tokenomy planner): "
    f"{', '.join(CONTEXT_POLICIES)}. none and oracle are always included.",
)  # fmt: skip
@click.option("--model", default=None, help="Re-price the workload for another model (a routing what-if).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--html", "html_file", type=click.Path(dir_okay=False, path_type=Path), help="Also write an HTML chart."
)
@click.option(
    "--synthetic",
    type=click.Choice(["subagents", "sessions", "long", "gaps", "fanout"]),
    help="Use a synthetic workload shape instead of PATHs.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the synthetic workload.")
def simulate(
    paths: tuple[Path, ...],
    policies: tuple[str, ...],
    model: str | None,
    as_json: bool,
    html_file: Path | None,
    synthetic: str | None,
    seed: int,
) -> None:
    """Replay recorded runs under every caching policy, beside the lower bound (oracle)."""
    err = Console(stderr=True)
    if synthetic is not None:
        if paths:
            raise UserError("give either PATHs or --synthetic, not both")
        from tokenomy.analysis.synthetic import generate

        runs = generate(synthetic, seed)
        err.print(f"synthetic workload {synthetic!r}, seed {seed}")
        notes: list[str] = []
    else:
        from tokenomy.sources import load_runs

        from ._logs import log_targets, reading_logs

        with reading_logs(
            index="$TOKENOMY_HOME/ledger.db",
            index_hint="set TOKENOMY_HOME to a writable folder",
            memory_hint="simulate a smaller folder, or one session file",
        ):
            loaded = load_runs(log_targets(paths, "simulate"), with_requests=True)
        runs, notes = loaded.runs, loaded.notes
    if not runs:
        raise UserError("no runs to simulate: pass log files or folders, or --synthetic SHAPE")
    if model is not None:
        from tokenomy.pricing import resolve

        res = resolve(model)
        if res.info is None:
            raise UserError(f"unknown model {model!r} for --model: see `tokenomy prices` for the known ids")
    names = _policy_names(policies)
    if err.is_terminal:  # a large history takes a minute: say which policy is being replayed
        with err.status("replaying") as status:

            def progress(name: str, done: int, total: int) -> None:
                what = f"{len(runs):,} run{'s' if len(runs) != 1 else ''}"
                status.update(f"replaying {what} under {name} ({done + 1}/{total})")

            result = run_simulation(
                runs, names or POLICY_NAMES, model=model, transforms=SIMULATE_TRANSFORMS, progress=progress
            )
    else:
        result = run_simulation(runs, names or POLICY_NAMES, model=model, transforms=SIMULATE_TRANSFORMS)
    if html_file is not None:
        html_file.write_text(render_html(result), encoding="utf-8")
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze the table into 80 columns
        console = Console(width=120)
    render_table(result, console)
    for note in notes:
        err.print(f"note: {note}", highlight=False)
