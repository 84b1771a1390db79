"""Listed markets as the API sees them: read from the `markets` / `tokens` tables (written by the
engine when it lists a market) and cached briefly, so order intake maps (baseToken, quoteToken)
to a market id without a database round trip.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from backend.db import models
from backend.domain.errors import DexError, ErrorCode
from backend.domain.types import ZERO_ADDRESS, MarketState


@dataclass(frozen=True, slots=True)
class TokenView:
    address: str
    symbol: str
    decimals: int

    def as_json(self) -> dict[str, Any]:
        return {"address": self.address, "symbol": self.symbol, "decimals": self.decimals}


@dataclass(frozen=True, slots=True)
class MarketView:
    market_id: str
    base: TokenView
    quote: TokenView
    tick_size: int
    lot_size: int
    min_amount: int
    max_amount: int | None
    max_notional: int | None
    maker_fee_bps: int
    taker_fee_bps: int
    price_band_bps: int | None
    state: MarketState

    def as_json(self) -> dict[str, Any]:
        def opt(v: int | None) -> str | None:
            return None if v is None else str(v)

        return {
            "id": self.market_id,
            "base": self.base.as_json(),
            "quote": self.quote.as_json(),
            "tickSize": str(self.tick_size),
            "lotSize": str(self.lot_size),
            "minAmount": str(self.min_amount),
            "maxAmount": opt(self.max_amount),
            "maxNotional": opt(self.max_notional),
            "makerFeeBps": self.maker_fee_bps,
            "takerFeeBps": self.taker_fee_bps,
            "priceBandBps": self.price_band_bps,
            "state": self.state.value,
        }


def load_markets(session: Session) -> list[MarketView]:
    tokens = {t.address: t for t in session.scalars(select(models.Token))}
    out: list[MarketView] = []
    for m in session.scalars(select(models.Market).order_by(models.Market.id)):
        base, quote = tokens[m.base_token], tokens[m.quote_token]
        out.append(
            MarketView(
                market_id=m.id,
                base=TokenView(base.address, base.symbol, base.decimals),
                quote=TokenView(quote.address, quote.symbol, quote.decimals),
                tick_size=m.tick_size,
                lot_size=m.lot_size,
                min_amount=m.min_amount,
                max_amount=m.max_amount,
                max_notional=m.max_notional,
                maker_fee_bps=m.maker_fee_bps,
                taker_fee_bps=m.taker_fee_bps,
                price_band_bps=m.price_band_bps,
                state=m.state,
            )
        )
    return out


class MarketCatalog:
    """Markets by id and by token pair, refreshed from the database at most every `ttl_s`; an
    unknown pair forces one refresh (a market listed a moment ago is found)."""

    def __init__(self, sessions: sessionmaker[Session], ttl_s: float = 2.0) -> None:
        self._sessions = sessions
        self._ttl_s = ttl_s
        self._loaded_at = -1e18
        self._by_id: dict[str, MarketView] = {}
        self._by_pair: dict[tuple[str, str], MarketView] = {}
        self._lock = asyncio.Lock()

    def _load(self) -> list[MarketView]:
        with self._sessions() as session:
            return load_markets(session)

    async def refresh(self, *, force: bool = False) -> None:
        async with self._lock:
            if not force and time.monotonic() - self._loaded_at < self._ttl_s:
                return
            markets = await asyncio.to_thread(self._load)
            self._by_id = {m.market_id: m for m in markets}
            self._by_pair = {(m.base.address, m.quote.address): m for m in markets}
            self._loaded_at = time.monotonic()

    async def all(self) -> list[MarketView]:
        await self.refresh()
        return list(self._by_id.values())

    async def by_id(self, market_id: str) -> MarketView:
        await self.refresh()
        market = self._by_id.get(market_id)
        if market is None:
            await self.refresh(force=True)
            market = self._by_id.get(market_id)
        if market is None:
            raise DexError(ErrorCode.UNKNOWN_MARKET, f"unknown market {market_id[:40]!r}")
        return market

    async def by_pair(self, base_token: str, quote_token: str) -> MarketView:
        """The market of a signed order's (checksummed) token pair."""
        if time.monotonic() - self._loaded_at >= self._ttl_s:
            await self.refresh()
        market = self._by_pair.get((base_token, quote_token))
        if market is None:
            await self.refresh(force=True)
            market = self._by_pair.get((base_token, quote_token))
        if market is None:
            raise DexError(
                ErrorCode.UNKNOWN_MARKET,
                f"no market with base {base_token} and quote {quote_token}",
                field="order.baseToken",
            )
        return market

    async def for_cancel_all(self, base_token: str, quote_token: str) -> str | None:
        """The market id a CancelAll names; None when both tokens are zero (every market)."""
        if base_token == ZERO_ADDRESS and quote_token == ZERO_ADDRESS:
            return None
        if ZERO_ADDRESS in (base_token, quote_token):
            raise DexError(
                ErrorCode.INVALID_ORDER,
                "cancelAll: baseToken and quoteToken must both be zero (every market) or both set",
            )
        return (await self.by_pair(base_token, quote_token)).market_id
