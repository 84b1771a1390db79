"""Tables the matching engine writes: its journal, snapshots and the state it derives.

Every row carries the sequence number of the command that produced it (SPEC §5), so the persister
can replay a journal range idempotently (`ON CONFLICT DO NOTHING/UPDATE` keyed on it).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, auto_id, created_at, updated_at
from backend.db.types import (
    U256,
    Address,
    Bytes32,
    IntEnumType,
    Signature,
    StrEnumType,
    enum_check,
)
from backend.domain.fills import fill_deltas
from backend.domain.types import OrderStatus, Side, TimeInForce, WithdrawalStatus

REJECT_CODE_LENGTH = 48  # an `ErrorCode` name, e.g. "INSUFFICIENT_BALANCE"

# The engine decides a withdrawal request; the worker owns what happens on chain after.
ENGINE_WITHDRAWAL_STATUSES = [
    WithdrawalStatus.REQUESTED,
    WithdrawalStatus.RESERVED,
    WithdrawalStatus.REJECTED,
]


class EngineJournal(Base):
    """One accepted command, durable before its result is acknowledged. Writer: engine.

    Append-only; `payload` is the engine's own encoding, opaque to the database.
    """

    __tablename__ = "engine_journal"

    seq: Mapped[int] = mapped_column(BigInteger(), primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[bytes] = mapped_column(LargeBinary())
    created_at: Mapped[datetime] = created_at()


class EngineSnapshot(Base):
    """The engine's full state after command `seq`; restart = latest snapshot + journal after it.

    Writer: engine. `state_hash` lets a replay prove it rebuilt the same book.
    """

    __tablename__ = "engine_snapshots"

    seq: Mapped[int] = mapped_column(BigInteger(), primary_key=True, autoincrement=False)
    state_hash: Mapped[bytes] = mapped_column(Bytes32())
    payload: Mapped[bytes] = mapped_column(LargeBinary())
    created_at: Mapped[datetime] = created_at()


class EngineCursor(Base):
    """How far a consumer of engine events has stored them (e.g. `persister`). Writer: engine.

    Committed in the same transaction as the rows it covers, so a restart re-persists exactly
    the commands after it (the writes are idempotent by seq anyway).
    """

    __tablename__ = "engine_cursors"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger())
    updated_at: Mapped[datetime] = updated_at()


class Order(Base):
    """A signed order the engine has seen, with its live state. Writer: engine.

    The signed fields are stored exactly as signed so the worker can settle the order on chain.
    `(trader, nonce)` is unique: a nonce is spent once the engine has decided on it, even when the
    order was rejected, so the engine must refuse a reused nonce before it reaches this table.
    """

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("trader", "nonce"),
        Index(None, "trader", "status"),
        Index(None, "market_id", "status"),
        Index(None, "trader", "client_order_id"),
        Index(None, "status", "updated_seq"),  # the worker's read of engine-closed orders
        CheckConstraint("filled <= amount", name="filled_le_amount"),
        CheckConstraint(
            "(status = 'rejected') = (reject_code IS NOT NULL)", name="reject_code_iff_rejected"
        ),
        enum_check("side", Side),
        enum_check("time_in_force", TimeInForce),
        enum_check("status", OrderStatus),
    )

    order_hash: Mapped[bytes] = mapped_column(Bytes32(), primary_key=True)
    trader: Mapped[str] = mapped_column(Address())
    market_id: Mapped[str] = mapped_column(String(32), ForeignKey("markets.id"))
    side: Mapped[Side] = mapped_column(IntEnumType(Side))
    price: Mapped[int] = mapped_column(U256())
    amount: Mapped[int] = mapped_column(U256())
    time_in_force: Mapped[TimeInForce] = mapped_column(IntEnumType(TimeInForce))
    nonce: Mapped[int] = mapped_column(U256())
    expiry: Mapped[int] = mapped_column(U256())
    """Unix seconds, 0 = never (as signed)."""
    max_fee_bps: Mapped[int] = mapped_column(Integer())
    """The signed fee bound (bps of what the order receives), as signed."""
    signature: Mapped[bytes] = mapped_column(Signature())
    client_order_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[OrderStatus] = mapped_column(StrEnumType(OrderStatus))
    filled: Mapped[int] = mapped_column(U256(), default=0)
    reject_code: Mapped[str | None] = mapped_column(String(REJECT_CODE_LENGTH))
    accepted_seq: Mapped[int] = mapped_column(BigInteger())
    updated_seq: Mapped[int] = mapped_column(BigInteger())
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class Fill(Base):
    """One maker×taker match. Writer: engine; immutable.

    `(seq, fill_index)` — the command and the fill's position in its `MatchResult` — is the
    idempotency key, so replaying the journal into the database never duplicates a fill. `id`
    orders fills for settlement and the trades feed. Each fee is in the asset its payer receives.
    """

    __tablename__ = "fills"
    __table_args__ = (
        UniqueConstraint("seq", "fill_index"),
        Index(None, "market_id", "id"),
        Index(None, "maker_trader", "id"),
        Index(None, "taker_trader", "id"),
        CheckConstraint("maker_trader <> taker_trader", name="no_self_trade"),
        CheckConstraint("maker_order_hash <> taker_order_hash", name="distinct_orders"),
        enum_check("taker_side", Side),
    )

    id: Mapped[int] = auto_id()
    seq: Mapped[int] = mapped_column(BigInteger())
    fill_index: Mapped[int] = mapped_column(Integer())
    market_id: Mapped[str] = mapped_column(String(32), ForeignKey("markets.id"))
    maker_order_hash: Mapped[bytes] = mapped_column(Bytes32(), ForeignKey("orders.order_hash"))
    taker_order_hash: Mapped[bytes] = mapped_column(Bytes32(), ForeignKey("orders.order_hash"))
    maker_trader: Mapped[str] = mapped_column(Address())
    taker_trader: Mapped[str] = mapped_column(Address())
    taker_side: Mapped[Side] = mapped_column(IntEnumType(Side))
    price: Mapped[int] = mapped_column(U256())
    amount: Mapped[int] = mapped_column(U256())
    quote_amount: Mapped[int] = mapped_column(U256())
    maker_fee: Mapped[int] = mapped_column(U256())
    taker_fee: Mapped[int] = mapped_column(U256())
    created_at: Mapped[datetime] = created_at()

    def balance_deltas(
        self, base: str, quote: str, fee_recipient: str | None = None
    ) -> list[tuple[str, str, int]]:
        """`(trader, token, signed change)` this fill makes once settled (`fill_deltas`)."""
        return fill_deltas(
            maker=self.maker_trader, taker=self.taker_trader, taker_side=self.taker_side,
            base=base, quote=quote, amount=self.amount, quote_amount=self.quote_amount,
            maker_fee=self.maker_fee, taker_fee=self.taker_fee, fee_recipient=fee_recipient,
        )  # fmt: skip


class SignedCancel(Base):
    """A trader-signed `Cancel` or `CancelAll` the engine accepted. Writer: engine.

    Kept so the worker can commit it on chain with the next batch (SPEC §6). `order_hash` has no
    foreign key on purpose: a trader may cancel an order the engine never received. A `CancelAll`
    keeps its token addresses as signed (zero addresses = every market).
    """

    __tablename__ = "signed_cancels"
    __table_args__ = (
        Index(None, "trader", "accepted_seq"),
        Index(None, "accepted_seq"),
        CheckConstraint("kind IN ('cancel', 'cancel_all')", name="kind"),
        CheckConstraint(
            "(kind = 'cancel' AND order_hash IS NOT NULL AND base_token IS NULL"
            " AND quote_token IS NULL AND nonce_below IS NULL)"
            " OR (kind = 'cancel_all' AND order_hash IS NULL AND base_token IS NOT NULL"
            " AND quote_token IS NOT NULL AND nonce_below IS NOT NULL)",
            name="kind_fields",
        ),
    )

    cancel_hash: Mapped[bytes] = mapped_column(Bytes32(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    trader: Mapped[str] = mapped_column(Address())
    order_hash: Mapped[bytes | None] = mapped_column(Bytes32())
    base_token: Mapped[str | None] = mapped_column(Address())
    quote_token: Mapped[str | None] = mapped_column(Address())
    nonce_below: Mapped[int | None] = mapped_column(U256())
    signature: Mapped[bytes] = mapped_column(Signature())
    accepted_seq: Mapped[int] = mapped_column(BigInteger())
    effective: Mapped[bool] = mapped_column(Boolean())
    """The engine applied it: a Cancel of an order it held open, or a CancelAll. A refused
    one (the order unknown or closed) is kept as signed but never committed on chain."""
    created_at: Mapped[datetime] = created_at()


class Balance(Base):
    """The engine's ledger of a trader's internal balance: `total` and the part `locked` by
    open orders and reserved withdrawals. Writer: engine (`available = total - locked`)."""

    __tablename__ = "balances"
    __table_args__ = (CheckConstraint("locked <= total", name="locked_le_total"),)

    trader: Mapped[str] = mapped_column(Address(), primary_key=True)
    token: Mapped[str] = mapped_column(Address(), ForeignKey("tokens.address"), primary_key=True)
    total: Mapped[int] = mapped_column(U256(), default=0)
    locked: Mapped[int] = mapped_column(U256(), default=0)
    updated_seq: Mapped[int] = mapped_column(BigInteger())


class Withdrawal(Base):
    """A signed withdrawal request and the engine's decision on it. Writer: engine.

    The engine reserves the amount (or rejects); what happens on chain afterwards is the worker's,
    in `withdrawal_settlements`, so this table only ever holds the engine's statuses.
    """

    __tablename__ = "withdrawals"
    __table_args__ = (
        UniqueConstraint("trader", "nonce"),
        Index(None, "trader", "id"),
        CheckConstraint(
            "(status = 'rejected') = (reject_code IS NOT NULL)", name="reject_code_iff_rejected"
        ),
        enum_check("status", ENGINE_WITHDRAWAL_STATUSES),
    )

    id: Mapped[int] = auto_id()
    withdrawal_hash: Mapped[bytes] = mapped_column(Bytes32(), unique=True)
    trader: Mapped[str] = mapped_column(Address())
    token: Mapped[str] = mapped_column(Address(), ForeignKey("tokens.address"))
    amount: Mapped[int] = mapped_column(U256())
    nonce: Mapped[int] = mapped_column(U256())
    expiry: Mapped[int] = mapped_column(U256())
    """Unix seconds, as signed: the contract refuses the withdrawal after it."""
    signature: Mapped[bytes] = mapped_column(Signature())
    status: Mapped[WithdrawalStatus] = mapped_column(StrEnumType(WithdrawalStatus))
    reject_code: Mapped[str | None] = mapped_column(String(REJECT_CODE_LENGTH))
    accepted_seq: Mapped[int | None] = mapped_column(BigInteger())
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class TraderExit(Base):
    """A trader frozen after `ExitRequested` (SPEC §7): open orders cancelled, new ones refused.

    Writer: engine (the indexer submits the freeze as a journaled command).
    """

    __tablename__ = "trader_exits"

    trader: Mapped[str] = mapped_column(Address(), primary_key=True)
    effective_block: Mapped[int] = mapped_column(BigInteger())
    frozen_seq: Mapped[int] = mapped_column(BigInteger())
    created_at: Mapped[datetime] = created_at()
