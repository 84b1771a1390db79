"""unit_of_work commits or rolls back as a whole; ON CONFLICT helpers are idempotent (SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from backend.db import insert_ignore, make_engine, session_factory, unit_of_work, upsert
from backend.db.migrate import upgrade
from backend.db.models import ChainBalance, EngineJournal, IndexerCursor, Token
from tests.unit.db.dbchecks import ALICE, MAX, USDC, WETH, h


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'uow.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield session_factory(engine)
    engine.dispose()


def record_journal(seq: int, *, session: Session) -> None:
    """A repository-style write: takes the session, never commits."""
    session.add(EngineJournal(seq=seq, kind="place", payload=b"x"))


def journal_seqs(factory: sessionmaker[Session]) -> list[int]:
    with factory() as session:
        return list(session.scalars(select(EngineJournal.seq).order_by(EngineJournal.seq)))


def test_sqlite_connections_enforce_foreign_keys_and_use_wal(
    factory: sessionmaker[Session],
) -> None:
    with factory() as session:
        assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_unit_of_work_commits_every_write_together(factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        record_journal(1, session=session)
        record_journal(2, session=session)
    assert journal_seqs(factory) == [1, 2]


def test_unit_of_work_rolls_back_everything_when_the_block_raises(
    factory: sessionmaker[Session],
) -> None:
    def failing_step() -> None:
        with unit_of_work(factory) as session:
            record_journal(1, session=session)
            session.flush()  # the row reached the database inside the transaction...
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        failing_step()
    assert journal_seqs(factory) == []  # ...and was rolled back


def test_unit_of_work_rolls_back_on_a_constraint_violation(
    factory: sessionmaker[Session],
) -> None:
    with unit_of_work(factory) as session:
        record_journal(1, session=session)

    def conflicting_step() -> None:
        with unit_of_work(factory) as session:
            record_journal(2, session=session)
            record_journal(1, session=session)  # duplicate seq fails at commit

    with pytest.raises(IntegrityError):
        conflicting_step()
    assert journal_seqs(factory) == [1]


def test_insert_ignore_is_idempotent_on_the_natural_key(factory: sessionmaker[Session]) -> None:
    rows = [
        {"seq": 1, "kind": "place", "payload": b"a"},
        {"seq": 2, "kind": "cancel", "payload": b"b"},
    ]
    with unit_of_work(factory) as session:
        assert (
            insert_ignore(session=session, target=EngineJournal, rows=rows, conflict=["seq"]) == 2
        )
    with unit_of_work(factory) as session:
        again = [
            {"seq": 2, "kind": "other", "payload": b"c"},
            {"seq": 3, "kind": "place", "payload": b"d"},
        ]
        assert (
            insert_ignore(session=session, target=EngineJournal, rows=again, conflict=["seq"]) == 1
        )
    with factory() as session:
        kinds = session.execute(
            select(EngineJournal.seq, EngineJournal.kind).order_by(EngineJournal.seq)
        )
        assert kinds.all() == [(1, "place"), (2, "cancel"), (3, "place")]


def test_upsert_updates_only_when_the_guard_holds(factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        session.add_all([Token(address=WETH, symbol="WETH", decimals=18)])

    def write(amount: int, block: int) -> int:
        with unit_of_work(factory) as session:
            return upsert(
                session=session,
                target=ChainBalance,
                rows=[{"trader": ALICE, "token": WETH, "amount": amount, "block_number": block}],
                conflict=["trader", "token"],
                where=lambda new: ChainBalance.block_number <= new.block_number,
            )

    def current() -> tuple[int, int]:
        with factory() as session:
            row = session.get_one(ChainBalance, (ALICE, WETH))
            return row.amount, row.block_number

    assert write(5, 10) == 1
    assert current() == (5, 10)
    assert write(MAX, 12) == 1
    assert current() == (MAX, 12)
    assert write(7, 11) == 0  # a stale (older-block) write is ignored
    assert current() == (MAX, 12)


def test_upsert_refreshes_updated_at(factory: sessionmaker[Session]) -> None:
    row = {"name": "exchange", "chain_id": 31337, "block_number": 1, "block_hash": h(1)}
    with unit_of_work(factory) as session:
        upsert(session=session, target=IndexerCursor, rows=[row], conflict=["name"])
        session.execute(text("UPDATE indexer_cursors SET updated_at = '2000-01-01 00:00:00'"))
    with unit_of_work(factory) as session:
        upsert(
            session=session,
            target=IndexerCursor,
            rows=[{**row, "block_number": 2}],
            conflict=["name"],
        )
    with factory() as session:
        cursor = session.get_one(IndexerCursor, "exchange")
        assert cursor.block_number == 2
        assert cursor.updated_at.year > 2000


def test_upsert_validates_values_like_the_orm(factory: sessionmaker[Session]) -> None:
    with (
        pytest.raises(StatementError, match="uint256 must be an int"),
        unit_of_work(factory) as session,
    ):
        insert_ignore(
            session=session,
            target=ChainBalance,
            rows=[{"trader": ALICE, "token": USDC, "amount": 1.5, "block_number": 1}],
            conflict=["trader", "token"],
        )
