"""`hybridex markets add|halt|resume`: operator commands, journaled through the engine.

They go through `TcpEngineClient` like any other command (never a side door into the tables);
the engine's persister writes the `tokens` / `markets` rows from the journal.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from backend.domain.types import MarketState
from backend.engine.client import Intake, Outcome, TokenInfo
from backend.matching.commands import AddMarket, Command, MarketSpec, SetMarketState

app = typer.Typer(
    help="Add markets and change their state, through the engine (journaled). The listed "
    "markets: GET /v1/markets.",
    no_args_is_help=True,
)


def _submit(command: Command, intake: Intake | None = None) -> Outcome:
    from backend.config import get_settings
    from backend.engine.auth import Role
    from backend.engine.tcp_client import TcpEngineClient

    settings = get_settings()

    async def go() -> Outcome:
        client = TcpEngineClient.from_settings(settings, Role.OPERATOR)
        try:
            return await client.submit(command, timeout=10.0, intake=intake)
        finally:
            await client.close()

    return asyncio.run(go())


def _report(outcome: Outcome) -> None:
    for event in outcome.events:
        typer.echo(f"seq {outcome.seq}: {event}")
    if any(type(e).__name__ == "CommandRejected" for e in outcome.events):
        raise typer.Exit(1)


@app.command()
def add(
    market_id: Annotated[str, typer.Argument(help="e.g. WETH-USDC")],
    *,
    base: Annotated[str, typer.Option(help="Base token address.")],
    base_symbol: Annotated[str, typer.Option()],
    base_decimals: Annotated[int, typer.Option()],
    quote: Annotated[str, typer.Option(help="Quote token address.")],
    quote_symbol: Annotated[str, typer.Option()],
    quote_decimals: Annotated[int, typer.Option()],
    tick_size: Annotated[int, typer.Option(help="Price tick, quote base units per 1e18 base.")],
    lot_size: Annotated[int, typer.Option(help="Amount step, base units.")],
    min_amount: Annotated[int, typer.Option(help="Smallest order, base units.")],
    maker_fee_bps: Annotated[int, typer.Option()] = 0,
    taker_fee_bps: Annotated[int, typer.Option()] = 0,
    max_amount: Annotated[int, typer.Option(help="0 = no limit.")] = 0,
    max_notional: Annotated[int, typer.Option(help="0 = no limit.")] = 0,
    price_band_bps: Annotated[int, typer.Option(help="0 = off.")] = 0,
    breaker_move_bps: Annotated[int, typer.Option(help="0 = off.")] = 0,
    breaker_window_s: Annotated[int, typer.Option()] = 0,
) -> None:
    """List a market (journaled `AddMarket`)."""
    from eth_utils.address import to_checksum_address

    base, quote = to_checksum_address(base), to_checksum_address(quote)
    spec = MarketSpec(
        market_id, base, quote, tick_size, lot_size, min_amount,
        maker_fee_bps=maker_fee_bps, taker_fee_bps=taker_fee_bps, max_amount=max_amount,
        max_notional=max_notional, price_band_bps=price_band_bps,
        breaker_move_bps=breaker_move_bps, breaker_window_s=breaker_window_s,
    )  # fmt: skip
    tokens = (
        TokenInfo(base, base_symbol, base_decimals),
        TokenInfo(quote, quote_symbol, quote_decimals),
    )
    _report(_submit(AddMarket(0, 0, spec), Intake(tokens=tokens)))


@app.command()
def halt(market_id: str) -> None:
    """Stop all activity on a market except cancels (`HALTED`)."""
    _report(_submit(SetMarketState(0, 0, market_id, MarketState.HALTED)))


@app.command()
def resume(
    market_id: str,
    state: Annotated[MarketState, typer.Option(help="State to resume into.")] = MarketState.ONLINE,
) -> None:
    """Put a market back into trading (`ONLINE` by default)."""
    _report(_submit(SetMarketState(0, 0, market_id, state)))
