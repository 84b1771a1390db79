"""Signed bounds that the contract now enforces: an order's `maxFeeBps`, a withdrawal's `expiry`.

- `orders.max_fee_bps`: the fee bound the trader signed (bps of what the order receives); rows
  from before were signed without one and take the protocol cap, 100.
- `withdrawals.expiry`: the unix second after which the contract refuses the withdrawal; rows
  from before were signed without one and take 0 (already expired on a contract that checks).

Both messages changed their EIP-712 type, so signatures from before settle only on the
contract they were made for.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 02:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backend.db import types as dbtypes

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_fee_bps", sa.Integer(), nullable=True))
    with op.batch_alter_table("withdrawals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expiry", dbtypes.U256(), nullable=True))
    op.execute("UPDATE orders SET max_fee_bps = 100")
    withdrawals = sa.table("withdrawals", sa.column("expiry", dbtypes.U256()))
    op.execute(withdrawals.update().values(expiry=0))
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.alter_column("max_fee_bps", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("withdrawals", schema=None) as batch_op:
        batch_op.alter_column("expiry", existing_type=dbtypes.U256(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("withdrawals", schema=None) as batch_op:
        batch_op.drop_column("expiry")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("max_fee_bps")
