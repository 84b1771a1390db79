"""The same schema guarantees on PostgreSQL: migrations, no drift, U256, unit of work, upserts.

Every test gets its own empty database (cheap: CREATE DATABASE from template), so tests can
migrate up and down independently.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, select, text
from sqlalchemy.engine import make_url

from backend.db import insert_ignore, make_engine, session_factory, unit_of_work, upsert
from backend.db.base import Base
from backend.db.migrate import current, downgrade, upgrade
from backend.db.models import ChainBalance, EngineJournal, Token
from backend.db.types import U256
from tests.conftest import PG_ADMIN_URL
from tests.unit.db.dbchecks import (
    ALICE,
    MAX,
    U256_SAMPLES,
    WETH,
    assert_no_drift,
    check_constraints_refuse_bad_rows,
    check_u256_ordering,
    head_revision,
    roundtrip_every_model,
    table_names,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def url(pg_url: str) -> Iterator[str]:
    """A fresh empty database next to the session's `pg_url`, dropped after the test."""
    name = f"{make_url(pg_url).database}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_upgrade_to_head_creates_every_table(url: str) -> None:
    assert current(url) is None
    upgrade(url)
    assert current(url) == head_revision()
    assert table_names(url) == set(Base.metadata.tables) | {"alembic_version"}


def test_u256_columns_are_numeric_78_0(url: str) -> None:
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT numeric_precision, numeric_scale FROM information_schema.columns"
                " WHERE table_name = 'orders' AND column_name IN ('price', 'amount', 'nonce')"
            )
        ).all()
    engine.dispose()
    assert rows == [(78, 0)] * 3


def test_autogenerate_finds_no_drift(url: str) -> None:
    upgrade(url)
    assert_no_drift(url)


def test_downgrade_to_base_leaves_only_alembic_version(url: str) -> None:
    upgrade(url)
    downgrade(url, "base")
    assert current(url) is None
    assert table_names(url) == {"alembic_version"}
    upgrade(url)
    assert current(url) == head_revision()


def test_every_model_round_trips_max_values(url: str) -> None:
    upgrade(url)
    roundtrip_every_model(url)


def test_check_constraints_refuse_bad_rows(url: str) -> None:
    upgrade(url)
    check_constraints_refuse_bad_rows(url)


def test_u256_orders_like_integers(url: str) -> None:
    check_u256_ordering(url, U256_SAMPLES[::-1])


probe = Table("probe", MetaData(), Column("id", Integer, primary_key=True), Column("value", U256()))


@pytest.fixture(scope="module")
def probe_url(pg_url: str) -> Iterator[str]:
    engine = make_engine(pg_url)
    probe.create(engine)
    yield pg_url
    probe.drop(engine)
    engine.dispose()


def test_u256_any_value_round_trips(probe_url: str) -> None:
    engine = make_engine(probe_url)

    @settings(max_examples=150, deadline=None)
    @given(st.one_of(st.sampled_from(U256_SAMPLES), st.integers(min_value=0, max_value=MAX)))
    def check(value: int) -> None:
        seen.append(value)
        with engine.begin() as conn:
            key = conn.execute(probe.insert().values(value=value)).inserted_primary_key[0]
            got = conn.scalar(select(probe.c.value).where(probe.c.id == key))
        assert got == value
        assert type(got) is int

    seen: list[int] = []
    try:
        check()
    finally:
        engine.dispose()
    assert len(seen) >= 100


def test_unit_of_work_commits_or_rolls_back(url: str) -> None:
    upgrade(url)
    engine = make_engine(url)
    factory = session_factory(engine)

    def failing_step() -> None:
        with unit_of_work(factory) as session:
            session.add(EngineJournal(seq=2, kind="place", payload=b"y"))
            session.flush()
            raise RuntimeError("boom")

    try:
        with unit_of_work(factory) as session:
            session.add(EngineJournal(seq=1, kind="place", payload=b"x"))
        with pytest.raises(RuntimeError, match="boom"):
            failing_step()
        with factory() as session:
            assert list(session.scalars(select(EngineJournal.seq))) == [1]
    finally:
        engine.dispose()


def test_insert_ignore_and_guarded_upsert(url: str) -> None:
    upgrade(url)
    engine = make_engine(url)
    factory = session_factory(engine)
    try:
        with unit_of_work(factory) as session:
            session.add(Token(address=WETH, symbol="WETH", decimals=18))
            rows = [{"seq": 1, "kind": "place", "payload": b"a"}]
            assert (
                insert_ignore(session=session, target=EngineJournal, rows=rows, conflict=["seq"])
                == 1
            )
            assert (
                insert_ignore(session=session, target=EngineJournal, rows=rows, conflict=["seq"])
                == 0
            )
        for amount, block, written in ((5, 10, 1), (MAX, 12, 1), (7, 11, 0)):
            with unit_of_work(factory) as session:
                assert written == upsert(
                    session=session,
                    target=ChainBalance,
                    rows=[
                        {"trader": ALICE, "token": WETH, "amount": amount, "block_number": block}
                    ],
                    conflict=["trader", "token"],
                    where=lambda new: ChainBalance.block_number <= new.block_number,
                )
        with factory() as session:
            row = session.get_one(ChainBalance, (ALICE, WETH))
            assert (row.amount, row.block_number) == (MAX, 12)
    finally:
        engine.dispose()
