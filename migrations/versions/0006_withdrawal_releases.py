"""Withdrawal releases: the engine's `ReleaseWithdrawal` owed for a failed withdrawal.

See `backend/db/models/settlement.py` (`WithdrawalRelease`) and docs/settlement.md.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 13:45:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "withdrawal_releases",
        sa.Column(
            "withdrawal_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("engine_seq", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(length=48), nullable=True),
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
            "status IN ('pending', 'done')", name=op.f("ck_withdrawal_releases_status")
        ),
        sa.ForeignKeyConstraint(
            ["withdrawal_id"],
            ["withdrawals.id"],
            name=op.f("fk_withdrawal_releases_withdrawal_id"),
        ),
        sa.PrimaryKeyConstraint("withdrawal_id", name=op.f("pk_withdrawal_releases")),
    )
    with op.batch_alter_table("withdrawal_releases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_withdrawal_releases_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("withdrawal_releases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_withdrawal_releases_status"))
    op.drop_table("withdrawal_releases")
