"""Tickers: last price, best bid/ask and 24 h statistics of a market (SPEC §9), for
`GET /v1/markets/{id}/ticker` and the `ticker:{market}` WebSocket channel.

`TickerCache` shares one computation per market among every WebSocket client of an API
worker: a ticker is recomputed (one database read of the 24 h window, one top-of-book request
to the engine) at most once per `max_age_s`, however many clients watch it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from backend.api import queries
from backend.api.cache import SharedCache
from backend.api.catalog import MarketView
from backend.domain.errors import DexError
from backend.domain.types import PRICE_SCALE
from backend.engine.client import EngineClient

BOOK_TIMEOUT_S = 2.0
Ticker = dict[str, Any]
Reader = Callable[[Callable[[Any], Any]], Awaitable[Any]]


async def compute_ticker(db: Reader, engine: EngineClient, market: MarketView) -> Ticker:
    """The ticker as of now; `db` runs a read in a session (`ApiContext.db`)."""
    end = datetime.now(UTC)
    start = end - timedelta(hours=24)
    mid = market.market_id

    def read(s: Any) -> tuple[Any, Any]:
        return queries.last_trade(s, mid), queries.trades_between(s, mid, start, end)

    last, window = await db(read)
    try:
        snap = await asyncio.wait_for(engine.book(mid, 1), BOOK_TIMEOUT_S)
        bid = str(snap.bids[0][0]) if snap.bids else None
        ask = str(snap.asks[0][0]) if snap.asks else None
    except (DexError, TimeoutError):
        bid = ask = None
    out: Ticker = {
        "market": mid,
        "lastPrice": None if last is None else str(last.price),
        "bestBid": bid,
        "bestAsk": ask,
        "open24h": None,
        "high24h": None,
        "low24h": None,
        "volume24h": "0",
        "quoteVolume24h": "0",
        "change24h": None,
        "changeBps24h": None,
        "trades24h": len(window),
    }
    if window:
        prices = [p for p, _a, _t in window]
        open_, close = prices[0], prices[-1]
        out.update(
            open24h=str(open_),
            high24h=str(max(prices)),
            low24h=str(min(prices)),
            volume24h=str(sum(a for _p, a, _t in window)),
            quoteVolume24h=str(sum(p * a // PRICE_SCALE for p, a, _t in window)),
            change24h=str(close - open_),
            changeBps24h=(close - open_) * 10_000 // open_,
        )
    return out


class TickerCache(SharedCache[Ticker]):
    """Per-market tickers no older than `max_age_s` (see `SharedCache`)."""
