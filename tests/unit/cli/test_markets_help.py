"""`hybridex markets --help` advertises only what the group does."""

from __future__ import annotations

import re

import typer.main
from typer.testing import CliRunner

from backend.cli.main import app

VERBS = {"list", "add", "halt", "resume", "remove", "delete", "show", "edit"}


def test_markets_help_names_no_subcommand_it_lacks() -> None:
    group = typer.main.get_command(app).commands["markets"]  # type: ignore[attr-defined]
    subcommands = set(group.commands)
    assert subcommands == {"add", "halt", "resume"}
    result = CliRunner().invoke(app, ["markets", "--help"])
    assert result.exit_code == 0
    summary = result.output.split("Options")[0]
    advertised = {w.lower() for w in re.findall(r"[A-Za-z]+", summary)} & VERBS
    assert advertised <= subcommands, f"the help offers {sorted(advertised - subcommands)}"
    assert "GET /v1/markets" in summary  # where the list is
