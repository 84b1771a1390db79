"""`hybridex dev`: the whole stack on the embedded default (SQLite + a local anvil)."""

from __future__ import annotations

import typer

from backend.chain.anvil import DEV_RPC_PORT


def dev(
    port: int = typer.Option(DEV_RPC_PORT, help="Port of the local chain's JSON-RPC."),
    chain: str = typer.Option(
        "anvil",
        help="anvil (a child process from the pinned npm toolchain) or eth-tester (py-evm "
        "inside this process, served on the same JSON-RPC port).",
    ),
) -> None:
    """Start the development stack; Ctrl-C stops everything, children included."""
    from backend.devstack.stack import run_until_interrupted

    if chain not in ("anvil", "eth-tester"):
        raise typer.BadParameter("--chain must be anvil or eth-tester")
    run_until_interrupted(typer.echo, port=port, chain=chain)
