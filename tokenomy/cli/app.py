"""The ``tokenomy`` command line: one click group, one module per command group.

``main()`` turns every ``UserError`` into one line on stderr and exit status 2 (``_exits``): a
user's mistake never prints a traceback. ``--debug`` shows the traceback anyway.
"""

from __future__ import annotations

import importlib
import sys

import click

from tokenomy.cli._exits import leave, user_exits

# (module, attribute) of every command; each module defines one click command or group.
COMMANDS: list[tuple[str, str]] = [
    ("tokenomy.cli.doctor", "doctor"),
    ("tokenomy.cli.prices", "prices"),
    ("tokenomy.cli.prune", "prune"),
    ("tokenomy.cli.report", "report"),
    ("tokenomy.cli.emulate", "emulate"),
    ("tokenomy.cli.serve", "serve"),
    ("tokenomy.cli.batch", "batch"),
    ("tokenomy.cli.simulate", "simulate"),
]


class _LazyGroup(click.Group):
    """Imports a command's module only when it runs, so ``tokenomy --help`` stays fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name.replace("_", "-") for _, name in COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        for module, attr in COMMANDS:
            if attr.replace("_", "-") == cmd_name:
                cmd = getattr(importlib.import_module(module), attr)
                assert isinstance(cmd, click.Command)
                return cmd
        return None


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="tokenomy")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """tokenomy: where your Claude tokens went, why the cache missed, and how to pay less."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    _invoked[0] = ctx.invoked_subcommand


# Commands that read logs and print: once they return, their output is written and their
# databases closed, and all an interpreter's teardown would do is free memory and unload modules
# (~20 ms, a tenth of what is left of a cold report once the scan is done). ``run`` skips it.
_READ_ONLY = frozenset({"report", "doctor", "simulate", "prices"})
_invoked: list[str | None] = [None]  # the subcommand main() ran last


def main(argv: list[str] | None = None) -> None:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    with user_exits(debug):
        try:
            cli.main(args=argv, prog_name="tokenomy", standalone_mode=False)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(130)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)


def run() -> None:
    """What the console script (``tokenomy.console``) runs: ``main()``, then, when a read-only command
    succeeded, leave without the interpreter's teardown (``main`` itself returns, for tests)."""
    _invoked[0] = None
    main()
    if _invoked[0] in _READ_ONLY:
        leave()
