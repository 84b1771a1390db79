"""Demo markets of `hybridex dev`, listed through the engine's journaled `AddMarket`.

Tick and lot are chosen so that `lot_size * tick_size` is a multiple of 10^18 (SPEC §2): every
fill's quote amount is then an exact integer.
"""

from __future__ import annotations

from dataclasses import dataclass

from backend.devstack.chain import DeployedToken
from backend.engine.client import Intake, TokenInfo
from backend.matching.commands import AddMarket, MarketSpec


@dataclass(frozen=True)
class DemoMarket:
    base: DeployedToken
    quote: DeployedToken
    tick_size: int
    lot_size: int
    min_amount: int
    maker_fee_bps: int = 10
    taker_fee_bps: int = 20

    @property
    def market_id(self) -> str:
        return f"{self.base.spec.symbol}-{self.quote.spec.symbol}"


def demo_markets(tokens: list[DeployedToken]) -> list[DemoMarket]:
    """WETH-USDC (0.01 USDC ticks, 0.0001 WETH lots) and WBTC-USDC (1 USDC, 0.000001 WBTC)."""
    by_symbol = {t.spec.symbol: t for t in tokens}
    weth, usdc, wbtc = by_symbol["WETH"], by_symbol["USDC"], by_symbol["WBTC"]
    return [
        # price unit: quote base units per base base-unit x 1e18. 0.01 USDC per WETH:
        # 10^4 * 10^18 / 10^18 = 10^4; lot 10^14 wei -> 10^14 * 10^4 = 10^18.
        DemoMarket(weth, usdc, tick_size=10**4, lot_size=10**14, min_amount=10**15),
        # 1 USDC per WBTC: 10^6 * 10^18 / 10^8 = 10^16; lot 100 sat -> 100 * 10^16 = 10^18.
        DemoMarket(wbtc, usdc, tick_size=10**16, lot_size=100, min_amount=1_000),
    ]


def listing_commands(markets: list[DemoMarket]) -> list[tuple[AddMarket, Intake]]:
    out = []
    for m in markets:
        assert (m.lot_size * m.tick_size) % 10**18 == 0, m.market_id
        spec = MarketSpec(
            m.market_id,
            m.base.address,
            m.quote.address,
            m.tick_size,
            m.lot_size,
            m.min_amount,
            maker_fee_bps=m.maker_fee_bps,
            taker_fee_bps=m.taker_fee_bps,
        )
        tokens = tuple(
            TokenInfo(t.address, t.spec.symbol, t.spec.decimals) for t in (m.base, m.quote)
        )
        out.append((AddMarket(0, 0, spec), Intake(tokens=tokens)))
    return out
