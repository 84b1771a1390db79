"""Must-hold rules of the engine state, checked by tests after every step and after recovery."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backend.domain.errors import ErrorCode, FatalError
from backend.domain.types import Side

if TYPE_CHECKING:
    from backend.matching.engine import Engine


class InvariantError(FatalError):
    """The engine state broke a rule that must always hold: stop rather than guess."""

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(ErrorCode.INVARIANT_VIOLATION, message, **context)


def must(condition: bool, message: str, **context: object) -> None:
    if not condition:
        raise InvariantError(message, **context)


def validate_invariants(engine: Engine) -> None:
    """Raise InvariantError if any rule is broken; O(state), for tests and recovery checks."""
    expected_locked: dict[tuple[str, str], int] = {}
    in_books: dict[bytes, object] = {}
    for market_id, market in engine.markets.items():
        spec = market.spec
        book = market.book
        bid, ask = book.best_bid(), book.best_ask()
        must(bid is None or ask is None or bid < ask, "book crossed", market=market_id)
        for side in (Side.BUY, Side.SELL):
            for key, level in book.side(side).items():
                must(key == (-level.price if side is Side.BUY else level.price), "level key")
                live = [o for o in level.orders if o.open]
                must(len(live) == level.live > 0, "level live count", market=market_id)
                must(level.total == sum(o.remaining for o in live), "level total", price=key)
                for o in live:
                    must(o.side is side and o.price == level.price, "order in wrong level")
                    must(o.market_id == market_id, "order in wrong market")
                    must(0 < o.remaining <= o.amount, "remaining out of range", order=o)
                    must(o.order_hash not in in_books, "order twice in book", order=o)
                    in_books[o.order_hash] = o
                    token = spec.quote_token if side is Side.BUY else spec.base_token
                    k = (o.trader, token)
                    expected_locked[k] = expected_locked.get(k, 0) + o.reserved()
    indexed = 0
    scheduled = {id(entry[2]) for entry in engine.expiries}
    for trader, orders in engine.open_orders.items():
        for h, o in orders.items():
            indexed += 1
            must(o.trader == trader and o.order_hash == h and o.open, "index entry", order=o)
            must(in_books.get(h) is o, "indexed order not in book", order=o)
            must(engine.nonces.get(trader, {}).get(o.nonce) == h, "open order nonce not recorded")
            if o.client_order_id is not None:
                ids = engine.client_ids.get(trader, {})
                must(ids.get(o.client_order_id) == h, "client order id index")
            if o.expiry:
                must(id(o) in scheduled, "expiring order not scheduled", order=o)
    must(indexed == len(in_books), "book order missing from index")
    for trader, ids in engine.client_ids.items():
        for h in ids.values():
            must(h in engine.open_orders.get(trader, {}), "client id of a closed order")
    for wid, (trader, token, amount) in engine.withdrawals.items():
        must(amount > 0, "empty withdrawal reservation", withdrawal_id=wid)
        k = (trader, token)
        expected_locked[k] = expected_locked.get(k, 0) + amount
    for bal in engine.balances:
        k = (bal.trader, bal.token)
        must(bal.total >= 0 and bal.locked >= 0, "negative balance", balance=bal)
        must(bal.locked <= bal.total, "locked above total", balance=bal)
        must(bal.locked == expected_locked.pop(k, 0), "locked differs from reservations", bal=bal)
    must(not any(expected_locked.values()), "reservation without balance", rest=expected_locked)
