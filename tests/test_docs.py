"""Docs are tested: every command is in the README and in ``tokenomy --help``."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tokenomy.cli import COMMANDS, cli

ROOT = Path(__file__).resolve().parent.parent


def test_every_command_is_in_the_readme_and_help() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    help_text = CliRunner().invoke(cli, ["--help"]).output
    for _, name in COMMANDS:
        command = name.replace("_", "-")
        assert f"tokenomy {command}" in readme, f"README lacks an example of `tokenomy {command}`"
        assert command in help_text


def test_readme_quick_start_is_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    assert "make demo" in quick and "make test" in quick


def test_every_command_has_help() -> None:
    runner = CliRunner()
    for _, name in COMMANDS:
        res = runner.invoke(cli, [name.replace("_", "-"), "--help"])
        assert res.exit_code == 0, (name, res.output)
