"""A resting order: the engine's one mutable record per open order."""

from __future__ import annotations

from backend.domain.types import PRICE_SCALE, Side, TimeInForce


class Order:
    """Open order in a book. `open` turns False when it leaves the book: price levels delete
    lazily (see `PriceLevel`), so a closed order may still sit in a level's queue for a while."""

    __slots__ = (
        "amount",
        "client_order_id",
        "expiry",
        "market_id",
        "nonce",
        "open",
        "order_hash",
        "price",
        "remaining",
        "side",
        "time_in_force",
        "trader",
    )

    def __init__(  # noqa: PLR0917 - built positionally on the hot path
        self,
        order_hash: bytes,
        trader: str,
        market_id: str,
        side: Side,
        price: int,
        amount: int,
        remaining: int,
        time_in_force: TimeInForce,
        nonce: int,
        expiry: int,
        client_order_id: str | None,
    ) -> None:
        self.order_hash = order_hash
        self.trader = trader
        self.market_id = market_id
        self.side = side
        self.price = price
        self.amount = amount
        self.remaining = remaining
        self.time_in_force = time_in_force
        self.nonce = nonce
        self.expiry = expiry
        self.client_order_id = client_order_id
        self.open = True

    def reserved(self) -> int:
        """What the order holds locked: quote for a buy (exact by tick×lot), base for a sell."""
        if self.side is Side.BUY:
            return self.remaining * self.price // PRICE_SCALE
        return self.remaining

    def __repr__(self) -> str:
        return (
            f"Order({self.order_hash.hex()[:12]}, {self.trader}, {self.side.name}, "
            f"{self.remaining}/{self.amount} @ {self.price})"
        )
