"""The operator docs say what the code does: commands with every required flag, where logs go,
how the indexer reaches the engine."""

from __future__ import annotations

import re
import shlex
import sys
from typing import Any

import pytest
import structlog
import typer.main

from backend.cli.main import app
from backend.logging import configure_logging
from tests.unit.docker.deployfiles import REPO

DOCS = REPO / "docs"


def shell_commands(text: str) -> list[list[str]]:
    """The `hybridex …` lines of the ```sh blocks, continuation lines joined, comments cut."""
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["hybridex"]:
                out.append(words[1:])
    return out


def test_the_markets_add_example_passes_every_required_option() -> None:
    group: Any = typer.main.get_command(app)
    command = group.commands["markets"].commands["add"]
    examples = [w for w in shell_commands((DOCS / "deployment.md").read_text()) if w[:2] == [
        "markets", "add"]]  # fmt: skip
    assert examples, "docs/deployment.md shows how to list a market"
    context = command.make_context("add", examples[0][2:])  # raises on a missing option
    required = {p.name for p in command.params if p.required}
    assert required <= {k for k, v in context.params.items() if v is not None}


def test_logs_go_to_stderr_as_the_deployment_docs_say(capfd: pytest.CaptureFixture[str]) -> None:
    text = (DOCS / "deployment.md").read_text()
    assert "on stderr" in text
    assert not re.search(r"[Ll]ogs [^.]*on stdout", text)
    configure_logging("INFO", json=True)
    try:
        structlog.get_logger("t").info("where_logs_go")
        sys.stderr.flush()
        out, err = capfd.readouterr()
        assert "where_logs_go" in err
        assert "where_logs_go" not in out
    finally:
        structlog.reset_defaults()


def test_indexer_docs_do_not_send_production_to_the_embedded_engine() -> None:
    text = (DOCS / "indexer.md").read_text()
    chunks = [c for c in re.split(r"\n\s*\n|\n- ", text) if "--embedded-engine" in c]
    assert chunks
    for chunk in chunks:
        flat = " ".join(chunk.split())
        assert "development" in flat, flat
        assert not re.search(r"production needs[^.]*--embedded-engine", flat), flat
    operating = next(c for c in chunks if c.lstrip("- ").startswith("`hybridex indexer`"))
    assert "over TCP" in operating
