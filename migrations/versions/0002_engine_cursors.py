"""Engine consumer cursors: how far the engine's DB persister has stored events.

The `engine_journal` table stays (unused by the engine: its journal is segment files with a
group-commit fsync, see backend/engine/journal.py); dropping it is left to a later migration
because the foundation's DB tests use it as their generic fixture table.

Revision ID: 0002
Revises: 0003 (0003 was added first, on 0001, by the indexer work; this keeps one head)
Create Date: 2026-11-25 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "engine_cursors",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_engine_cursors")),
    )


def downgrade() -> None:
    op.drop_table("engine_cursors")
