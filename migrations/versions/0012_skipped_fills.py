"""Fills the contract skipped on chain (`FillSkipped`) instead of reverting their batch.

- `fill_settlements.skipped_on_chain`: the fill was sent in its batch (it is part of the
  batch's `fillsHash`) and left out by the contract, then failed and undone by the worker;
  the indexer still counts it when it matches the batch against `BatchSettled`.

Revision ID: 0012
Revises: 0010 (0011 once merged beside it)
Create Date: 2026-12-07 06:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("fill_settlements") as batch:
        batch.add_column(
            sa.Column("skipped_on_chain", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("fill_settlements") as batch:
        batch.drop_column("skipped_on_chain")
