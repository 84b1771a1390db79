"""`hybridex demo`: deposit, trade, settle on chain and withdraw against a running stack."""

from __future__ import annotations

from typing import Annotated

import typer


def demo(
    api: Annotated[str, typer.Option(help="API base URL.")] = "http://127.0.0.1:8000",
    rpc: Annotated[str, typer.Option(help="JSON-RPC URL of the chain.")] = "http://127.0.0.1:8545",
    market: Annotated[str, typer.Option(help="Market to trade on.")] = "WETH-USDC",
    timeout: Annotated[float, typer.Option(help="Seconds each step may take.")] = 60.0,
) -> None:
    """Run a scripted round trip with two dev accounts; exit 1 if a step does not happen."""
    from backend.devstack.demo import Demo, DemoConfig, DemoFailedError

    config = DemoConfig(api_url=api, rpc_url=rpc, market=market, step_timeout_s=timeout)
    try:
        Demo(config, typer.echo).run()
    except DemoFailedError as exc:
        typer.echo(f"demo failed: {exc}", err=True)
        raise typer.Exit(1) from exc
