"""Indexer outbox: `indexer_commands`, the engine commands owed for chain events.

See `backend/db/models/indexer.py` (`IndexerCommand`) and docs/indexer.md.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-25 06:51:33.336251
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "indexer_commands",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("ref", sa.LargeBinary(length=32), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("block_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column(
            "command",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("engine_seq", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(length=64), nullable=True),
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
            "status IN ('pending', 'submitted', 'done', 'cancelled')",
            name=op.f("ck_indexer_commands_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_indexer_commands")),
        sa.UniqueConstraint("ref", name=op.f("uq_indexer_commands_ref")),
    )
    with op.batch_alter_table("indexer_commands", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_indexer_commands_block_number"), ["block_number"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_indexer_commands_status_id"), ["status", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("indexer_commands", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_indexer_commands_status_id"))
        batch_op.drop_index(batch_op.f("ix_indexer_commands_block_number"))

    op.drop_table("indexer_commands")
