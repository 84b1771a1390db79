"""`backend.db.bulk` on PostgreSQL: the per-column arrays (text literals, prebuilt binary
arrays) store exactly what the column types store, and refuse what they refuse."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, sessionmaker

from backend.db import bulk
from backend.db.bulk import UnnestInsert, UnnestUpdate
from backend.db.models import Order, SignedCancel
from backend.db.session import make_engine, session_factory
from backend.domain.types import OrderStatus, Side, TimeInForce
from tests.unit.engine.helpers import BASE, QUOTE, trader

pytestmark = pytest.mark.integration

DIALECT = postgresql.psycopg.dialect()
TOP = 2**256 - 1
CANCELS = UnnestInsert(DIALECT, SignedCancel.__table__, conflict=("cancel_hash",))
ORDERS = UnnestInsert(DIALECT, Order.__table__, conflict=("order_hash",))
ORDER_UPDATE = UnnestUpdate(
    DIALECT, Order.__table__, guard="updated_seq",
    params={"order_hash": "h", "status": "s", "filled": "f", "updated_seq": "q"},
)  # fmt: skip


@pytest.fixture
def factory(db_url: str) -> sessionmaker[Session]:
    return session_factory(make_engine(db_url))


def cancel(i: int, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "cancel_hash": bytes([i]) * 32, "kind": "cancel", "trader": trader(i),
        "order_hash": bytes(range(32)), "base_token": None, "quote_token": None,
        "nonce_below": None, "signature": bytes(range(65)), "accepted_seq": i,
        "effective": True,
    }  # fmt: skip
    row.update(changes)
    return row


def order(i: int, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "order_hash": bytes([i]) * 32, "trader": trader(i), "market_id": "BASE-QUOTE",
        "side": Side.BUY, "price": 1, "amount": 10, "time_in_force": TimeInForce.GTC,
        "nonce": i, "expiry": 0, "max_fee_bps": 30, "signature": bytes(65),
        "client_order_id": None, "status": OrderStatus.OPEN, "filled": 0,
        "reject_code": None, "accepted_seq": i, "updated_seq": i,
    }  # fmt: skip
    row.update(changes)
    return row


def with_market(session: Session) -> None:
    tokens = "INSERT INTO tokens (address, symbol, decimals) VALUES (:b, 'B', 18), (:q, 'Q', 6)"
    session.execute(text(tokens), {"b": BASE, "q": QUOTE})
    session.execute(
        text(
            "INSERT INTO markets (id, base_token, quote_token, tick_size, lot_size, min_amount,"
            " maker_fee_bps, taker_fee_bps, state)"
            " VALUES ('BASE-QUOTE', :b, :q, 1, 1, 1, 0, 0, 'ONLINE')"
        ),
        {"b": BASE, "q": QUOTE},
    )


def stored(session: Session, table: str, columns: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in session.execute(text(f"SELECT {columns} FROM {table} ORDER BY 1"))]


def test_extremes_nulls_and_every_byte_are_stored_exactly(
    factory: sessionmaker[Session],
) -> None:
    bar = {"kind": "cancel_all", "order_hash": None, "quote_token": QUOTE}
    rows = [
        cancel(1, **bar, nonce_below=0, base_token=BASE.lower()),
        cancel(2, **bar, nonce_below=TOP, base_token=BASE, effective=False),
        cancel(
            3,
            signature=bytearray(b"\x00\\\"{},'N" * 8 + b"\xff"),  # the slow path
            order_hash=memoryview(bytes(range(224, 256))),
        ),
        cancel(4, **bar, nonce_below=Side.SELL, base_token=BASE),  # an int subclass
    ]
    with factory() as session:
        CANCELS.execute(session, rows)
        got = stored(
            session, "signed_cancels",
            "cancel_hash, kind, trader, order_hash, base_token, quote_token, nonce_below, "
            "signature, effective",
        )  # fmt: skip
    want = [
        (
            r["cancel_hash"],
            r["kind"],
            r["trader"],
            None if r["order_hash"] is None else bytes(r["order_hash"]),
            r["base_token"] and BASE,
            r["quote_token"],
            r["nonce_below"],
            bytes(r["signature"]),
            r["effective"],
        )
        for r in rows
    ]
    assert got == want
    assert got[1][6] == TOP
    assert got[0][6] == 0


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ids=st.lists(st.one_of(st.none(), st.text(max_size=64)), min_size=1, max_size=20))
def test_strings_round_trip_whatever_their_characters(
    factory: sessionmaker[Session], ids: list[str | None]
) -> None:
    """Quotes, backslashes, braces, commas, `NULL` as text and NULL itself, in one array."""
    ids = [None if s is None else s.replace("\x00", "") for s in ids]
    with factory() as session:
        with_market(session)
        rows = [order(i, client_order_id=s) for i, s in enumerate(ids)]
        ORDERS.execute(session, rows)
        got = stored(session, "orders", "nonce, client_order_id")
        session.rollback()
    assert got == [(i, s) for i, s in enumerate(ids)]


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"nonce_below": -1}, ValueError),
        ({"nonce_below": TOP + 1}, ValueError),
        ({"nonce_below": 1.0}, TypeError),
        ({"nonce_below": True}, TypeError),
        ({"nonce_below": "1"}, TypeError),
        ({"cancel_hash": b"\x01" * 31}, ValueError),
        ({"signature": bytes(66)}, ValueError),
        ({"order_hash": "00" * 32}, TypeError),
        ({"trader": "0x12"}, ValueError),
        ({"base_token": BASE.lower()[:-1] + "G"}, ValueError),
        ({"trader": 5}, ValueError),
    ],
)
def test_bad_values_are_refused_before_the_statement(
    factory: sessionmaker[Session], bad: dict[str, Any], error: type[Exception]
) -> None:
    with factory() as session, pytest.raises(error):
        CANCELS.execute(session, [cancel(1), cancel(2, **bad), cancel(3)])


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"side": 2}, ValueError),
        ({"side": True}, TypeError),
        ({"time_in_force": "GTC"}, TypeError),
        ({"status": "unknown"}, ValueError),
        ({"status": 1}, TypeError),
        ({"price": -5}, ValueError),
    ],
)
def test_enums_and_amounts_are_refused_like_the_column_types(
    factory: sessionmaker[Session], bad: dict[str, Any], error: type[Exception]
) -> None:
    with factory() as session, pytest.raises(error):
        ORDERS.execute(session, [order(1), order(2, **bad)])


def test_update_writes_enum_and_uint256_columns(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        with_market(session)
        ORDERS.execute(session, [order(1, amount=TOP), order(2)])
        ORDER_UPDATE.execute(session, [
            {"h": bytes([1]) * 32, "s": OrderStatus.PARTIALLY_FILLED, "f": TOP - 1, "q": 5},
            {"h": bytes([2]) * 32, "s": "filled", "f": 10, "q": 1},  # not newer: kept out
        ])  # fmt: skip
        got = stored(session, "orders", "nonce, status, filled, updated_seq")
        with pytest.raises(ValueError, match="uint256"):
            ORDER_UPDATE.execute(session, [{"h": bytes(32), "s": "open", "f": -1, "q": 9}])
    assert got == [(1, "partially_filled", TOP - 1, 5), (2, "open", 0, 2)]


def test_a_connection_opened_without_the_array_dumpers_gets_them(db_url: str) -> None:
    """A connection whose adapters were copied before `backend.db.bulk` registered its
    prebuilt-array dumpers (a pool opened earlier in the process) still writes."""
    from psycopg import postgres
    from psycopg.adapt import AdaptersMap

    bare = AdaptersMap(types=postgres.types)
    postgres.register_default_adapters(bare)
    engine = make_engine(db_url, connect_args={"context": bare})
    try:
        with session_factory(engine)() as session:
            driver = session.connection().connection.driver_connection
            assert driver is not None
            # what such a connection lacks: the array would go as plain bytea
            found = driver.adapters.get_dumper(bulk._ByteaArray, psycopg.adapt.PyFormat.BINARY)
            assert found is not bulk._ByteaArrayDumper
            CANCELS.execute(session, [cancel(1), cancel(2)])
            assert stored(session, "signed_cancels", "cancel_hash") == [
                (bytes([1]) * 32,),
                (bytes([2]) * 32,),
            ]
            session.rollback()
    finally:
        engine.dispose()
