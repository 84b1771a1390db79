"""Tables the indexer writes: the unfinalized block window, raw events, cursors and projections.

Cursor and data commit in one transaction; on a reorg the indexer deletes everything above the
common ancestor (by `block_number`) and re-projects, so every row here carries its block.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, auto_id, created_at, updated_at
from backend.db.types import U256, Address, Bytes32, StrEnumType, enum_check
from backend.domain.types import DepositStatus

EventArgs = JSON().with_variant(JSONB(), "postgresql")


class ChainBlock(Base):
    """A recent block, kept while unfinalized to detect reorgs by parent hash. Writer: indexer.

    Invariant: consecutive rows are linked (`parent_hash` = hash of `number - 1`).
    """

    __tablename__ = "chain_blocks"

    number: Mapped[int] = mapped_column(BigInteger(), primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(Bytes32(), unique=True)
    parent_hash: Mapped[bytes] = mapped_column(Bytes32())
    timestamp: Mapped[int] = mapped_column(BigInteger())
    """Block time, unix seconds (chain data, not our clock)."""


class ChainEvent(Base):
    """A decoded log of the Exchange contract. Writer: indexer.

    Keyed by `(block_hash, log_index)`: the same transaction re-mined in another block after a
    reorg is a different event. Integers in `args` wider than 53 bits are stored as decimal
    strings, so every JSON reader sees them exactly.
    """

    __tablename__ = "chain_events"
    __table_args__ = (Index(None, "block_number"), Index(None, "event", "block_number"))

    block_hash: Mapped[bytes] = mapped_column(Bytes32(), primary_key=True)
    log_index: Mapped[int] = mapped_column(Integer(), primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger())
    tx_hash: Mapped[bytes] = mapped_column(Bytes32())
    event: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(Address())
    args: Mapped[dict[str, Any]] = mapped_column(EventArgs)


class IndexerCursor(Base):
    """How far a named follower has processed. Writer: indexer.

    `chain_id` guards against pointing a database at another chain.
    """

    __tablename__ = "indexer_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger())
    block_number: Mapped[int] = mapped_column(BigInteger())
    block_hash: Mapped[bytes] = mapped_column(Bytes32())
    updated_at: Mapped[datetime] = updated_at()


class Deposit(Base):
    """A `Deposited` event and whether the engine has credited it. Writer: indexer.

    `credited_seq` is the engine command that credited it (the indexer submits the credit once
    the deposit is `confirmations` deep); a reorged-out deposit becomes `orphaned`.
    """

    __tablename__ = "deposits"
    __table_args__ = (
        UniqueConstraint("block_hash", "log_index"),
        Index(None, "trader", "id"),
        Index(None, "status", "block_number"),
        enum_check("status", DepositStatus),
    )

    id: Mapped[int] = auto_id()
    block_hash: Mapped[bytes] = mapped_column(Bytes32())
    log_index: Mapped[int] = mapped_column(Integer())
    tx_hash: Mapped[bytes] = mapped_column(Bytes32())
    block_number: Mapped[int] = mapped_column(BigInteger())
    trader: Mapped[str] = mapped_column(Address())
    token: Mapped[str] = mapped_column(Address(), ForeignKey("tokens.address"))
    amount: Mapped[int] = mapped_column(U256())
    status: Mapped[DepositStatus] = mapped_column(StrEnumType(DepositStatus))
    credited_seq: Mapped[int | None] = mapped_column(BigInteger())
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class ChainBalance(Base):
    """A trader's internal balance in the contract as of `block_number`. Writer: indexer.

    The `onChain` of `/v1/accounts/{address}/balances`; reconciled against the engine's
    `balances`.
    """

    __tablename__ = "chain_balances"

    trader: Mapped[str] = mapped_column(Address(), primary_key=True)
    token: Mapped[str] = mapped_column(Address(), ForeignKey("tokens.address"), primary_key=True)
    amount: Mapped[int] = mapped_column(U256())
    block_number: Mapped[int] = mapped_column(BigInteger())


class IndexerCommand(Base):
    """An engine command the indexer owes because of a chain event: its outbox. Writer: indexer.

    Written in the same transaction as the event and the cursor, *before* the command is sent,
    so a crash can neither lose nor repeat an effect: `pending` rows are sent after a restart;
    a `submitted` row (sent, answer not recorded) is resolved by looking its `ref` up in the
    engine's journal (the command carries `ref` as its journaled intake hash) before anything
    is re-sent. `ref` = keccak(kind ‖ block_hash ‖ log_index), so a reorg that re-mines the same
    transaction in another block owes a new command, and a compensating command (`kind`
    `reverse_credit` / `reverse_debit`) has its own ref. See docs/indexer.md.
    """

    __tablename__ = "indexer_commands"
    __table_args__ = (
        Index(None, "status", "id"),
        Index(None, "block_number"),
        CheckConstraint("status IN ('pending', 'submitted', 'done', 'cancelled')", name="status"),
    )

    id: Mapped[int] = auto_id()
    ref: Mapped[bytes] = mapped_column(Bytes32(), unique=True)
    kind: Mapped[str] = mapped_column(String(24))
    block_hash: Mapped[bytes] = mapped_column(Bytes32())
    log_index: Mapped[int] = mapped_column(Integer())
    block_number: Mapped[int] = mapped_column(BigInteger())
    command: Mapped[dict[str, Any]] = mapped_column(EventArgs)
    """The command's fields (trader, token, amount as a decimal string, …)."""
    status: Mapped[str] = mapped_column(String(10))
    engine_seq: Mapped[int | None] = mapped_column(BigInteger())
    outcome: Mapped[str | None] = mapped_column(String(64))
    """`applied`, or the engine's reject code (kept for reconciliation)."""
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()
