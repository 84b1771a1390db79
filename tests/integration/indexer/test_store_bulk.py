"""The store's bulk statements — `unnest` arrays on PostgreSQL, executemany on SQLite — write
and validate the same rows on both dialects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_utils.address import to_checksum_address
from sqlalchemy import select
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session, sessionmaker

from backend.db import make_engine, session_factory, unit_of_work
from backend.db.migrate import upgrade
from backend.db.models.indexer import ChainBalance, Deposit, IndexerCommand
from backend.db.models.reference import Token
from backend.domain.types import DepositStatus
from indexer import store

pytestmark = pytest.mark.integration

TOKEN = to_checksum_address("0x" + "ab" * 20)
TRADERS = [to_checksum_address(f"0x{i + 1:040x}") for i in range(3)]


@pytest.fixture(params=["sqlite", "postgresql"])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
        upgrade(url)
    else:
        url = request.getfixturevalue("db_url")
    engine = make_engine(url)
    factory = session_factory(engine)
    with unit_of_work(factory) as session:
        session.add(Token(address=TOKEN, symbol="T", decimals=18))
    yield factory
    engine.dispose()


def _command(i: int, *, amount: int = 10**30) -> dict[str, object]:
    return {
        "ref": bytes([i]) * 32,
        "kind": "credit",
        "block_hash": b"\x01" * 32,
        "log_index": i,
        "block_number": 7,
        "command": {"trader": TRADERS[i % 3], "token": TOKEN, "amount": str(amount)},
        "status": "pending",
    }


def _deposit(i: int) -> dict[str, object]:
    return {
        "block_hash": b"\x01" * 32,
        "log_index": i,
        "tx_hash": b"\x02" * 32,
        "block_number": 7,
        "trader": TRADERS[i % 3].lower(),  # any case in, EIP-55 stored
        "token": TOKEN,
        "amount": 2**255 + i,
        "status": DepositStatus.SEEN,
    }


def test_bulk_writes_are_idempotent_and_report_only_new_keys(
    factory: sessionmaker[Session],
) -> None:
    with unit_of_work(factory) as session:
        new = store.insert_new(
            session=session, table=store.COMMANDS, rows=[_command(i) for i in range(4)], key="ref"
        )
        assert new == {bytes([i]) * 32 for i in range(4)}
        again = [_command(i) for i in range(2, 6)] + [_command(5)]  # a duplicate inside too
        assert store.insert_new(session=session, table=store.COMMANDS, rows=again, key="ref") == {
            bytes([4]) * 32,
            bytes([5]) * 32,
        }
        keys = store.insert_new(
            session=session,
            table=store.DEPOSITS,
            rows=[_deposit(i) for i in range(6)],
            key=("block_hash", "log_index"),
        )
        assert keys == {(b"\x01" * 32, i) for i in range(6)}
        store.upsert_balances(
            session=session,
            rows=[
                {"trader": t, "token": TOKEN, "amount": 2**200, "block_number": 3} for t in TRADERS
            ],
        )
        store.upsert_balances(
            session=session,
            rows=[{"trader": TRADERS[0], "token": TOKEN, "amount": 5, "block_number": 9}],
        )
    with unit_of_work(factory) as session:
        ids = list(session.scalars(select(IndexerCommand.id).order_by(IndexerCommand.id)))
        store.set_command_status(session=session, ids=ids, status="submitted")
        store.mark_commands_done(
            session=session, results=[(ids[0], 11, "applied"), (ids[1], 12, "INSUFFICIENT")]
        )
        store.credit_deposits(session=session, command_ids=[ids[0]])
        store.set_command_status(
            session=session, ids=ids, status="pending", where_status="submitted"
        )
    with unit_of_work(factory) as session:
        rows = session.scalars(select(IndexerCommand).order_by(IndexerCommand.id)).all()
        deposits = session.scalars(select(Deposit).order_by(Deposit.log_index)).all()
        balances = {
            b.trader: (b.amount, b.block_number) for b in session.scalars(select(ChainBalance))
        }
    assert [(r.status, r.engine_seq, r.outcome) for r in rows] == [
        ("done", 11, "applied"),
        ("done", 12, "INSUFFICIENT"),
    ] + [("pending", None, None)] * 4
    assert rows[0].command == _command(0)["command"]
    assert [(d.trader, d.amount, d.status, d.credited_seq) for d in deposits][:2] == [
        (TRADERS[0], 2**255, DepositStatus.CREDITED, 11),
        (TRADERS[1], 2**255 + 1, DepositStatus.SEEN, None),
    ]
    assert balances == {TRADERS[0]: (5, 9), TRADERS[1]: (2**200, 3), TRADERS[2]: (2**200, 3)}


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("trader", "0x" + "Ab" * 20),  # mixed case that is not the EIP-55 checksum
        ("block_hash", b"\x01" * 31),
        ("amount", -1),
    ],
)
def test_bulk_inserts_validate_like_the_column_types(
    factory: sessionmaker[Session], column: str, value: object
) -> None:
    row = _deposit(0) | {column: value}
    # SQLite's executemany wraps the type's ValueError in a StatementError; the text is the same.
    with (
        pytest.raises((ValueError, StatementError), match=r"checksum|bytes|range"),
        unit_of_work(factory) as session,
    ):
        store.insert_new(
            session=session, table=store.DEPOSITS, rows=[row], key=("block_hash", "log_index")
        )


def test_fresh_inserts_write_the_same_rows_and_nothing_above_sees_every_row(
    factory: sessionmaker[Session],
) -> None:
    """`fresh=True` (binary COPY on PostgreSQL) stores what the ON CONFLICT path stores —
    JSON objects, EIP-55 addresses, 256-bit amounts — and `nothing_above` is what makes it
    safe: it sees a row above the block, of any listed status or kind."""
    statuses = {"status": [s.value for s in DepositStatus]}
    with unit_of_work(factory) as session:
        assert store.nothing_above(session=session, table=store.DEPOSITS, number=6, where=statuses)
        new = store.insert_new(
            session=session,
            table=store.COMMANDS,
            rows=[_command(i) for i in range(3)],
            key="ref",
            fresh=True,
        )
        assert new == {bytes([i]) * 32 for i in range(3)}
        keys = store.insert_new(
            session=session,
            table=store.DEPOSITS,
            rows=[_deposit(i) for i in range(3)],
            key=("block_hash", "log_index"),
            fresh=True,
        )
        assert keys == {(b"\x01" * 32, i) for i in range(3)}
    with unit_of_work(factory) as session:
        commands = session.scalars(select(IndexerCommand).order_by(IndexerCommand.id)).all()
        deposits = session.scalars(select(Deposit).order_by(Deposit.log_index)).all()
        assert [c.command for c in commands] == [_command(i)["command"] for i in range(3)]
        assert isinstance(commands[0].command, dict)
        assert [(d.trader, d.amount, d.status) for d in deposits] == [
            (TRADERS[i], 2**255 + i, DepositStatus.SEEN) for i in range(3)
        ]
        assert not store.nothing_above(
            session=session, table=store.DEPOSITS, number=6, where=statuses
        )
        assert store.nothing_above(session=session, table=store.DEPOSITS, number=7, where=statuses)
        credit = {"kind": ["credit"]}
        assert not store.nothing_above(
            session=session, table=store.COMMANDS, number=6, where=credit
        )
        assert store.nothing_above(
            session=session, table=store.COMMANDS, number=6, where={"kind": ["freeze"]}
        )
        # A fresh insert is only ever made after that check: a duplicate is refused loudly.
    if factory.kw["bind"].dialect.name == "postgresql":
        with pytest.raises(Exception, match="duplicate key"), unit_of_work(factory) as session:
            store.insert_new(
                session=session, table=store.COMMANDS, rows=[_command(0)], key="ref", fresh=True
            )
