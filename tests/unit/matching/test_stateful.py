"""The engine against a brute-force reference: same fills, book and balances after every step.

The reference keeps open orders in one list and re-sorts the crossing ones for every order:
slow and obviously right. Funds are also checked to be conserved.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from backend.domain.types import PRICE_SCALE, Side, TimeInForce
from backend.matching import commands as c
from backend.matching.engine import FEE_ACCOUNT, Engine
from backend.matching.events import CommandRejected, Event, Fill, OrderAccepted, OrderDuplicate

from .helpers import ALICE, BASE, BOB, CAROL, LOT, MARKET, QUOTE, P, order_hash, spec

pytestmark = pytest.mark.unit

TRADERS = (ALICE, BOB, CAROL)
MAKER_BPS, TAKER_BPS = 10, 30


@dataclass
class RefOrder:
    h: bytes
    trader: str
    side: Side
    price: int
    remaining: int
    nonce: int
    expiry: int
    arrival: int

    def reserved(self) -> int:
        return (
            self.remaining * self.price // PRICE_SCALE if self.side is Side.BUY else self.remaining
        )


class Reference:
    def __init__(self) -> None:
        self.orders: list[RefOrder] = []
        self.bal: dict[tuple[str, str], list[int]] = {}
        self.nonces: dict[str, dict[int, bytes]] = {}
        self.bars: dict[str, int] = {}
        self.frozen: set[str] = set()
        self.arrivals = 0

    def cell(self, trader: str, token: str) -> list[int]:
        return self.bal.setdefault((trader, token), [0, 0])

    def token_of(self, side: Side) -> str:
        return QUOTE if side is Side.BUY else BASE

    def remove(self, o: RefOrder) -> None:
        self.orders.remove(o)
        self.cell(o.trader, self.token_of(o.side))[1] -= o.reserved()

    def crossing(self, side: Side, price: int) -> list[RefOrder]:
        if side is Side.BUY:
            found = [o for o in self.orders if o.side is Side.SELL and o.price <= price]
            return sorted(found, key=lambda o: (o.price, o.arrival))
        found = [o for o in self.orders if o.side is Side.BUY and o.price >= price]
        return sorted(found, key=lambda o: (-o.price, o.arrival))

    def place(self, cmd: c.PlaceOrder) -> tuple[str, list[tuple[object, ...]]]:
        t, side, price, amount, now = cmd.trader, cmd.side, cmd.price, cmd.amount, cmd.now
        used = self.nonces.get(t, {})
        if cmd.nonce in used:
            return ("duplicate" if used[cmd.nonce] == cmd.order_hash else "rejected"), []
        if t in self.frozen or (cmd.expiry and cmd.expiry <= now):
            return "rejected", []
        if cmd.nonce < self.bars.get(t, 0) or price % spec().tick_size or amount % LOT:
            return "rejected", []
        need = amount * price // PRICE_SCALE if side is Side.BUY else amount
        bal = self.bal.get((t, self.token_of(side)), [0, 0])
        if bal[0] - bal[1] < need:
            return "rejected", []
        live = [o for o in self.crossing(side, price) if o.trader != t and not _expired(o, now)]
        tif = cmd.time_in_force
        if tif is TimeInForce.POST_ONLY and live:
            return "rejected", []
        if tif is TimeInForce.FOK and sum(o.remaining for o in live) < amount:
            return "rejected", []
        self.nonces.setdefault(t, {})[cmd.nonce] = cmd.order_hash
        self.cell(t, self.token_of(side))[1] += need
        fills: list[tuple[object, ...]] = []
        remaining = amount
        for o in self.crossing(side, price):
            if not remaining:
                break
            if o.trader == t or _expired(o, now):
                self.remove(o)
                continue
            q = min(remaining, o.remaining)
            quote = q * o.price // PRICE_SCALE
            buyer, seller = (t, o.trader) if side is Side.BUY else (o.trader, t)
            buyer_limit = price if side is Side.BUY else o.price
            buyer_bps, seller_bps = (
                (TAKER_BPS, MAKER_BPS) if side is Side.BUY else (MAKER_BPS, TAKER_BPS)
            )
            base_fee = q * buyer_bps // 10_000
            quote_fee = quote * seller_bps // 10_000
            self.cell(buyer, QUOTE)[0] -= quote
            self.cell(buyer, QUOTE)[1] -= q * buyer_limit // PRICE_SCALE
            self.cell(buyer, BASE)[0] += q - base_fee
            self.cell(seller, BASE)[0] -= q
            self.cell(seller, BASE)[1] -= q
            self.cell(seller, QUOTE)[0] += quote - quote_fee
            self.cell(FEE_ACCOUNT, BASE)[0] += base_fee
            self.cell(FEE_ACCOUNT, QUOTE)[0] += quote_fee
            maker_fee, taker_fee = (
                (quote_fee, base_fee) if side is Side.BUY else (base_fee, quote_fee)
            )
            fills.append((o.h, cmd.order_hash, o.price, q, maker_fee, taker_fee))
            o.remaining -= q
            remaining -= q
            if not o.remaining:
                self.orders.remove(o)
        if remaining:
            o = RefOrder(cmd.order_hash, t, side, price, remaining, cmd.nonce, cmd.expiry, 0)
            if tif is TimeInForce.IOC:
                self.cell(t, self.token_of(side))[1] -= o.reserved()
            else:
                self.arrivals += 1
                o.arrival = self.arrivals
                self.orders.append(o)
        return "accepted", fills

    def levels(self, side: Side) -> list[tuple[int, int]]:
        sums: dict[int, int] = {}
        for o in self.orders:
            if o.side is side:
                sums[o.price] = sums.get(o.price, 0) + o.remaining
        return sorted(sums.items(), reverse=side is Side.BUY)


def _expired(o: RefOrder, now: int) -> bool:
    return bool(o.expiry) and o.expiry <= now


class EngineVersusReference(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine = Engine()
        self.ref = Reference()
        self.seq = 0
        self.now = 1_000
        self.nonce = 0
        self.placed: list[c.PlaceOrder] = []
        self.net: dict[str, int] = {BASE: 0, QUOTE: 0}
        self.apply(c.AddMarket, spec=spec(maker_fee_bps=MAKER_BPS, taker_fee_bps=TAKER_BPS))
        for trader in TRADERS:  # enough for most orders; credits and debits move it around
            self.credit(trader, BASE, 20_000)
            self.credit(trader, QUOTE, 20_000)

    def apply(self, cls: type[c.Command], **fields: object) -> list[Event]:
        self.seq += 1
        events = self.engine.apply(cls(seq=self.seq, now=self.now, **fields))  # type: ignore[arg-type]
        self.engine.validate_invariants()
        return events

    @rule(trader=st.sampled_from(TRADERS), token=st.sampled_from((BASE, QUOTE)),
          amount=st.integers(1, 50_000))  # fmt: skip
    def credit(self, trader: str, token: str, amount: int) -> None:
        self.apply(c.Credit, trader=trader, token=token, amount=amount)
        self.ref.cell(trader, token)[0] += amount
        self.net[token] += amount

    @rule(trader=st.sampled_from(TRADERS), token=st.sampled_from((BASE, QUOTE)),
          amount=st.integers(1, 20_000))  # fmt: skip
    def debit(self, trader: str, token: str, amount: int) -> None:
        events = self.apply(c.Debit, trader=trader, token=token, amount=amount)
        cell = self.ref.bal.get((trader, token), [0, 0])
        ok = cell[0] - cell[1] >= amount
        assert ok != any(isinstance(e, CommandRejected) for e in events)
        if ok:
            cell[0] -= amount
            self.net[token] -= amount

    @rule(
        trader=st.sampled_from(TRADERS),
        side=st.sampled_from(Side),
        tick=st.integers(95, 105),
        off_tick=st.sampled_from((0, 0, 0, 0, 0, 0, 0, 1)),
        lots=st.integers(1, 60),
        tif=st.sampled_from(TimeInForce),
        ttl=st.sampled_from((0, 0, 0, 1, 5, 30)),
    )
    def place(
        self, trader: str, side: Side, tick: int, off_tick: int, lots: int, tif: TimeInForce,
        ttl: int,
    ) -> None:  # fmt: skip
        self.nonce += 1
        price, amount = P(tick) + off_tick, lots * LOT
        expiry = self.now + ttl if ttl else 0
        h = order_hash(trader, self.nonce, MARKET, side, price, amount, tif)
        cmd = c.PlaceOrder(
            self.seq + 1, self.now, h, trader, MARKET, side, price, amount, tif, self.nonce, expiry
        )
        self.placed.append(cmd)
        self.check_place(cmd)

    @precondition(lambda self: self.placed)
    @rule(data=st.data())
    def resend(self, data: st.DataObject) -> None:
        """The same signed order again: a duplicate if it was accepted, re-judged if not."""
        old = data.draw(st.sampled_from(self.placed))
        cmd = replace(old, seq=self.seq + 1, now=self.now)
        self.check_place(cmd)

    def check_place(self, cmd: c.PlaceOrder) -> None:
        self.seq += 1
        events = self.engine.apply(cmd)
        self.engine.validate_invariants()
        outcome, fills = self.ref.place(cmd)
        if outcome == "duplicate":
            assert [type(e) for e in events] == [OrderDuplicate]
        else:
            assert any(isinstance(e, OrderAccepted) for e in events) == (outcome == "accepted")
        got = [
            (f.maker_hash, f.taker_hash, f.price, f.amount, f.maker_fee, f.taker_fee)
            for f in events
            if isinstance(f, Fill)
        ]
        assert got == fills

    @precondition(lambda self: self.placed)
    @rule(data=st.data(), owner=st.booleans())
    def cancel(self, data: st.DataObject, owner: bool) -> None:
        target = data.draw(st.sampled_from(self.placed))
        trader = target.trader if owner else ALICE
        self.apply(c.CancelOrder, order_hash=target.order_hash, trader=trader)
        for o in self.ref.orders:
            if o.h == target.order_hash and o.trader == trader:
                self.ref.remove(o)
                break

    @rule(trader=st.sampled_from(TRADERS), back=st.integers(0, 10))
    def cancel_all(self, trader: str, back: int) -> None:
        below = max(0, self.nonce - back)
        self.apply(c.CancelAll, trader=trader, market_id=MARKET, nonce_below=below)
        self.ref.bars[trader] = max(self.ref.bars.get(trader, 0), below)
        for o in [o for o in self.ref.orders if o.trader == trader and o.nonce < below]:
            self.ref.remove(o)

    @rule(dt=st.integers(1, 10))
    def tick_clock(self, dt: int) -> None:
        self.now += dt

    @rule()
    def sweep(self) -> None:
        self.apply(c.SweepExpired)
        for o in [o for o in self.ref.orders if _expired(o, self.now)]:
            self.ref.remove(o)

    @precondition(lambda self: not self.ref.frozen)
    @rule(trader=st.sampled_from(TRADERS))
    def freeze(self, trader: str) -> None:
        self.apply(c.FreezeTrader, trader=trader)
        self.ref.frozen.add(trader)
        for o in [o for o in self.ref.orders if o.trader == trader]:
            self.ref.remove(o)

    @invariant()
    def same_book(self) -> None:
        book = self.engine.markets[MARKET].book
        assert book.depth(Side.BUY) == self.ref.levels(Side.BUY)
        assert book.depth(Side.SELL) == self.ref.levels(Side.SELL)

    @invariant()
    def same_balances(self) -> None:
        engine_cells = {(b.trader, b.token): [b.total, b.locked] for b in self.engine.balances}
        keys = set(engine_cells) | set(self.ref.bal)
        for k in keys:
            assert engine_cells.get(k, [0, 0]) == self.ref.bal.get(k, [0, 0]), k

    @invariant()
    def funds_conserved(self) -> None:
        assert self.engine.balances.token_totals().get(BASE, 0) == self.net[BASE]
        assert self.engine.balances.token_totals().get(QUOTE, 0) == self.net[QUOTE]


EngineVersusReference.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None
)
test_engine_matches_reference = EngineVersusReference.TestCase
