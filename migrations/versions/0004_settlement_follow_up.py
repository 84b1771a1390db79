"""Settlement follow-up: the block a transaction was broadcast at, and a batch's fills hash.

`settlement_transactions.broadcast_block` lets the worker tell a stuck transaction (not mined
`stuck_after_blocks` after it was sent) from a fresh one; `settlement_batches.fills_hash` is the
`fillsHash` the batch's `BatchSettled` event must carry (reconciliation with the indexer).
See `backend/db/models/settlement.py` and docs/settlement.md.

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-25 08:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("settlement_transactions") as batch_op:
        batch_op.add_column(sa.Column("broadcast_block", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("settlement_batches") as batch_op:
        batch_op.add_column(sa.Column("fills_hash", sa.LargeBinary(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("settlement_batches") as batch_op:
        batch_op.drop_column("fills_hash")
    with op.batch_alter_table("settlement_transactions") as batch_op:
        batch_op.drop_column("broadcast_block")
