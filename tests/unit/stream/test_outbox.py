"""The outbox keeps each event once, hands them out oldest first and reports its lag, on
SQLite here and on PostgreSQL in tests/integration/stream/test_outbox_postgres.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from backend.db import make_engine, session_factory, unit_of_work
from backend.db.migrate import upgrade
from backend.stream import outbox
from backend.stream.outbox import StreamEvent


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield session_factory(engine)
    engine.dispose()


def event(n: int, key: str = "WETH-USDC") -> StreamEvent:
    return StreamEvent(f"e-{n}", "trade", key, {"amount": str(2**256 - 1 - n), "n": n})


def check_outbox(factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        outbox.add(session, [event(1), event(2)])
    with unit_of_work(factory) as session:  # a retried transaction writes the same ids again
        outbox.add(session, [event(2), event(3, key="0xabc")])
    with factory() as session:
        rows = outbox.pending(session, 10)
        count, age = outbox.lag(session)
    assert [r.event_id for r in rows] == ["e-1", "e-2", "e-3"]
    assert [r.key for r in rows] == ["WETH-USDC", "WETH-USDC", "0xabc"]
    assert count == 3
    assert age >= 0
    message = json.loads(rows[0].envelope())
    assert message == {
        "id": "e-1",
        "type": "trade",
        "version": 1,
        "key": "WETH-USDC",
        "data": {"amount": str(2**256 - 2), "n": 1},
    }
    with unit_of_work(factory) as session:
        outbox.remove(session, [rows[0].id, rows[1].id])
    with factory() as session:
        assert [r.event_id for r in outbox.pending(session, 10)] == ["e-3"]
        assert outbox.lag(session)[0] == 1
    with unit_of_work(factory) as session:
        outbox.remove(session, [rows[2].id])
    with factory() as session:
        assert outbox.lag(session) == (0, 0.0)


def test_outbox_sqlite(factory: sessionmaker[Session]) -> None:
    check_outbox(factory)


def test_a_rolled_back_transaction_leaves_no_event(factory: sessionmaker[Session]) -> None:
    def write_then_fail() -> None:
        with unit_of_work(factory) as session:
            outbox.add(session, [event(1)])
            raise RuntimeError("the writer's own rows failed")

    with pytest.raises(RuntimeError):
        write_then_fail()
    with factory() as session:
        assert outbox.pending(session, 10) == []


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError, match="never floats"):
        outbox.encode_payload({"fills": [{"amount": 1.5}]})
