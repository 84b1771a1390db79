"""`write_batch` on SQLite: the write cache only saves reads, never changes a row."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import text

from backend.db.migrate import upgrade
from backend.db.session import make_engine, session_factory, unit_of_work
from backend.engine.persister import WriteCache, write_batch
from backend.engine.records import Applied
from backend.matching.engine import Engine
from tests.unit.engine.helpers import setup, workload

TABLES = {
    "tokens": "address, symbol, decimals",
    "orders": "order_hash, status, filled, accepted_seq, updated_seq",
    "fills": "seq, fill_index, maker_order_hash, taker_order_hash, amount, price",
    "balances": "trader, token, total, locked, updated_seq",
    "signed_cancels": "cancel_hash, kind, trader",
    "engine_cursors": "name, seq",
}


def applied(n: int) -> list[Applied]:
    engine, out = Engine(), []
    for seq, (cmd, intake) in enumerate(setup(8) + workload(n, 8, seed=3), start=1):
        stamped = replace(cmd, seq=seq, now=1_700_000_000)
        out.append(Applied(stamped, intake, engine.apply(stamped)))
    return out


def persist(url: str, items: list[Applied], group: int, cache: WriteCache) -> dict[str, Any]:
    upgrade(url)
    engine = make_engine(url)
    factory = session_factory(engine)
    for i in range(0, len(items), group):
        with unit_of_work(factory) as session:
            write_batch(session, items[i : i + group], cursor_name="persister", cache=cache)
        cache.committed()
    with engine.connect() as conn:
        rows = {t: sorted(conn.execute(text(f"SELECT {c} FROM {t}"))) for t, c in TABLES.items()}
    engine.dispose()
    return rows


def test_warm_and_cold_caches_write_the_same_rows(tmp_path: Path) -> None:
    items = applied(800)
    warm_cache = WriteCache()
    warm = persist(f"sqlite:///{tmp_path / 'warm.db'}", items, 23, warm_cache)
    cold = persist(f"sqlite:///{tmp_path / 'cold.db'}", items, 23, WriteCache(max_amounts=1))
    assert warm == cold
    assert warm["fills"]
    assert any(r[1] == "partially_filled" for r in warm["orders"])
    assert len(warm_cache.amounts) <= sum(
        r[1] in ("open", "partially_filled") for r in warm["orders"]
    )


def test_bounded_amount_cache_drops_oldest_first() -> None:
    cache = WriteCache(max_amounts=2)
    for i in range(3):
        cache.remember(bytes([i]) * 32, i)
    assert list(cache.amounts.values()) == [1, 2]
