"""Column types refuse what the domain forbids and round-trip what it allows (SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, Engine, Integer, MetaData, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import StatementError

from backend.db import make_engine
from backend.db.types import (
    U256,
    Address,
    Bytes32,
    IntEnumType,
    Signature,
    StrEnumType,
    UtcDateTime,
)
from backend.domain.types import OrderStatus, Side
from tests.unit.db.dbchecks import MAX, U256_SAMPLES, check_u256_ordering

SQLITE = sqlite.dialect()
POSTGRES = postgresql.dialect()

probe = Table(
    "probe",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("value", U256()),
)


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path = tmp_path_factory.mktemp("types") / "types.db"
    engine = make_engine(f"sqlite:///{path}")
    probe.create(engine)
    yield engine
    engine.dispose()


def roundtrip(engine: Engine, value: int) -> int:
    with engine.begin() as connection:
        key = connection.execute(probe.insert().values(value=value)).inserted_primary_key[0]
        return connection.scalar(select(probe.c.value).where(probe.c.id == key))  # type: ignore[no-any-return]


@pytest.mark.parametrize("value", U256_SAMPLES)
def test_u256_extremes_round_trip_on_sqlite(sqlite_engine: Engine, value: int) -> None:
    assert roundtrip(sqlite_engine, value) == value


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=MAX))
def test_u256_any_value_round_trips_on_sqlite(sqlite_engine: Engine, value: int) -> None:
    got = roundtrip(sqlite_engine, value)
    assert got == value
    assert type(got) is int


def test_u256_sqlite_encoding_is_fixed_width_decimal() -> None:
    assert U256().process_bind_param(0, SQLITE) == "0" * 78
    assert U256().process_bind_param(MAX, SQLITE) == str(MAX)
    assert U256().process_bind_param(MAX, POSTGRES) == MAX


@pytest.mark.parametrize(
    "value", [1.0, 0.5, Decimal(1), Decimal("1.5"), "1", b"1", True, False, None.__class__]
)
def test_u256_refuses_non_integers(value: object) -> None:
    for dialect in (SQLITE, POSTGRES):
        with pytest.raises(TypeError):
            U256().process_bind_param(value, dialect)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [-1, -(2**256), MAX + 1, 2**300])
def test_u256_refuses_out_of_range(value: int) -> None:
    for dialect in (SQLITE, POSTGRES):
        with pytest.raises(ValueError, match="out of range"):
            U256().process_bind_param(value, dialect)


def test_u256_accepts_int_subclasses_and_none() -> None:
    assert U256().process_bind_param(Side.SELL, SQLITE) == "0" * 77 + "1"
    assert U256().process_bind_param(None, SQLITE) is None


def test_float_is_refused_by_the_database_layer(sqlite_engine: Engine) -> None:
    with pytest.raises(StatementError, match="must be an int"), sqlite_engine.begin() as conn:
        conn.execute(probe.insert().values(value=1.0))


def test_u256_orders_like_integers_on_sqlite(tmp_path: Path) -> None:
    check_u256_ordering(f"sqlite:///{tmp_path / 'order.db'}", U256_SAMPLES[::-1])


def test_address_is_stored_checksummed() -> None:
    lower = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
    checksummed = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert Address().process_bind_param(lower, SQLITE) == checksummed
    assert Address().process_bind_param(checksummed, SQLITE) == checksummed


def test_address_checks_stay_strict_once_cached() -> None:
    checksummed = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    wrong = "0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    for _ in range(2):  # the second round is served by the cache; refusals are never cached
        assert Address().process_bind_param(checksummed.upper().replace("0X", "0x"), SQLITE) == (
            checksummed
        )
        with pytest.raises(ValueError, match="checksum"):
            Address().process_bind_param(wrong, SQLITE)


@pytest.mark.parametrize(
    "value",
    [
        "0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266",  # wrong checksum (f → F)
        "f39fd6e51aad88f6f4ce6ab8827279cfffb92266",  # no 0x
        "0x1234",
        "",
        b"\x00" * 20,
    ],
)
def test_address_refuses_malformed(value: object) -> None:
    with pytest.raises(ValueError, match="address"):
        Address().process_bind_param(value, SQLITE)  # type: ignore[arg-type]


def test_fixed_bytes_need_exact_length() -> None:
    assert Bytes32().process_bind_param(bytearray(32), SQLITE) == bytes(32)
    assert Signature().process_bind_param(b"\x01" * 65, SQLITE) == b"\x01" * 65
    for bad in (b"", b"\x00" * 31, b"\x00" * 33):
        with pytest.raises(ValueError, match="32 bytes"):
            Bytes32().process_bind_param(bad, SQLITE)
    with pytest.raises(TypeError):
        Bytes32().process_bind_param("0x" + "00" * 32, SQLITE)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="65 bytes"):
        Signature().process_bind_param(b"\x00" * 64, SQLITE)


def test_enum_types_store_values_and_refuse_unknowns() -> None:
    side = IntEnumType(Side)
    assert side.process_bind_param(Side.SELL, SQLITE) == 1
    assert side.process_result_value(0, SQLITE) is Side.BUY
    with pytest.raises(ValueError, match="not a valid Side"):
        side.process_bind_param(2, SQLITE)
    with pytest.raises(TypeError):
        side.process_bind_param(True, SQLITE)
    status = StrEnumType(OrderStatus)
    assert status.process_bind_param(OrderStatus.PARTIALLY_FILLED, SQLITE) == "partially_filled"
    assert status.process_result_value("open", SQLITE) is OrderStatus.OPEN
    with pytest.raises(ValueError, match="not a valid OrderStatus"):
        status.process_bind_param("OPEN", SQLITE)


def test_utc_datetime_refuses_naive_and_normalises_to_utc() -> None:
    stamp = UtcDateTime()
    with pytest.raises(ValueError, match="timezone-aware"):
        stamp.process_bind_param(datetime(2030, 1, 1), SQLITE)
    plus_two = datetime(2030, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert stamp.process_bind_param(plus_two, SQLITE) == datetime(2030, 1, 1, 10)
    assert stamp.process_bind_param(plus_two, POSTGRES) == datetime(2030, 1, 1, 10, tzinfo=UTC)
    loaded = stamp.process_result_value(datetime(2030, 1, 1, 10), SQLITE)
    assert loaded == datetime(2030, 1, 1, 10, tzinfo=UTC)
