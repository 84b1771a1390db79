"""Signed cancels: whether the engine applied each, and the ones the chain refused.

- `signed_cancels.effective`: the engine applied it (a Cancel of an order it held open, or a
  CancelAll). Only those are ever committed on chain; rows from before are filled in from the
  order's state, the rule used until now.
- `batch_cancels.refused_reason`: the contract's simulation refused this cancel; it stays out
  of every later batch instead of being picked (and refused) again.
- An index on `signed_cancels.accepted_seq`: the batcher reads pending cancels from a floor.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 17:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("signed_cancels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("effective", sa.Boolean(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_signed_cancels_accepted_seq"), ["accepted_seq"], unique=False
        )
    op.execute(
        "UPDATE signed_cancels SET effective = (kind = 'cancel_all' OR EXISTS ("
        "SELECT 1 FROM orders o WHERE o.order_hash = signed_cancels.order_hash"
        " AND o.status = 'cancelled'))"
    )
    with op.batch_alter_table("signed_cancels", schema=None) as batch_op:
        batch_op.alter_column("effective", existing_type=sa.Boolean(), nullable=False)
    with op.batch_alter_table("batch_cancels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refused_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batch_cancels", schema=None) as batch_op:
        batch_op.drop_column("refused_reason")
    with op.batch_alter_table("signed_cancels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signed_cancels_accepted_seq"))
        batch_op.drop_column("effective")
