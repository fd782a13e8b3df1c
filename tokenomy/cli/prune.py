"""``tokenomy prune``: shrink one tool output to a token budget, on stdin/stdout."""

from __future__ import annotations

import sys

import click

from tokenomy.context.prune import prune as prune_text
from tokenomy.errors import InputError

MAX_INPUT_BYTES = 256 * 1024 * 1024


@click.command("prune")
@click.argument("file", type=click.Path(allow_dash=True, dir_okay=False), default="-")
@click.option("--budget", type=click.IntRange(min=1), help="Keep at most this many tokens.")
@click.option(
    "--ratio", type=click.FloatRange(min=0.0, max=1.0, min_open=True), help="Keep this share of the tokens."
)
@click.option("--stats", is_flag=True, help="Print tokens before and after to stderr.")
def prune(file: str, budget: int | None, ratio: float | None, stats: bool) -> None:
    """Prune a tool output (FILE or - for stdin) to a token budget; the result goes to stdout.

    Keeps error and warning lines with their context, stack traces, failing tests, file paths
    with line numbers, the head and the tail; collapses repeated lines; strips ANSI codes and
    progress bars. Says what it removed: [… 312 similar lines removed …].
    """
    if budget is not None and ratio is not None:
        raise click.UsageError("give --budget or --ratio, not both")
    try:
        if file == "-":
            data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        else:
            with open(file, "rb") as fh:
                data = fh.read(MAX_INPUT_BYTES + 1)
    except OSError as e:
        raise InputError(f"cannot read {file}: {e.strerror}; pass a readable file or - for stdin") from e
    if len(data) > MAX_INPUT_BYTES:
        raise InputError(
            f"{file} is over {MAX_INPUT_BYTES // 2**20} MB; prune a tail of it instead (tail -c)"
        )
    result = prune_text(data, budget=budget, ratio=ratio)
    sys.stdout.write(result.text)
    if result.text:
        sys.stdout.write("\n")
    if stats:
        click.echo(
            f"{result.original_tokens:,} → {result.tokens:,} tokens ({result.removed_lines:,} lines removed)",
            err=True,
        )
