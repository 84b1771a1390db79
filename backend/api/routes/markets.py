"""Market data: `/v1/markets`, book (live, from the engine), trades, tickers, candles."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from backend.api import queries
from backend.api.answers import (
    BookAnswer,
    CandlesAnswer,
    MarketAnswer,
    MarketsAnswer,
    TickerAnswer,
    TickersAnswer,
    TradesAnswer,
)
from backend.api.deps import ctx
from backend.api.openapi import EDGE, PARAMS, errors
from backend.api.responses import Json
from backend.api.serializers import levels, trade_row
from backend.api.tickers import BOOK_TIMEOUT_S, compute_ticker
from backend.domain.errors import DexError, ErrorCode

E = ErrorCode

router = APIRouter(prefix="/v1", tags=["markets"])

INTERVALS: dict[str, int] = {"1m": 60, "5m": 300, "1h": 3600, "1d": 86400}
MAX_CANDLES = 1000


@router.get(
    "/markets",
    summary="Listed markets with sizes, fees and state",
    response_model=MarketsAnswer,
    responses=errors(*EDGE),
)
async def list_markets(request: Request) -> Response:
    markets = await ctx(request).markets.all()
    return Json({"markets": [m.as_json() for m in markets]})


@router.get(
    "/markets/{market_id}",
    summary="One market",
    response_model=MarketAnswer,
    responses=errors(*EDGE, E.UNKNOWN_MARKET),
)
async def get_market(request: Request, market_id: str) -> Response:
    market = await ctx(request).markets.by_id(market_id)
    return Json(market.as_json())


@router.get(
    "/markets/{market_id}/book",
    summary="Aggregated levels [price, amount], best first, with the book's sequence numbers",
    operation_id="get_book",
    response_model=BookAnswer,
    responses=errors(*EDGE, *PARAMS, E.UNKNOWN_MARKET, E.ENGINE_UNAVAILABLE),
)
async def book(request: Request, market_id: str, depth: int = Query(50, ge=1, le=1000)) -> Response:
    c = ctx(request)
    await c.markets.by_id(market_id)
    try:
        snap = await asyncio.wait_for(c.engine.book(market_id, depth), BOOK_TIMEOUT_S)
    except TimeoutError:  # a busy or stalled engine is the service's 503, never a 500
        raise DexError(
            ErrorCode.ENGINE_UNAVAILABLE,
            f"the engine did not answer the book request within {BOOK_TIMEOUT_S} s; retry",
        ) from None
    return Json(
        {
            "market": snap.market_id,
            "seq": snap.seq,
            "feedSeq": snap.feed_seq,
            "bids": levels(snap.bids),
            "asks": levels(snap.asks),
        }
    )


@router.get(
    "/markets/{market_id}/trades",
    summary="Recent trades, newest first",
    operation_id="list_trades",
    response_model=TradesAnswer,
    responses=errors(*EDGE, *PARAMS, E.UNKNOWN_MARKET),
)
async def trades(
    request: Request,
    market_id: str,
    limit: int = Query(100, ge=1, le=1000),
    before: int | None = Query(None, ge=1, description="Only trades with an id below this."),
) -> Response:
    c = ctx(request)
    await c.markets.by_id(market_id)
    rows = await c.db(lambda s: queries.recent_trades(s, market_id, limit, before))
    return Json({"market": market_id, "trades": [trade_row(r) for r in rows]})


@router.get(
    "/markets/{market_id}/ticker",
    summary="Last price, best bid/ask, 24 h statistics",
    operation_id="get_ticker",
    response_model=TickerAnswer,
    responses=errors(*EDGE, E.UNKNOWN_MARKET),
)
async def ticker(request: Request, market_id: str) -> Response:
    c = ctx(request)
    market = await c.markets.by_id(market_id)
    return Json(await compute_ticker(c.db, c.engine, market))


@router.get(
    "/tickers",
    summary="The ticker of every market",
    operation_id="list_tickers",
    response_model=TickersAnswer,
    responses=errors(*EDGE),
)
async def tickers(request: Request) -> Response:
    c = ctx(request)
    return Json(
        {"tickers": [await compute_ticker(c.db, c.engine, m) for m in await c.markets.all()]}
    )


@router.get(
    "/markets/{market_id}/candles",
    summary="OHLCV candles from trades",
    operation_id="get_candles",
    response_model=CandlesAnswer,
    responses=errors(*EDGE, *PARAMS, E.UNKNOWN_MARKET),
)
async def candles(
    request: Request,
    market_id: str,
    interval: Literal["1m", "5m", "1h", "1d"] = Query("1m"),
    from_: int | None = Query(None, alias="from", ge=0, description="Unix seconds (inclusive)."),
    to: int | None = Query(None, ge=0, description="Unix seconds (exclusive); default now."),
) -> Response:
    c = ctx(request)
    await c.markets.by_id(market_id)
    step = INTERVALS[interval]
    end = int(time.time()) + 1 if to is None else to
    start = end - step * 100 if from_ is None else from_
    start -= start % step
    if end <= start:
        raise DexError(ErrorCode.INVALID_REQUEST, "to: must be after from")
    if (end - start) // step > MAX_CANDLES:
        raise DexError(ErrorCode.INVALID_REQUEST, f"at most {MAX_CANDLES} candles per request")
    lo, hi = datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
    window = await c.db(lambda s: queries.trades_between(s, market_id, lo, hi))
    buckets: dict[int, list[int]] = {}
    for price, amount, at in window:
        t = int(at.timestamp())
        key = t - t % step
        b = buckets.get(key)
        if b is None:
            buckets[key] = [price, price, price, price, amount, price * amount // 10**18, 1]
        else:
            b[1] = max(b[1], price)
            b[2] = min(b[2], price)
            b[3] = price
            b[4] += amount
            b[5] += price * amount // 10**18
            b[6] += 1
    return Json(
        {
            "market": market_id,
            "interval": interval,
            "candles": [
                {
                    "time": key,
                    "open": str(b[0]),
                    "high": str(b[1]),
                    "low": str(b[2]),
                    "close": str(b[3]),
                    "volume": str(b[4]),
                    "quoteVolume": str(b[5]),
                    "trades": b[6],
                }
                for key, b in sorted(buckets.items())
            ],
        }
    )
