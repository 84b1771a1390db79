"""`hybridex dev`: the whole stack on the embedded default (SQLite + a local anvil)."""

from __future__ import annotations

import typer

from backend.chain.anvil import DEV_RPC_PORT


def dev(
    port: int = typer.Option(DEV_RPC_PORT, help="Port of the local anvil JSON-RPC."),
) -> None:
    """Start the development stack; Ctrl-C stops everything, children included."""
    from backend.devstack.stack import run_until_interrupted

    run_until_interrupted(typer.echo, port=port)
