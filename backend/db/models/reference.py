"""Reference data: tokens and markets (SPEC §2 units, §4 risk, §8 market states)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, SmallInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, created_at, updated_at
from backend.db.types import U256, Address, StrEnumType, enum_check
from backend.domain.types import MarketState


class Token(Base):
    """An ERC-20 the exchange lists. Writer: the operator CLI (listing); immutable after."""

    __tablename__ = "tokens"
    __table_args__ = (CheckConstraint("decimals BETWEEN 0 AND 77", name="decimals"),)

    address: Mapped[str] = mapped_column(Address(), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(16))
    decimals: Mapped[int] = mapped_column(SmallInteger())
    created_at: Mapped[datetime] = created_at()


class Market(Base):
    """A base/quote pair with its sizes, fees and risk limits.

    Writer: the operator CLI lists it before the engine loads it; from then on only the engine
    writes the row (state changes by the circuit breaker or an operator command), so the book and
    this row never disagree.
    """

    __tablename__ = "markets"
    __table_args__ = (
        UniqueConstraint("base_token", "quote_token"),
        CheckConstraint("base_token <> quote_token", name="distinct_tokens"),
        CheckConstraint("maker_fee_bps BETWEEN 0 AND 10000", name="maker_fee_bps"),
        CheckConstraint("taker_fee_bps BETWEEN 0 AND 10000", name="taker_fee_bps"),
        CheckConstraint("price_band_bps IS NULL OR price_band_bps > 0", name="price_band_bps"),
        CheckConstraint(
            "(breaker_move_bps IS NULL) = (breaker_window_s IS NULL)", name="breaker_pair"
        ),
        enum_check("state", MarketState),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """Human id, e.g. `WETH-USDC` (the `{id}` of `/v1/markets/{id}`)."""
    base_token: Mapped[str] = mapped_column(Address(), ForeignKey("tokens.address"))
    quote_token: Mapped[str] = mapped_column(Address(), ForeignKey("tokens.address"))
    tick_size: Mapped[int] = mapped_column(U256())
    lot_size: Mapped[int] = mapped_column(U256())
    min_amount: Mapped[int] = mapped_column(U256())
    max_amount: Mapped[int | None] = mapped_column(U256())
    max_notional: Mapped[int | None] = mapped_column(U256())
    maker_fee_bps: Mapped[int] = mapped_column(Integer())
    taker_fee_bps: Mapped[int] = mapped_column(Integer())
    price_band_bps: Mapped[int | None] = mapped_column(Integer())
    """Orders priced further than this from the last trade / mid are refused."""
    breaker_move_bps: Mapped[int | None] = mapped_column(Integer())
    """Circuit breaker: a move larger than this within `breaker_window_s` → CANCEL_ONLY."""
    breaker_window_s: Mapped[int | None] = mapped_column(Integer())
    state: Mapped[MarketState] = mapped_column(StrEnumType(MarketState), default=MarketState.ONLINE)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()
