"""The outbox on PostgreSQL: the same behaviour as on SQLite (tests/unit/stream)."""

from __future__ import annotations

import pytest

from backend.db import make_engine, session_factory
from tests.unit.stream.test_outbox import check_outbox

pytestmark = pytest.mark.integration


def test_outbox_postgres(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        check_outbox(session_factory(engine))
    finally:
        engine.dispose()
