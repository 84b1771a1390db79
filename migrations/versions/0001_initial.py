"""Initial schema: every table of the exchange, grouped by writer in backend/db/models/.

Types are rendered as the SQL they store (see migrations/env.py `render_item`), except `U256`,
which is `NUMERIC(78,0)` on PostgreSQL and zero-padded `VARCHAR(78)` on SQLite.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 06:31:53.876421
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from backend.db import types as dbtypes

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chain_blocks",
        sa.Column("number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("parent_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_chain_blocks")),
        sa.UniqueConstraint("hash", name=op.f("uq_chain_blocks_hash")),
    )
    op.create_table(
        "chain_events",
        sa.Column("block_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column(
            "args",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("block_hash", "log_index", name=op.f("pk_chain_events")),
    )
    op.create_index(
        op.f("ix_chain_events_block_number"), "chain_events", ["block_number"], unique=False
    )
    op.create_index(
        op.f("ix_chain_events_event_block_number"),
        "chain_events",
        ["event", "block_number"],
        unique=False,
    )
    op.create_table(
        "engine_journal",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_engine_journal")),
    )
    op.create_table(
        "engine_snapshots",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("state_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_engine_snapshots")),
    )
    op.create_table(
        "indexer_cursors",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_indexer_cursors")),
    )
    op.create_table(
        "settlement_batches",
        sa.Column("batch_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("status", sa.String(length=9), nullable=False),
        sa.Column("fill_count", sa.BigInteger(), nullable=False),
        sa.Column("cancel_count", sa.BigInteger(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("settled_block", sa.BigInteger(), nullable=True),
        sa.Column("settled_tx_hash", sa.LargeBinary(length=32), nullable=True),
        sa.Column("gas_used", sa.BigInteger(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'submitted', 'settled', 'failed')",
            name=op.f("ck_settlement_batches_status"),
        ),
        sa.CheckConstraint(
            "fill_count >= 0 AND cancel_count >= 0", name=op.f("ck_settlement_batches_counts")
        ),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_settlement_batches")),
    )
    op.create_index(
        op.f("ix_settlement_batches_status"), "settlement_batches", ["status"], unique=False
    )
    op.create_table(
        "signed_cancels",
        sa.Column("cancel_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("trader", sa.String(length=42), nullable=False),
        sa.Column("order_hash", sa.LargeBinary(length=32), nullable=True),
        sa.Column("base_token", sa.String(length=42), nullable=True),
        sa.Column("quote_token", sa.String(length=42), nullable=True),
        sa.Column("nonce_below", dbtypes.U256(), nullable=True),
        sa.Column("signature", sa.LargeBinary(length=65), nullable=False),
        sa.Column("accepted_seq", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(kind = 'cancel' AND order_hash IS NOT NULL AND base_token IS NULL"
            " AND quote_token IS NULL AND nonce_below IS NULL)"
            " OR (kind = 'cancel_all' AND order_hash IS NULL AND base_token IS NOT NULL"
            " AND quote_token IS NOT NULL AND nonce_below IS NOT NULL)",
            name=op.f("ck_signed_cancels_kind_fields"),
        ),
        sa.CheckConstraint("kind IN ('cancel', 'cancel_all')", name=op.f("ck_signed_cancels_kind")),
        sa.PrimaryKeyConstraint("cancel_hash", name=op.f("pk_signed_cancels")),
    )
    op.create_index(
        op.f("ix_signed_cancels_trader_accepted_seq"),
        "signed_cancels",
        ["trader", "accepted_seq"],
        unique=False,
    )
    op.create_table(
        "tokens",
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("symbol", sa.String(length=16), nullable=False),
        sa.Column("decimals", sa.SmallInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint("decimals BETWEEN 0 AND 77", name=op.f("ck_tokens_decimals")),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_tokens")),
    )
    op.create_table(
        "trader_exits",
        sa.Column("trader", sa.String(length=42), nullable=False),
        sa.Column("effective_block", sa.BigInteger(), nullable=False),
        sa.Column("frozen_seq", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("trader", name=op.f("pk_trader_exits")),
    )
    op.create_table(
        "balances",
        sa.Column("trader", sa.String(length=42), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("total", dbtypes.U256(), nullable=False),
        sa.Column("locked", dbtypes.U256(), nullable=False),
        sa.Column("updated_seq", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("locked <= total", name=op.f("ck_balances_locked_le_total")),
        sa.ForeignKeyConstraint(["token"], ["tokens.address"], name=op.f("fk_balances_token")),
        sa.PrimaryKeyConstraint("trader", "token", name=op.f("pk_balances")),
    )
    op.create_table(
        "batch_cancels",
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("cancel_hash", sa.LargeBinary(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["settlement_batches.batch_id"], name=op.f("fk_batch_cancels_batch_id")
        ),
        sa.ForeignKeyConstraint(
            ["cancel_hash"],
            ["signed_cancels.cancel_hash"],
            name=op.f("fk_batch_cancels_cancel_hash"),
        ),
        sa.PrimaryKeyConstraint("batch_id", "cancel_hash", name=op.f("pk_batch_cancels")),
    )
    op.create_index(
        op.f("ix_batch_cancels_cancel_hash"), "batch_cancels", ["cancel_hash"], unique=False
    )
    op.create_table(
        "chain_balances",
        sa.Column("trader", sa.String(length=42), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("amount", dbtypes.U256(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["token"], ["tokens.address"], name=op.f("fk_chain_balances_token")
        ),
        sa.PrimaryKeyConstraint("trader", "token", name=op.f("pk_chain_balances")),
    )
    op.create_table(
        "deposits",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("block_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("trader", sa.String(length=42), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("amount", dbtypes.U256(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("credited_seq", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('seen', 'credited', 'orphaned')", name=op.f("ck_deposits_status")
        ),
        sa.ForeignKeyConstraint(["token"], ["tokens.address"], name=op.f("fk_deposits_token")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deposits")),
        sa.UniqueConstraint(
            "block_hash", "log_index", name=op.f("uq_deposits_block_hash_log_index")
        ),
    )
    op.create_index(
        op.f("ix_deposits_status_block_number"),
        "deposits",
        ["status", "block_number"],
        unique=False,
    )
    op.create_index(op.f("ix_deposits_trader_id"), "deposits", ["trader", "id"], unique=False)
    op.create_table(
        "markets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("base_token", sa.String(length=42), nullable=False),
        sa.Column("quote_token", sa.String(length=42), nullable=False),
        sa.Column("tick_size", dbtypes.U256(), nullable=False),
        sa.Column("lot_size", dbtypes.U256(), nullable=False),
        sa.Column("min_amount", dbtypes.U256(), nullable=False),
        sa.Column("max_amount", dbtypes.U256(), nullable=True),
        sa.Column("max_notional", dbtypes.U256(), nullable=True),
        sa.Column("maker_fee_bps", sa.Integer(), nullable=False),
        sa.Column("taker_fee_bps", sa.Integer(), nullable=False),
        sa.Column("price_band_bps", sa.Integer(), nullable=True),
        sa.Column("breaker_move_bps", sa.Integer(), nullable=True),
        sa.Column("breaker_window_s", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=11), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "state IN ('ONLINE', 'POST_ONLY', 'CANCEL_ONLY', 'HALTED')",
            name=op.f("ck_markets_state"),
        ),
        sa.CheckConstraint(
            "(breaker_move_bps IS NULL) = (breaker_window_s IS NULL)",
            name=op.f("ck_markets_breaker_pair"),
        ),
        sa.CheckConstraint("base_token <> quote_token", name=op.f("ck_markets_distinct_tokens")),
        sa.CheckConstraint(
            "maker_fee_bps BETWEEN 0 AND 10000", name=op.f("ck_markets_maker_fee_bps")
        ),
        sa.CheckConstraint(
            "price_band_bps IS NULL OR price_band_bps > 0", name=op.f("ck_markets_price_band_bps")
        ),
        sa.CheckConstraint(
            "taker_fee_bps BETWEEN 0 AND 10000", name=op.f("ck_markets_taker_fee_bps")
        ),
        sa.ForeignKeyConstraint(
            ["base_token"], ["tokens.address"], name=op.f("fk_markets_base_token")
        ),
        sa.ForeignKeyConstraint(
            ["quote_token"], ["tokens.address"], name=op.f("fk_markets_quote_token")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_markets")),
        sa.UniqueConstraint(
            "base_token", "quote_token", name=op.f("uq_markets_base_token_quote_token")
        ),
    )
    op.create_table(
        "withdrawals",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("withdrawal_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("trader", sa.String(length=42), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("amount", dbtypes.U256(), nullable=False),
        sa.Column("nonce", dbtypes.U256(), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=65), nullable=False),
        sa.Column("status", sa.String(length=9), nullable=False),
        sa.Column("reject_code", sa.String(length=48), nullable=True),
        sa.Column("accepted_seq", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(status = 'rejected') = (reject_code IS NOT NULL)",
            name=op.f("ck_withdrawals_reject_code_iff_rejected"),
        ),
        sa.CheckConstraint(
            "status IN ('requested', 'reserved', 'rejected')", name=op.f("ck_withdrawals_status")
        ),
        sa.ForeignKeyConstraint(["token"], ["tokens.address"], name=op.f("fk_withdrawals_token")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_withdrawals")),
        sa.UniqueConstraint("trader", "nonce", name=op.f("uq_withdrawals_trader_nonce")),
        sa.UniqueConstraint("withdrawal_hash", name=op.f("uq_withdrawals_withdrawal_hash")),
    )
    op.create_index(op.f("ix_withdrawals_trader_id"), "withdrawals", ["trader", "id"], unique=False)
    op.create_table(
        "orders",
        sa.Column("order_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("trader", sa.String(length=42), nullable=False),
        sa.Column("market_id", sa.String(length=32), nullable=False),
        sa.Column("side", sa.SmallInteger(), nullable=False),
        sa.Column("price", dbtypes.U256(), nullable=False),
        sa.Column("amount", dbtypes.U256(), nullable=False),
        sa.Column("time_in_force", sa.SmallInteger(), nullable=False),
        sa.Column("nonce", dbtypes.U256(), nullable=False),
        sa.Column("expiry", dbtypes.U256(), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=65), nullable=False),
        sa.Column("client_order_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("filled", dbtypes.U256(), nullable=False),
        sa.Column("reject_code", sa.String(length=48), nullable=True),
        sa.Column("accepted_seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_seq", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(status = 'rejected') = (reject_code IS NOT NULL)",
            name=op.f("ck_orders_reject_code_iff_rejected"),
        ),
        sa.CheckConstraint(
            "status IN ('open', 'partially_filled', 'filled', 'cancelled', 'expired', 'rejected')",
            name=op.f("ck_orders_status"),
        ),
        sa.CheckConstraint("filled <= amount", name=op.f("ck_orders_filled_le_amount")),
        sa.CheckConstraint("side IN (0, 1)", name=op.f("ck_orders_side")),
        sa.CheckConstraint("time_in_force IN (0, 1, 2, 3)", name=op.f("ck_orders_time_in_force")),
        sa.ForeignKeyConstraint(["market_id"], ["markets.id"], name=op.f("fk_orders_market_id")),
        sa.PrimaryKeyConstraint("order_hash", name=op.f("pk_orders")),
        sa.UniqueConstraint("trader", "nonce", name=op.f("uq_orders_trader_nonce")),
    )
    op.create_index(
        op.f("ix_orders_market_id_status"), "orders", ["market_id", "status"], unique=False
    )
    op.create_index(
        op.f("ix_orders_trader_client_order_id"),
        "orders",
        ["trader", "client_order_id"],
        unique=False,
    )
    op.create_index(op.f("ix_orders_trader_status"), "orders", ["trader", "status"], unique=False)
    op.create_table(
        "settlement_transactions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "withdrawal_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("sender", sa.String(length=42), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("raw_tx", sa.LargeBinary(), nullable=False),
        sa.Column("max_fee_per_gas", dbtypes.U256(), nullable=False),
        sa.Column("max_priority_fee_per_gas", dbtypes.U256(), nullable=False),
        sa.Column("status", sa.String(length=9), nullable=False),
        sa.Column("replaces_tx_hash", sa.LargeBinary(length=32), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("block_hash", sa.LargeBinary(length=32), nullable=True),
        sa.Column("gas_used", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(kind = 'batch' AND batch_id IS NOT NULL AND withdrawal_id IS NULL)"
            " OR (kind = 'withdrawal' AND withdrawal_id IS NOT NULL AND batch_id IS NULL)",
            name=op.f("ck_settlement_transactions_kind_target"),
        ),
        sa.CheckConstraint(
            "kind IN ('batch', 'withdrawal')", name=op.f("ck_settlement_transactions_kind")
        ),
        sa.CheckConstraint(
            "status IN ('signed', 'broadcast', 'mined', 'confirmed', 'replaced', 'reverted')",
            name=op.f("ck_settlement_transactions_status"),
        ),
        sa.CheckConstraint(
            "max_priority_fee_per_gas <= max_fee_per_gas",
            name=op.f("ck_settlement_transactions_fee_caps"),
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["settlement_batches.batch_id"],
            name=op.f("fk_settlement_transactions_batch_id"),
        ),
        sa.ForeignKeyConstraint(
            ["replaces_tx_hash"],
            ["settlement_transactions.tx_hash"],
            name=op.f("fk_settlement_transactions_replaces_tx_hash"),
        ),
        sa.ForeignKeyConstraint(
            ["withdrawal_id"],
            ["withdrawals.id"],
            name=op.f("fk_settlement_transactions_withdrawal_id"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_transactions")),
        sa.UniqueConstraint("tx_hash", name=op.f("uq_settlement_transactions_tx_hash")),
    )
    op.create_index(
        op.f("ix_settlement_transactions_batch_id"),
        "settlement_transactions",
        ["batch_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_settlement_transactions_sender_nonce"),
        "settlement_transactions",
        ["sender", "nonce"],
        unique=False,
    )
    op.create_index(
        op.f("ix_settlement_transactions_status"),
        "settlement_transactions",
        ["status"],
        unique=False,
    )
    op.create_index(
        op.f("ix_settlement_transactions_withdrawal_id"),
        "settlement_transactions",
        ["withdrawal_id"],
        unique=False,
    )
    op.create_table(
        "withdrawal_settlements",
        sa.Column(
            "withdrawal_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("status", sa.String(length=9), nullable=False),
        sa.Column("tx_hash", sa.LargeBinary(length=32), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('submitted', 'confirmed', 'failed')",
            name=op.f("ck_withdrawal_settlements_status"),
        ),
        sa.ForeignKeyConstraint(
            ["withdrawal_id"],
            ["withdrawals.id"],
            name=op.f("fk_withdrawal_settlements_withdrawal_id"),
        ),
        sa.PrimaryKeyConstraint("withdrawal_id", name=op.f("pk_withdrawal_settlements")),
    )
    op.create_table(
        "fills",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("fill_index", sa.Integer(), nullable=False),
        sa.Column("market_id", sa.String(length=32), nullable=False),
        sa.Column("maker_order_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("taker_order_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("maker_trader", sa.String(length=42), nullable=False),
        sa.Column("taker_trader", sa.String(length=42), nullable=False),
        sa.Column("taker_side", sa.SmallInteger(), nullable=False),
        sa.Column("price", dbtypes.U256(), nullable=False),
        sa.Column("amount", dbtypes.U256(), nullable=False),
        sa.Column("quote_amount", dbtypes.U256(), nullable=False),
        sa.Column("maker_fee", dbtypes.U256(), nullable=False),
        sa.Column("taker_fee", dbtypes.U256(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "maker_order_hash <> taker_order_hash", name=op.f("ck_fills_distinct_orders")
        ),
        sa.CheckConstraint("maker_trader <> taker_trader", name=op.f("ck_fills_no_self_trade")),
        sa.CheckConstraint("taker_side IN (0, 1)", name=op.f("ck_fills_taker_side")),
        sa.ForeignKeyConstraint(
            ["maker_order_hash"], ["orders.order_hash"], name=op.f("fk_fills_maker_order_hash")
        ),
        sa.ForeignKeyConstraint(["market_id"], ["markets.id"], name=op.f("fk_fills_market_id")),
        sa.ForeignKeyConstraint(
            ["taker_order_hash"], ["orders.order_hash"], name=op.f("fk_fills_taker_order_hash")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fills")),
        sa.UniqueConstraint("seq", "fill_index", name=op.f("uq_fills_seq_fill_index")),
    )
    op.create_index(op.f("ix_fills_maker_trader_id"), "fills", ["maker_trader", "id"], unique=False)
    op.create_index(op.f("ix_fills_market_id_id"), "fills", ["market_id", "id"], unique=False)
    op.create_index(op.f("ix_fills_taker_trader_id"), "fills", ["taker_trader", "id"], unique=False)
    op.create_table(
        "fill_settlements",
        sa.Column("fill_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("status", sa.String(length=9), nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status = 'matched' OR batch_id IS NOT NULL",
            name=op.f("ck_fill_settlements_batch_when_submitted"),
        ),
        sa.CheckConstraint(
            "status IN ('matched', 'submitted', 'settled', 'failed')",
            name=op.f("ck_fill_settlements_status"),
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["settlement_batches.batch_id"], name=op.f("fk_fill_settlements_batch_id")
        ),
        sa.ForeignKeyConstraint(
            ["fill_id"], ["fills.id"], name=op.f("fk_fill_settlements_fill_id")
        ),
        sa.PrimaryKeyConstraint("fill_id", name=op.f("pk_fill_settlements")),
    )
    op.create_index(
        op.f("ix_fill_settlements_batch_id"), "fill_settlements", ["batch_id"], unique=False
    )
    op.create_index(
        op.f("ix_fill_settlements_status"), "fill_settlements", ["status"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_fill_settlements_status"), table_name="fill_settlements")
    op.drop_index(op.f("ix_fill_settlements_batch_id"), table_name="fill_settlements")
    op.drop_table("fill_settlements")
    op.drop_index(op.f("ix_fills_taker_trader_id"), table_name="fills")
    op.drop_index(op.f("ix_fills_market_id_id"), table_name="fills")
    op.drop_index(op.f("ix_fills_maker_trader_id"), table_name="fills")
    op.drop_table("fills")
    op.drop_table("withdrawal_settlements")
    op.drop_index(
        op.f("ix_settlement_transactions_withdrawal_id"), table_name="settlement_transactions"
    )
    op.drop_index(op.f("ix_settlement_transactions_status"), table_name="settlement_transactions")
    op.drop_index(
        op.f("ix_settlement_transactions_sender_nonce"), table_name="settlement_transactions"
    )
    op.drop_index(op.f("ix_settlement_transactions_batch_id"), table_name="settlement_transactions")
    op.drop_table("settlement_transactions")
    op.drop_index(op.f("ix_orders_trader_status"), table_name="orders")
    op.drop_index(op.f("ix_orders_trader_client_order_id"), table_name="orders")
    op.drop_index(op.f("ix_orders_market_id_status"), table_name="orders")
    op.drop_table("orders")
    op.drop_index(op.f("ix_withdrawals_trader_id"), table_name="withdrawals")
    op.drop_table("withdrawals")
    op.drop_table("markets")
    op.drop_index(op.f("ix_deposits_trader_id"), table_name="deposits")
    op.drop_index(op.f("ix_deposits_status_block_number"), table_name="deposits")
    op.drop_table("deposits")
    op.drop_table("chain_balances")
    op.drop_index(op.f("ix_batch_cancels_cancel_hash"), table_name="batch_cancels")
    op.drop_table("batch_cancels")
    op.drop_table("balances")
    op.drop_table("trader_exits")
    op.drop_table("tokens")
    op.drop_index(op.f("ix_signed_cancels_trader_accepted_seq"), table_name="signed_cancels")
    op.drop_table("signed_cancels")
    op.drop_index(op.f("ix_settlement_batches_status"), table_name="settlement_batches")
    op.drop_table("settlement_batches")
    op.drop_table("indexer_cursors")
    op.drop_table("engine_snapshots")
    op.drop_table("engine_journal")
    op.drop_index(op.f("ix_chain_events_event_block_number"), table_name="chain_events")
    op.drop_index(op.f("ix_chain_events_block_number"), table_name="chain_events")
    op.drop_table("chain_events")
    op.drop_table("chain_blocks")
