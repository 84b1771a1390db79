"""Checks shared by the SQLite (unit) and PostgreSQL (integration) database tests.

Each takes a database URL, so both dialects prove exactly the same things.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from eth_utils.address import to_checksum_address
from sqlalchemy import Column, Integer, MetaData, Table, func, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase

from backend.db import Base, make_engine, session_factory, unit_of_work
from backend.db.models import (
    Balance,
    BatchCancel,
    BatchKill,
    ChainBalance,
    ChainBlock,
    ChainEvent,
    Deposit,
    EngineCursor,
    EngineJournal,
    EngineSnapshot,
    Fill,
    FillRevert,
    FillSettlement,
    IndexerCursor,
    Market,
    Order,
    ReconciliationRun,
    SettlementBatch,
    SettlementTransaction,
    SignedCancel,
    StreamOutbox,
    Token,
    TraderExit,
    Withdrawal,
    WithdrawalRelease,
    WithdrawalSettlement,
)
from backend.db.models.indexer import IndexerCommand
from backend.db.types import U256
from backend.domain.types import (
    BatchStatus,
    DepositStatus,
    FillStatus,
    MarketState,
    OrderStatus,
    Side,
    TimeInForce,
    TxStatus,
    WithdrawalStatus,
)

MAX = 2**256 - 1
BIG = 2**63 - 1  # largest BIGINT
WETH = to_checksum_address("0x" + "c0" * 20)
USDC = to_checksum_address("0x" + "a0" * 20)
ALICE = to_checksum_address("0x" + "a1" * 20)
BOB = to_checksum_address("0x" + "b0" * 20)
OPERATOR = to_checksum_address("0x" + "0e" * 20)
ZERO = "0x" + "00" * 20
SIG = b"\x1c" * 65

U256_SAMPLES = [0, 1, 9, 10, 11, 99, 100, 10**18, 2**64 - 1, 2**64, 2**128, 2**255, MAX - 1, MAX]


def h(n: int) -> bytes:
    """A distinct 32-byte hash."""
    return n.to_bytes(32, "big")


def every_model_rows() -> list[list[DeclarativeBase]]:
    """One row of every model with extreme values, in insert order (each list is one flush)."""
    maker = Order(
        order_hash=h(1),
        trader=ALICE,
        market_id="WETH-USDC",
        side=Side.SELL,
        price=MAX,
        amount=MAX,
        time_in_force=TimeInForce.GTC,
        nonce=MAX,
        expiry=MAX,
        max_fee_bps=65_535,
        signature=SIG,
        client_order_id="alice-1",
        status=OrderStatus.PARTIALLY_FILLED,
        filled=MAX - 1,
        reject_code=None,
        accepted_seq=BIG - 1,
        updated_seq=BIG,
    )
    taker = Order(
        order_hash=h(2),
        trader=BOB,
        market_id="WETH-USDC",
        side=Side.BUY,
        price=MAX,
        amount=MAX,
        time_in_force=TimeInForce.IOC,
        nonce=MAX,
        expiry=0,
        max_fee_bps=0,
        signature=SIG,
        client_order_id=None,
        status=OrderStatus.FILLED,
        filled=MAX,
        reject_code=None,
        accepted_seq=BIG,
        updated_seq=BIG,
    )
    rejected = Order(
        order_hash=h(3),
        trader=BOB,
        market_id="WETH-USDC",
        side=Side.SELL,
        price=1,
        amount=1,
        time_in_force=TimeInForce.POST_ONLY,
        nonce=0,
        expiry=0,
        max_fee_bps=0,
        signature=SIG,
        status=OrderStatus.REJECTED,
        filled=0,
        reject_code="POST_ONLY_WOULD_TAKE",
        accepted_seq=7,
        updated_seq=7,
    )
    return [
        [
            Token(address=WETH, symbol="WETH", decimals=18),
            Token(address=USDC, symbol="USDC", decimals=6),
        ],
        [
            Market(
                id="WETH-USDC",
                base_token=WETH,
                quote_token=USDC,
                tick_size=MAX,
                lot_size=MAX,
                min_amount=MAX,
                max_amount=MAX,
                max_notional=MAX,
                maker_fee_bps=10,
                taker_fee_bps=10_000,
                price_band_bps=500,
                breaker_move_bps=1000,
                breaker_window_s=60,
                state=MarketState.CANCEL_ONLY,
            ),
        ],
        [maker, taker, rejected],
        [
            Fill(
                seq=BIG,
                fill_index=0,
                market_id="WETH-USDC",
                maker_order_hash=h(1),
                taker_order_hash=h(2),
                maker_trader=ALICE,
                taker_trader=BOB,
                taker_side=Side.BUY,
                price=MAX,
                amount=MAX,
                quote_amount=MAX,
                maker_fee=MAX,
                taker_fee=MAX,
            ),
            SignedCancel(
                cancel_hash=h(10),
                kind="cancel",
                trader=ALICE,
                order_hash=h(99),
                signature=SIG,
                accepted_seq=BIG,
                effective=True,
            ),
            SignedCancel(
                cancel_hash=h(11),
                kind="cancel_all",
                trader=ALICE,
                base_token=ZERO,
                quote_token=ZERO,
                nonce_below=MAX,
                signature=SIG,
                accepted_seq=BIG,
                effective=True,
            ),
            Balance(trader=ALICE, token=USDC, total=MAX, locked=MAX, updated_seq=BIG),
            Withdrawal(
                withdrawal_hash=h(20),
                trader=ALICE,
                token=USDC,
                amount=MAX,
                nonce=MAX,
                expiry=MAX,
                signature=SIG,
                status=WithdrawalStatus.RESERVED,
                accepted_seq=BIG,
            ),
            TraderExit(trader=BOB, effective_block=BIG, frozen_seq=BIG),
            EngineJournal(seq=BIG, kind="place", payload=b"\x00\xff" * 100),
            EngineSnapshot(seq=BIG, state_hash=h(30), payload=b"\x00" * 1000),
            EngineCursor(name="persister", seq=BIG),
            ReconciliationRun(
                block_number=BIG,
                accounts=2**31 - 1,
                discrepancies=0,
                clean=True,
                report='{"discrepancies": []}' * 1000,
                duration_ms=2**31 - 1,
            ),
            StreamOutbox(
                event_id="e" * 120,
                type="t" * 32,
                version=2**15 - 1,
                partition_key="k" * 120,
                payload='{"amount": "' + str(2**256 - 1) + '"}' * 1000,
            ),
            SettlementBatch(
                batch_id=BIG,
                status=BatchStatus.SETTLED,
                fill_count=1,
                cancel_count=2,
                submitted_at=datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
                settled_block=BIG,
                settled_tx_hash=h(40),
                gas_used=BIG,
                failure_reason=None,
            ),
            ChainBlock(number=BIG, hash=h(50), parent_hash=h(51), timestamp=BIG),
            ChainEvent(
                block_hash=h(50),
                log_index=2**31 - 1,
                block_number=BIG,
                tx_hash=h(40),
                event="Deposited",
                address=OPERATOR,
                args={"trader": ALICE, "amount": str(MAX), "nested": [1, {"x": None}]},
            ),
            IndexerCursor(name="exchange", chain_id=31337, block_number=BIG, block_hash=h(50)),
            Deposit(
                block_hash=h(50),
                log_index=0,
                tx_hash=h(41),
                block_number=BIG,
                trader=ALICE,
                token=WETH,
                amount=MAX,
                status=DepositStatus.CREDITED,
                credited_seq=BIG,
            ),
            ChainBalance(trader=ALICE, token=WETH, amount=MAX, block_number=BIG),
            IndexerCommand(
                ref=h(52),
                kind="credit",
                block_hash=h(50),
                log_index=2**31 - 1,
                block_number=BIG,
                command={"trader": ALICE, "token": WETH, "amount": str(MAX)},
                status="done",
                engine_seq=BIG,
                outcome="applied",
            ),
        ],
        [
            BatchCancel(batch_id=BIG, cancel_hash=h(10)),
            BatchKill(batch_id=BIG, order_hash=h(1)),
            BatchCancel(batch_id=BIG, cancel_hash=h(11)),
            SettlementTransaction(
                kind="batch",
                batch_id=BIG,
                sender=OPERATOR,
                nonce=BIG,
                tx_hash=h(40),
                raw_tx=b"\x02" + b"\xab" * 500,
                max_fee_per_gas=MAX,
                max_priority_fee_per_gas=MAX,
                status=TxStatus.CONFIRMED,
                block_number=BIG,
                block_hash=h(50),
                gas_used=BIG,
            ),
        ],
        [
            FillSettlement(fill_id=1, status=FillStatus.SETTLED, batch_id=BIG),
            WithdrawalSettlement(
                withdrawal_id=1,
                status=WithdrawalStatus.CONFIRMED,
                tx_hash=h(42),
                block_number=BIG,
            ),
            WithdrawalRelease(withdrawal_id=1, status="done", engine_seq=BIG, outcome="applied"),
            FillRevert(
                fill_id=1, status="waiting", engine_seq=BIG, outcome="applied", attempts=BIG
            ),
            SettlementTransaction(
                kind="withdrawal",
                withdrawal_id=1,
                sender=OPERATOR,
                nonce=BIG,
                tx_hash=h(43),
                raw_tx=b"\x02",
                max_fee_per_gas=2,
                max_priority_fee_per_gas=1,
                status=TxStatus.REPLACED,
                replaces_tx_hash=h(40),
            ),
        ],
    ]


def _columns(row: DeclarativeBase) -> dict[str, Any]:
    return {attr.key: getattr(row, attr.key) for attr in inspect(type(row)).column_attrs}


def roundtrip_every_model(url: str) -> None:
    """Insert one row of every model and read each back in a fresh session, value for value."""
    batches = every_model_rows()
    models = {type(row) for batch in batches for row in batch}
    assert models == {m.class_ for m in Base.registry.mappers}, "a model has no sample row"

    engine = make_engine(url)
    factory = session_factory(engine)
    try:
        with unit_of_work(factory) as session:
            for batch in batches:
                session.add_all(batch)
                session.flush()
            session.refresh(batches[3][0])  # server defaults of one row, for the check below
        written = [(type(row), inspect(row).identity, _columns(row)) for b in batches for row in b]
        with factory() as session:
            for model, identity, expected in written:
                loaded = session.get(model, identity)
                assert loaded is not None, (model, identity)
                actual = _columns(loaded)
                for key, value in expected.items():
                    if key in ("created_at", "updated_at"):
                        stamp = actual[key]
                        assert stamp.utcoffset() is not None
                        assert stamp.utcoffset().total_seconds() == 0
                        assert abs((stamp - datetime.now(UTC)).total_seconds()) < 120
                    else:
                        assert actual[key] == value, (model.__name__, key, actual[key], value)
                        assert type(actual[key]) is type(value), (model.__name__, key)
    finally:
        engine.dispose()


def assert_no_drift(url: str) -> None:
    """Autogenerate finds nothing to change between the migrated database and the models."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def check_u256_ordering(url: str, values: list[int]) -> None:
    """ORDER BY, comparisons and MAX on a U256 column agree with Python's integer order."""
    probe = Table(
        "u256_order_probe",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("value", U256(), nullable=False),
    )
    engine = make_engine(url)
    try:
        probe.create(engine)
        with engine.begin() as connection:
            connection.execute(probe.insert(), [{"value": v} for v in values])
            ordered = connection.scalars(select(probe.c.value).order_by(probe.c.value)).all()
            assert ordered == sorted(values)
            descending = connection.scalars(select(probe.c.value).order_by(probe.c.value.desc()))
            assert descending.all() == sorted(values, reverse=True)
            for pivot in (0, 10, 2**64, MAX):
                above = connection.scalars(select(probe.c.value).where(probe.c.value > pivot))
                assert sorted(above.all()) == sorted(v for v in values if v > pivot)
            assert connection.scalar(select(func.max(probe.c.value))) == max(values)
            assert connection.scalar(select(func.min(probe.c.value))) == min(values)
    finally:
        probe.drop(engine)
        engine.dispose()


def check_constraints_refuse_bad_rows(url: str) -> None:
    """CHECKs hold on both dialects, including U256 comparisons on SQLite's text encoding."""
    engine = make_engine(url)
    factory = session_factory(engine)
    bad_rows: list[list[DeclarativeBase]] = [
        [Balance(trader=ALICE, token=USDC, total=MAX - 1, locked=MAX, updated_seq=1)],
        [Balance(trader=ALICE, token=USDC, total=10**18, locked=9 * 10**18, updated_seq=1)],
        [
            SignedCancel(
                cancel_hash=h(1), kind="cancel_all", trader=ALICE, order_hash=h(2),
                signature=SIG, accepted_seq=1, effective=True,
            )
        ],
        [FillSettlement(fill_id=1, status=FillStatus.SUBMITTED, batch_id=None)],
    ]  # fmt: skip
    try:
        with unit_of_work(factory) as session:
            session.add(Token(address=USDC, symbol="USDC", decimals=6))
        for rows in bad_rows:
            try:
                with unit_of_work(factory) as session:
                    session.add_all(rows)
            except IntegrityError:
                continue
            raise AssertionError(f"accepted {rows}")
        try:
            with engine.begin() as connection:
                connection.execute(text("UPDATE tokens SET decimals = 78"))
        except IntegrityError:
            pass
        else:
            raise AssertionError("decimals = 78 accepted")
        with unit_of_work(factory) as session:  # the boundary itself is allowed
            session.add(Balance(trader=ALICE, token=USDC, total=MAX, locked=MAX, updated_seq=1))
    finally:
        engine.dispose()


def head_revision() -> str:
    """The migrations' single head (the revision `upgrade(url)` ends at)."""
    from alembic.script import ScriptDirectory

    from backend.db.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head
