"""The DB persister on real PostgreSQL: rows match the engine, and re-persisting is a no-op."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import text

from backend.db.bulk import UnnestInsert
from backend.db.session import make_engine, session_factory
from backend.domain.types import OrderStatus
from backend.engine.client import Intake
from backend.engine.persister import DbPersister
from backend.engine.service import EngineService
from backend.matching.commands import CancelAll, FreezeTrader
from backend.matching.events import Fill
from tests.unit.engine.helpers import BASE, MARKET, QUOTE, SIGNATURE, setup, trader, workload

pytestmark = pytest.mark.integration

TABLES = {
    "tokens": "address, symbol, decimals",
    "markets": "id, state, tick_size",
    "orders": "order_hash, status, filled, accepted_seq, updated_seq, signature",
    "fills": "seq, fill_index, maker_order_hash, taker_order_hash, amount, price",
    "balances": "trader, token, total, locked, updated_seq",
    "signed_cancels": "cancel_hash, kind, trader, base_token, nonce_below",
    "trader_exits": "trader, effective_block, frozen_seq",
    "engine_cursors": "name, seq",
}


def dump(url: str) -> dict[str, set[tuple[Any, ...]]]:
    engine = make_engine(url)
    with engine.connect() as conn:
        out = {
            table: {tuple(r) for r in conn.execute(text(f"SELECT {cols} FROM {table}"))}
            for table, cols in TABLES.items()
        }
    engine.dispose()
    return out


def test_events_persisted_once_and_replay_is_idempotent(db_url: str, tmp_path: Path) -> None:
    factory = session_factory(make_engine(db_url))
    fills = 0

    async def first_run() -> None:
        nonlocal fills
        service = await EngineService.open(journal_dir=tmp_path, session_factory=factory)
        for cmd, intake in setup(6):
            await service.submit(cmd, intake)
        outcomes = await asyncio.gather(*(service.submit(c, i) for c, i in workload(600, 6)))
        fills = sum(isinstance(e, Fill) for o in outcomes for e in o.events)
        bar = Intake(SIGNATURE, b"\x07" * 32, base_token=BASE, quote_token=QUOTE)
        await service.submit(CancelAll(0, 0, trader(1), MARKET, 10), bar)
        await service.submit(FreezeTrader(0, 0, trader(2)), Intake(effective_block=99))
        await service.close()

    asyncio.run(first_run())
    rows = dump(db_url)
    assert len(rows["fills"]) == fills > 0
    assert {r[1] for r in rows["orders"]} >= {OrderStatus.FILLED.value, OrderStatus.OPEN.value}
    assert rows["trader_exits"] == {(trader(2), 99, 6 * 2 + 1 + 600 + 2)}
    assert any(r[1] == "cancel_all" for r in rows["signed_cancels"])
    assert ("BASE-QUOTE", "ONLINE", 10**16) in rows["markets"]

    # Forget the cursor: the restart replays the whole journal into the same rows.
    with make_engine(db_url).begin() as conn:
        conn.execute(text("UPDATE engine_cursors SET seq = 0"))

    async def second_run() -> int:
        service = await EngineService.open(journal_dir=tmp_path, session_factory=factory)
        replayed = service.replayed
        await service.close(snapshot=False)
        return replayed

    assert asyncio.run(second_run()) == 6 * 2 + 1 + 600 + 2
    assert dump(db_url) == rows


def test_groups_applied_within_the_write_interval_share_one_transaction(
    db_url: str, tmp_path: Path
) -> None:
    factory = session_factory(make_engine(db_url))
    steps = workload(5, 2)

    async def run() -> list[int]:
        service = await EngineService.open(journal_dir=tmp_path, session_factory=factory)
        persister = service.sink
        assert isinstance(persister, DbPersister)
        persister.min_interval_s = 0.5
        with structlog.testing.capture_logs() as logs:
            for cmd, intake in setup(2):
                await service.submit(cmd, intake)
            await asyncio.to_thread(persister.flush)
            for cmd, intake in steps:  # five groups of one command, well within 0.5 s
                await service.submit(cmd, intake)
            await asyncio.to_thread(persister.flush)
        await service.close()
        return [e["commands"] for e in logs if e["event"] == "persister_batch"]

    batches = asyncio.run(run())
    # The set-up's groups (one or more transactions), then one transaction for the five.
    assert batches[-1] == len(steps)
    assert sum(batches) == len(setup(2)) + len(steps)
    assert len(dump(db_url)["orders"]) > 0


def every_column(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the persister's tables, all columns but what the database fills in."""
    from backend.db.base import Base

    skip = {"id", "created_at", "updated_at"}
    engine = make_engine(url)
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in (*TABLES, "withdrawals"):
            cols = [c.name for c in Base.metadata.tables[table].columns if c.name not in skip]
            rows = conn.execute(text(f"SELECT {', '.join(cols)} FROM {table}"))
            out[table] = sorted((tuple(r) for r in rows), key=repr)
        conn.execute(text(f"TRUNCATE {', '.join((*TABLES, 'withdrawals'))} CASCADE"))
        conn.commit()
    engine.dispose()
    return out


def test_one_statement_a_table_writes_what_executemany_writes(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL's `unnest` statements against the executemany they replace: the same rows,
    column for column, also when a replay writes commands again (the guards, ON CONFLICT)."""
    from backend.db.session import unit_of_work
    from backend.engine import persister
    from tests.unit.engine.test_persister import applied

    items = applied(600)
    factory = session_factory(make_engine(db_url))

    def persist(bulk: bool) -> dict[str, list[tuple[Any, ...]]]:
        with factory() as session:
            stmts = persister._Statements(session, bulk=bulk)
        assert isinstance(stmts.orders, UnnestInsert) is bulk
        monkeypatch.setitem(persister._STATEMENTS, "postgresql", stmts)
        cache = persister.WriteCache()
        for group, part in ((23, items), (37, items[100:400])):  # then a replay of a part
            for i in range(0, len(part), group):
                with unit_of_work(factory) as session:
                    persister.write_batch(
                        session, part[i : i + group], cursor_name="p", cache=cache
                    )
                cache.committed()
        return every_column(db_url)

    bulk, many = persist(True), persist(False)
    assert bulk == many
    assert bulk["fills"]
    assert bulk["signed_cancels"]
    assert {r[12] for r in bulk["orders"]} >= {"open", "partially_filled", "filled", "cancelled"}


def test_one_statement_a_table_checks_values_as_the_column_types_do(db_url: str) -> None:
    from sqlalchemy.dialects import postgresql

    from backend.db.models import Balance

    writer = UnnestInsert(
        postgresql.psycopg.dialect(), Balance.__table__, conflict=("trader", "token"),
        update=("total", "locked", "updated_seq"), guard="updated_seq",
    )  # fmt: skip
    row = {"trader": trader(1), "token": BASE, "total": 5, "locked": 0, "updated_seq": 1}
    factory = session_factory(make_engine(db_url))
    for bad, error in (({"total": -1}, ValueError), ({"locked": 1.0}, TypeError),
                       ({"trader": "0x12"}, ValueError)):  # fmt: skip
        with factory() as session, pytest.raises(error):
            writer.execute(session, [row, {**row, "token": QUOTE, **bad}])
    with factory() as session:
        tokens = "INSERT INTO tokens (address, symbol, decimals) VALUES (:b, 'B', 18), (:q, 'Q', 6)"
        session.execute(text(tokens), {"b": BASE, "q": QUOTE})
        writer.execute(session, [row])
        writer.execute(session, [{**row, "total": 4, "updated_seq": 0}])  # older: kept out
        # one key twice in a statement: written a row at a time, in order (the newer wins)
        twice = [{**row, "total": 6, "updated_seq": 2},
                 {**row, "total": 7, "updated_seq": 3}]  # fmt: skip
        writer.execute(session, twice)
        # uint256 is exact through the binary NUMERIC arrays, at both ends of its range
        top = 2**256 - 1
        writer.execute(
            session,
            [{**row, "total": top, "locked": top - 1, "updated_seq": 4},
             {**row, "token": QUOTE, "total": 1, "locked": 0, "updated_seq": 4}],
        )  # fmt: skip
        session.commit()
        stored = session.execute(
            text("SELECT trader, token, total, locked FROM balances ORDER BY token")
        ).all()
    assert sorted(stored) == sorted([(trader(1), BASE, top, top - 1), (trader(1), QUOTE, 1, 0)])


def test_the_persister_writes_on_after_its_connection_is_killed(
    db_url: str, tmp_path: Path
) -> None:
    """The persister's own connection has no ping before a transaction: when the server drops
    it, the next transaction fails and is retried on a new connection, and nothing is lost."""
    factory = session_factory(make_engine(db_url))
    steps = workload(40, 3)

    async def run() -> int:
        service = await EngineService.open(journal_dir=tmp_path, session_factory=factory)
        persister = service.sink
        assert isinstance(persister, DbPersister)
        for cmd, intake in setup(3):
            await service.submit(cmd, intake)
        await asyncio.to_thread(persister.flush)
        with make_engine(db_url).begin() as conn:  # every other session on this database
            killed = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar()
        assert killed
        with structlog.testing.capture_logs() as logs:
            for cmd, intake in steps:
                await service.submit(cmd, intake)
            await asyncio.to_thread(persister.flush, 30.0)
        assert any(e["event"] == "persister_write_failed" for e in logs)
        last = service.engine.last_seq
        assert persister.cursor() == last
        await service.close()
        return last

    last = asyncio.run(run())
    assert ("persister", last) in dump(db_url)["engine_cursors"]


def test_the_persisters_prepared_writes_never_scan_a_whole_table(
    db_url: str, tmp_path: Path
) -> None:
    """The persister's statements are prepared on its own connection after a few runs, and
    their generic plan lasts until the next ANALYZE: made while `orders` is empty, a plan may
    scan all of it, and then every transaction reads the whole table. On that connection,
    even the generic plan of each prepared write reaches its rows by index."""
    factory = session_factory(make_engine(db_url))

    async def run() -> dict[str, str]:
        service = await EngineService.open(journal_dir=tmp_path, session_factory=factory)
        persister = service.sink
        assert isinstance(persister, DbPersister)
        for cmd, intake in setup(4):
            await service.submit(cmd, intake)
        for cmd, intake in workload(200, 4):  # a transaction per group: each write prepared
            await service.submit(cmd, intake)
            await asyncio.to_thread(persister.flush)
        assert persister._own is not None
        plans: dict[str, str] = {}
        with persister._own.connect() as conn:  # the persister's one connection, idle now
            conn.execute(text("SET plan_cache_mode = force_generic_plan"))
            prepared = conn.execute(
                text(
                    "SELECT name, statement, cardinality(parameter_types)"
                    " FROM pg_prepared_statements WHERE NOT from_sql"
                )
            ).all()
            for name, statement, count in prepared:
                nulls = ", ".join(["NULL"] * count)
                rows = conn.execute(text(f"EXPLAIN EXECUTE {name}({nulls})")).scalars()
                plans[statement] = "\n".join(rows)
            conn.rollback()
        await service.close()
        return plans

    plans = asyncio.run(run())
    written = {" ".join(s.split()[:3]) for s in plans}
    assert written >= {"UPDATE orders SET", "INSERT INTO orders", "INSERT INTO fills"}, written
    for statement, plan in plans.items():
        assert "Seq Scan" not in plan, f"{statement}\n{plan}"
