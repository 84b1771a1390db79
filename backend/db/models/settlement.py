"""Tables the settlement worker writes: batches, their transactions and settlement states.

The worker reads the engine's fills, cancels and withdrawals and never writes them; a fill without
a `fill_settlements` row is `matched` (not yet picked), so the queue is a left anti-join.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, auto_id, created_at, updated_at
from backend.db.types import U256, Address, Bytes32, StrEnumType, UtcDateTime, enum_check
from backend.domain.types import BatchStatus, FillStatus, TxStatus, WithdrawalStatus

WORKER_WITHDRAWAL_STATUSES = [
    WithdrawalStatus.SUBMITTED,
    WithdrawalStatus.CONFIRMED,
    WithdrawalStatus.FAILED,
]


class SettlementBatch(Base):
    """One `settleBatch(batchId, …)` call. Writer: worker.

    `batch_id` is the contract's sequential id (not a database sequence): it is the last guard
    against settling twice, so it is chosen before the transaction is signed.
    """

    __tablename__ = "settlement_batches"
    __table_args__ = (
        Index(None, "status"),
        CheckConstraint("fill_count >= 0 AND cancel_count >= 0", name="counts"),
        enum_check("status", BatchStatus),
    )

    batch_id: Mapped[int] = mapped_column(BigInteger(), primary_key=True, autoincrement=False)
    status: Mapped[BatchStatus] = mapped_column(StrEnumType(BatchStatus))
    fill_count: Mapped[int] = mapped_column(BigInteger())
    cancel_count: Mapped[int] = mapped_column(BigInteger())
    submitted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    settled_block: Mapped[int | None] = mapped_column(BigInteger())
    settled_tx_hash: Mapped[bytes | None] = mapped_column(Bytes32())
    gas_used: Mapped[int | None] = mapped_column(BigInteger())
    failure_reason: Mapped[str | None] = mapped_column(Text())
    fills_hash: Mapped[bytes | None] = mapped_column(Bytes32())
    """`fillsHash` of the `BatchSettled` event this batch emits (set when it is signed)."""
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class FillSettlement(Base):
    """Where a fill is in `matched → submitted → settled | failed`. Writer: worker.

    The worker also applies the indexer's `BatchSettled` reconciliation here (it reads
    `chain_events`; the indexer never writes this table).
    """

    __tablename__ = "fill_settlements"
    __table_args__ = (
        Index(None, "batch_id"),
        Index(None, "status"),
        CheckConstraint("status = 'matched' OR batch_id IS NOT NULL", name="batch_when_submitted"),
        enum_check("status", FillStatus),
    )

    fill_id: Mapped[int] = mapped_column(ForeignKey("fills.id"), primary_key=True)
    status: Mapped[FillStatus] = mapped_column(StrEnumType(FillStatus))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("settlement_batches.batch_id"))
    failure_reason: Mapped[str | None] = mapped_column(Text())
    skipped_on_chain: Mapped[bool] = mapped_column(Boolean(), default=False, server_default=false())
    """Failed by a `FillSkipped` of its mined batch (so it is in the batch's `fillsHash`),
    not by the simulation before sending."""
    updated_at: Mapped[datetime] = updated_at()


class BatchCancel(Base):
    """A signed cancel committed on chain by a batch (SPEC §6). Writer: worker.

    A cancel whose batch failed is simply included again in a later batch. One the contract's
    simulation refused keeps its row with `refused_reason`, and is never picked again.
    """

    __tablename__ = "batch_cancels"
    __table_args__ = (Index(None, "cancel_hash"),)

    batch_id: Mapped[int] = mapped_column(
        ForeignKey("settlement_batches.batch_id"), primary_key=True
    )
    cancel_hash: Mapped[bytes] = mapped_column(
        Bytes32(), ForeignKey("signed_cancels.cancel_hash"), primary_key=True
    )
    refused_reason: Mapped[str | None] = mapped_column(Text())


class BatchKill(Base):
    """An order the engine closed itself (IOC / FOK remainder, self-trade prevention, expiry,
    freeze), committed unfillable on chain by a batch. Writer: worker.

    Without it the signed order stays fillable on chain. A kill whose batch failed is simply
    included again in a later batch.
    """

    __tablename__ = "batch_kills"
    __table_args__ = (Index(None, "order_hash"),)

    batch_id: Mapped[int] = mapped_column(
        ForeignKey("settlement_batches.batch_id"), primary_key=True
    )
    order_hash: Mapped[bytes] = mapped_column(
        Bytes32(), ForeignKey("orders.order_hash"), primary_key=True
    )


class WithdrawalSettlement(Base):
    """What happened on chain to a reserved withdrawal. Writer: worker."""

    __tablename__ = "withdrawal_settlements"
    __table_args__ = (enum_check("status", WORKER_WITHDRAWAL_STATUSES),)

    withdrawal_id: Mapped[int] = mapped_column(ForeignKey("withdrawals.id"), primary_key=True)
    status: Mapped[WithdrawalStatus] = mapped_column(StrEnumType(WithdrawalStatus))
    tx_hash: Mapped[bytes | None] = mapped_column(Bytes32())
    block_number: Mapped[int | None] = mapped_column(BigInteger())
    failure_reason: Mapped[str | None] = mapped_column(Text())
    updated_at: Mapped[datetime] = updated_at()


class WithdrawalRelease(Base):
    """The engine's `ReleaseWithdrawal` owed for a withdrawal that failed for good. Writer: worker.

    Written in the unit of work that marks the withdrawal `failed`, sent by the next tick, so a
    crash in between can neither lose the release nor leave the funds locked; a re-send is
    harmless (the engine answers "no reservation" once it is released).
    """

    __tablename__ = "withdrawal_releases"
    __table_args__ = (
        Index(None, "status"),
        CheckConstraint("status IN ('pending', 'done')", name="status"),
    )

    withdrawal_id: Mapped[int] = mapped_column(ForeignKey("withdrawals.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(10))
    engine_seq: Mapped[int | None] = mapped_column(BigInteger())
    outcome: Mapped[str | None] = mapped_column(String(48))
    """`applied`, or the engine's refusal code (`INVALID_REQUEST`: nothing was reserved)."""
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class FillRevert(Base):
    """The engine's `RevertFill` owed for a fill the chain refused for good. Writer: worker.

    Written in the unit of work that marks the fill `failed`, sent by the following ticks (the
    latest fills first), so a crash in between can neither lose the revert nor apply it twice
    (the engine refuses a fill it already reverted). `waiting`: the engine refused it for now,
    because a trader already spent what the fill gave them; tried again every tick.
    """

    __tablename__ = "fill_reverts"
    __table_args__ = (
        Index(None, "status"),
        CheckConstraint("status IN ('pending', 'waiting', 'done')", name="status"),
    )

    fill_id: Mapped[int] = mapped_column(ForeignKey("fills.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(10))
    engine_seq: Mapped[int | None] = mapped_column(BigInteger())
    outcome: Mapped[str | None] = mapped_column(String(48))
    """`applied`, `FILL_ALREADY_REVERTED` (applied before a crash), or the engine's refusal."""
    attempts: Mapped[int] = mapped_column(BigInteger(), default=0)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class SettlementTransaction(Base):
    """A signed transaction of the operator key, stored *before* broadcast. Writer: worker.

    A re-sent settlement re-broadcasts `raw_tx` unchanged (same nonce); a fee bump is a new row
    with the same `(sender, nonce)` that `replaces_tx_hash` the stuck one.
    """

    __tablename__ = "settlement_transactions"
    __table_args__ = (
        Index(None, "sender", "nonce"),
        Index(None, "status"),
        Index(None, "batch_id"),
        Index(None, "withdrawal_id"),
        CheckConstraint("kind IN ('batch', 'withdrawal')", name="kind"),
        CheckConstraint(
            "(kind = 'batch' AND batch_id IS NOT NULL AND withdrawal_id IS NULL)"
            " OR (kind = 'withdrawal' AND withdrawal_id IS NOT NULL AND batch_id IS NULL)",
            name="kind_target",
        ),
        CheckConstraint("max_priority_fee_per_gas <= max_fee_per_gas", name="fee_caps"),
        enum_check("status", TxStatus),
    )

    id: Mapped[int] = auto_id()
    kind: Mapped[str] = mapped_column(String(10))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("settlement_batches.batch_id"))
    withdrawal_id: Mapped[int | None] = mapped_column(ForeignKey("withdrawals.id"))
    sender: Mapped[str] = mapped_column(Address())
    nonce: Mapped[int] = mapped_column(BigInteger())
    tx_hash: Mapped[bytes] = mapped_column(Bytes32(), unique=True)
    raw_tx: Mapped[bytes] = mapped_column(LargeBinary())
    max_fee_per_gas: Mapped[int] = mapped_column(U256())
    max_priority_fee_per_gas: Mapped[int] = mapped_column(U256())
    status: Mapped[TxStatus] = mapped_column(StrEnumType(TxStatus))
    replaces_tx_hash: Mapped[bytes | None] = mapped_column(
        Bytes32(), ForeignKey("settlement_transactions.tx_hash")
    )
    broadcast_block: Mapped[int | None] = mapped_column(BigInteger())
    """Latest block when first broadcast: `stuck_after_blocks` counts from here."""
    block_number: Mapped[int | None] = mapped_column(BigInteger())
    block_hash: Mapped[bytes | None] = mapped_column(Bytes32())
    gas_used: Mapped[int | None] = mapped_column(BigInteger())
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()
