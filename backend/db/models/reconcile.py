"""What reconciliation found. Writer: the reconcile task (worker, or `hybridex dev`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, auto_id, created_at


class ReconciliationRun(Base):
    """One reconciliation: at which block, how many accounts, and its JSON report (the
    `hybridex reconcile --json` document), which `GET /v1/admin/reconciliation` serves."""

    __tablename__ = "reconciliation_runs"

    id: Mapped[int] = auto_id()
    block_number: Mapped[int] = mapped_column(BigInteger())
    accounts: Mapped[int] = mapped_column(Integer())
    discrepancies: Mapped[int] = mapped_column(Integer())
    clean: Mapped[bool] = mapped_column(Boolean())
    report: Mapped[str] = mapped_column(Text())
    duration_ms: Mapped[int] = mapped_column(Integer())
    created_at: Mapped[datetime] = created_at()
