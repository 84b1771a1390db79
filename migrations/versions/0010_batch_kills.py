"""Orders the engine closed itself, committed unfillable on chain by a batch.

- `batch_kills`: which batch committed which engine-closed order (IOC / FOK remainder,
  self-trade prevention, expiry, freeze); the worker's.
- An index on `orders (status, updated_seq)`: the batcher reads closed orders from a floor.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 02:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "batch_kills",
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("order_hash", sa.LargeBinary(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["settlement_batches.batch_id"],
            name=op.f("fk_batch_kills_batch_id"),
        ),
        sa.ForeignKeyConstraint(
            ["order_hash"],
            ["orders.order_hash"],
            name=op.f("fk_batch_kills_order_hash"),
        ),
        sa.PrimaryKeyConstraint("batch_id", "order_hash", name=op.f("pk_batch_kills")),
    )
    op.create_index(op.f("ix_batch_kills_order_hash"), "batch_kills", ["order_hash"], unique=False)
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_orders_status_updated_seq"), ["status", "updated_seq"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_status_updated_seq"))
    op.drop_index(op.f("ix_batch_kills_order_hash"), table_name="batch_kills")
    op.drop_table("batch_kills")
