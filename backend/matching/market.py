"""A listed market at run time: its spec, state, book and risk memory."""

from __future__ import annotations

from backend.domain.types import PRICE_SCALE, UINT64_MAX, UINT256_MAX, MarketState
from backend.matching.commands import MarketSpec
from backend.matching.order_book import OrderBook
from backend.matching.risk import CircuitBreaker

MAX_FEE_BPS = 100
"""Mirror of Exchange.MAX_FEE_BPS (1 %): a market whose fills the chain would refuse is refused
here (tests/unit/contracts check the two stay equal)."""


def spec_problem(spec: MarketSpec) -> str | None:
    """Why a market spec cannot be listed, or None."""
    widths = (
        spec.tick_size, spec.lot_size, spec.min_amount, spec.max_amount, spec.max_notional,
        spec.price_band_bps, spec.breaker_move_bps, spec.maker_fee_bps, spec.taker_fee_bps,
    )  # fmt: skip
    if max(widths) > UINT256_MAX or spec.breaker_window_s > UINT64_MAX:
        return "settings must fit in uint256 (the breaker window in uint64)"
    if spec.tick_size <= 0 or spec.lot_size <= 0 or spec.min_amount < 0:
        return "tick_size and lot_size must be positive, min_amount non-negative"
    if (spec.tick_size * spec.lot_size) % PRICE_SCALE:
        return "lot_size * tick_size must be a multiple of 10**18 so quote amounts are exact"
    if not (0 <= spec.maker_fee_bps <= MAX_FEE_BPS and 0 <= spec.taker_fee_bps <= MAX_FEE_BPS):
        return f"fees must be within 0..{MAX_FEE_BPS} bps"
    if min(spec.max_amount, spec.max_notional, spec.price_band_bps) < 0:
        return "limits must be non-negative (0 = off)"
    if spec.breaker_move_bps < 0 or spec.breaker_window_s < 0:
        return "circuit breaker settings must be non-negative (0 = off)"
    if spec.base_token == spec.quote_token:
        return "base and quote tokens must differ"
    return None


class Market:
    __slots__ = ("book", "breaker", "last_price", "spec", "state")

    def __init__(self, spec: MarketSpec) -> None:
        self.spec = spec
        self.state = spec.state
        self.book = OrderBook()
        self.last_price = 0  # 0 = no trade yet
        self.breaker = CircuitBreaker(spec.breaker_move_bps, spec.breaker_window_s)

    def reference_price(self) -> int | None:
        """Last trade, else the mid of the book, else None (the band cannot apply yet)."""
        if self.last_price:
            return self.last_price
        bid, ask = self.book.best_bid(), self.book.best_ask()
        if bid is None or ask is None:
            return None
        return (bid + ask) // 2

    @property
    def accepts_orders(self) -> bool:
        return self.state is MarketState.ONLINE or self.state is MarketState.POST_ONLY
