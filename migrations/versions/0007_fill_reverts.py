"""Fill reverts: the engine's `RevertFill` owed for a fill the chain refused for good.

See `backend/db/models/settlement.py` (`FillRevert`) and docs/settlement.md.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 16:45:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fill_reverts",
        sa.Column("fill_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("engine_seq", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(length=48), nullable=True),
        sa.Column("attempts", sa.BigInteger(), nullable=False),
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
            "status IN ('pending', 'waiting', 'done')", name=op.f("ck_fill_reverts_status")
        ),
        sa.ForeignKeyConstraint(["fill_id"], ["fills.id"], name=op.f("fk_fill_reverts_fill_id")),
        sa.PrimaryKeyConstraint("fill_id", name=op.f("pk_fill_reverts")),
    )
    with op.batch_alter_table("fill_reverts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fill_reverts_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("fill_reverts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fill_reverts_status"))
    op.drop_table("fill_reverts")
