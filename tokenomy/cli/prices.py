"""``tokenomy prices``: the price table, or one model as tokenomy resolves it.

Prices are USD per million tokens from ``tokenomy/pricing/prices.toml``; a price that is not known
prints as "unknown", never as 0. ``markdown_table()`` renders the same table for docs/pricing.md.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table

from tokenomy.errors import UserError
from tokenomy.pricing import ModelInfo, all_models, multipliers, resolve

UNKNOWN = "unknown"

_COLUMNS = (
    "model id",
    "input",
    "5m write",
    "1h write",
    "cache read",
    "output",
    "batch in/out",
    "min cache",
    "tokenizer",
    "status",
)


def _money(value: float | None) -> str:
    """``5`` → ``5.00``, ``0.125`` → ``0.125``; ``None`` → ``unknown``."""
    if value is None:
        return UNKNOWN
    text = f"{value:.4f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def _batch(info: ModelInfo) -> str:
    if info.input is None or info.output is None:
        return UNKNOWN
    factor = multipliers()["batch"]
    return f"{_money(info.input * factor)}/{_money(info.output * factor)}"


def _row(info: ModelInfo) -> list[str]:
    return [
        info.id,
        _money(info.input),
        _money(info.cache_write_5m),
        _money(info.cache_write_1h),
        _money(info.cache_read),
        _money(info.output),
        _batch(info),
        f"{info.min_cacheable_tokens:,}",
        info.tokenizer,
        info.status,
    ]


def _as_json(info: ModelInfo) -> dict[str, Any]:
    return {f.name: getattr(info, f.name) for f in dataclasses.fields(info)}


def _models(active_only: bool) -> list[ModelInfo]:
    return [m for m in all_models() if not active_only or m.status != "retired"]


def markdown_table(models: list[ModelInfo] | None = None) -> str:
    """The price table as Markdown (docs/pricing.md embeds this for every model)."""
    rows = [_row(m) for m in (list(all_models()) if models is None else models)]
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "|".join("---" for _ in _COLUMNS) + "|"]
    for row in rows:
        row[0] = f"`{row[0]}`"
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


_GENERATED = re.compile(r"(<!-- \[\[\[cog.*?\]\]\] -->\n)(.*?)(<!-- \[\[\[end\]\]\] -->)", re.S)


def sync_docs(path: Path, *, write: bool = True) -> bool:
    """Regenerate the table between the cog markers of ``path``; True when it was already current."""
    text = path.read_text(encoding="utf-8")
    new = _GENERATED.sub(lambda m: m.group(1) + markdown_table() + m.group(3), text, count=1)
    if new != text and write:
        path.write_text(new, encoding="utf-8")
    return new == text


def _table(models: list[ModelInfo], title: str | None = None) -> Table:
    table = Table(
        title=title,
        caption="USD per million tokens; batch = 50% of input and output",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for i, col in enumerate(_COLUMNS):
        col = col.replace(" ", "\n", 1) if " " in col and i else col
        table.add_column(col, justify="left" if i == 0 or i >= 8 else "right", no_wrap=True)
    for info in models:
        table.add_row(*_row(info), style="dim" if info.status == "retired" else None)
    return table


def _show_one(console: Console, query: str, as_json: bool) -> None:
    res = resolve(query)
    if as_json:
        out = {
            "query": query,
            "exact": res.exact,
            "note": res.note,
            "model": _as_json(res.info) if res.info else None,
        }
        click.echo(json.dumps(out, indent=2))
        return
    info = res.info
    if info is None:
        raise UserError(
            f"unknown model {query!r}: no model in the price table matches it; "
            "run `tokenomy prices` to list the known ids"
        )
    console.print(_table([info], title=info.name))
    if res.note:
        console.print(f"[yellow]note:[/] {res.note}", highlight=False)

    def opt(value: object, suffix: str = "") -> str:
        return UNKNOWN if value is None else f"{value:,}{suffix}" if isinstance(value, int) else f"{value}"

    facts = [
        ("aliases", ", ".join(info.aliases) or "-"),
        ("family", info.family),
        ("context window", opt(info.context_window, " tokens")),
        ("max output", opt(info.max_output, " tokens")),
        ("US-only inference x1.1", "yes" if info.geo_us_multiplier_applies else "no"),
        (
            "tool-use prompt (auto / forced)",
            f"{opt(info.tool_overhead_auto)} / {opt(info.tool_overhead_forced)}",
        ),
    ]
    if info.long_context_threshold is not None:
        facts.append(
            (
                "long context",
                f"> {info.long_context_threshold:,} prompt tokens: "
                f"{_money(info.long_context_input)} in / {_money(info.long_context_output)} out",
            )
        )
    lifecycle = [
        f"{label} {value}"
        for label, value in (
            ("released", info.released),
            ("deprecated", info.deprecated),
            ("retired", info.retired),
            ("retirement not before", info.retire_not_before),
        )
        if value
    ]
    facts.append(("lifecycle", f"{info.status}" + (f" ({'; '.join(lifecycle)})" if lifecycle else "")))
    facts.append(("source", f"{info.source}, checked {info.checked}"))
    for label, value in facts:
        console.print(f"  [bold]{label}:[/] {value}", highlight=False)


@click.command("prices")
@click.argument("model", required=False)
@click.option(
    "--active", "active_only", is_flag=True, help="Leave out retired models (shown dimmed by default)."
)
@click.option(
    "--all", "show_all", is_flag=True, hidden=True, help="Every model (the default; kept for scripts)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON: a list of model objects.")
@click.option("--markdown", is_flag=True, help="Print the table as Markdown (as in docs/pricing.md).")
def prices(model: str | None, active_only: bool, show_all: bool, as_json: bool, markdown: bool) -> None:
    """Show the price table (USD per million tokens), or how MODEL is priced.

    MODEL may be any id a log holds: an alias, a dated, Bedrock or Vertex id; the note says
    when it was priced as a relative. Retired models are listed (dimmed) so old logs can be
    priced; --active leaves them out.
    """
    console = Console()
    if not console.is_terminal:  # a pipe or a file: never squeeze the table into 80 columns
        console = Console(width=max(console.width, 140))
    if model is not None:
        _show_one(console, model, as_json)
        return
    models = _models(active_only and not show_all)
    if as_json:
        click.echo(json.dumps([_as_json(m) for m in models], indent=2))
    elif markdown:
        click.echo(markdown_table(models), nl=False)
    else:
        console.print(_table(models))
        hidden = len(all_models()) - len(models)
        if hidden:
            console.print(f"{hidden} retired models left out (--active).", style="dim")
