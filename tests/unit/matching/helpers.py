"""Test harness: numbered commands, a clock, and invariants checked after every step."""

from __future__ import annotations

import hashlib
from typing import Any

from backend.domain.types import MarketState, Side, TimeInForce
from backend.matching import commands as c
from backend.matching.engine import FEE_ACCOUNT, Engine
from backend.matching.events import Event

TICK = 10**16  # price unit: P(n) is n/100 quote unit per base unit
LOT = 100
BASE = "0x" + "ba" * 20
QUOTE = "0x" + "c0" * 20
MARKET = "BASE-QUOTE"
ALICE = "0x" + "a1" * 20
BOB = "0x" + "b0" * 20
CAROL = "0x" + "ca" * 20
FEES = FEE_ACCOUNT
BUY, SELL = Side.BUY, Side.SELL
GTC, IOC, FOK, POST_ONLY = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.POST_ONLY


def P(n: int) -> int:
    return n * TICK


def spec(market_id: str = MARKET, **overrides: Any) -> c.MarketSpec:
    fields: dict[str, Any] = {
        "market_id": market_id,
        "base_token": BASE,
        "quote_token": QUOTE,
        "tick_size": TICK,
        "lot_size": LOT,
        "min_amount": LOT,
        "maker_fee_bps": 0,
        "taker_fee_bps": 0,
        "state": MarketState.ONLINE,
    }
    fields.update(overrides)
    return c.MarketSpec(**fields)


def order_hash(trader: str, nonce: int, market: str = MARKET, *extra: object) -> bytes:
    return hashlib.blake2b(repr((trader, nonce, market, *extra)).encode(), digest_size=32).digest()


class Harness:
    def __init__(self, *, add_market: bool = True, **spec_overrides: Any) -> None:
        self.engine = Engine()
        self.seq = 0
        self.now = 1_000
        self.nonce = 0
        self.log: list[c.Command] = []
        if add_market:
            self.do(c.AddMarket, spec=spec(**spec_overrides))

    def do(self, cls: type[Any], **fields: Any) -> list[Event]:
        self.seq += 1
        command = cls(seq=self.seq, now=self.now, **fields)
        self.log.append(command)
        events = self.engine.apply(command)
        self.engine.validate_invariants()
        return events

    def fund(self, trader: str, base: int = 10**6, quote: int = 10**6) -> None:
        self.do(c.Credit, trader=trader, token=BASE, amount=base)
        self.do(c.Credit, trader=trader, token=QUOTE, amount=quote)

    def place(
        self,
        trader: str,
        side: Side,
        price: int,
        amount: int,
        tif: TimeInForce = GTC,
        *,
        nonce: int | None = None,
        expiry: int = 0,
        coid: str | None = None,
        market: str = MARKET,
    ) -> list[Event]:
        if nonce is None:
            self.nonce += 1
            nonce = self.nonce
        return self.do(
            c.PlaceOrder,
            order_hash=order_hash(trader, nonce, market, side, price, amount, tif, expiry),
            trader=trader,
            market_id=market,
            side=side,
            price=price,
            amount=amount,
            time_in_force=tif,
            nonce=nonce,
            expiry=expiry,
            client_order_id=coid,
        )

    def cancel(self, trader: str, h: bytes) -> list[Event]:
        return self.do(c.CancelOrder, order_hash=h, trader=trader)

    def bal(self, trader: str, token: str) -> tuple[int, int]:
        b = self.engine.balances.get(trader, token)
        return (0, 0) if b is None else (b.total, b.locked)

    def levels(self, side: Side, market: str = MARKET) -> list[tuple[int, int]]:
        return self.engine.markets[market].book.depth(side)


def of(events: list[Event], cls: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def only(events: list[Event], cls: type[Any]) -> Any:
    found = of(events, cls)
    assert len(found) == 1, events
    return found[0]
