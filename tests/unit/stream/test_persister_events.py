"""The persister's stream events on SQLite: they exist exactly when their rows do (a retried
batch adds nothing, a rolled-back one leaves nothing), their ids do not depend on how the
commands were grouped into transactions, and without the stream nothing is written.
PostgreSQL: tests/integration/stream/test_persister_events_postgres.py."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from backend.db.migrate import upgrade
from backend.db.session import make_engine, session_factory, unit_of_work
from backend.engine.persister import WriteCache, write_batch
from backend.engine.records import Applied
from tests.stream_schemas import check_conformance, check_key_order, outbox_rows
from tests.unit.engine.test_persister import applied


def persist_stream(url: str, items: list[Applied], group: int, stream: bool = True) -> list[Any]:
    upgrade(url)
    engine = make_engine(url)
    factory = session_factory(engine)
    cache = WriteCache()
    for i in range(0, len(items), group):
        with unit_of_work(factory) as session:
            write_batch(session, items[i : i + group], cursor_name="p", cache=cache, stream=stream)
        cache.committed()
    with engine.connect() as conn:
        rows = list(
            conn.execute(
                text("SELECT event_id, type, partition_key, payload FROM stream_outbox ORDER BY id")
            )
        )
    engine.dispose()
    return rows


@pytest.fixture(scope="module")
def items() -> list[Applied]:
    return applied(400)


def test_events_do_not_depend_on_grouping_and_keep_key_order(
    tmp_path: Path, items: list[Applied]
) -> None:
    one = persist_stream(f"sqlite:///{tmp_path / 'a.db'}", items, 1)
    many = persist_stream(f"sqlite:///{tmp_path / 'b.db'}", items, 37)
    assert one == many
    types = Counter(r.type for r in one)
    assert {"trade", "fill", "order", "balance"} <= set(types)
    assert types["fill"] == 2 * types["trade"]  # one per side
    assert len({r.event_id for r in one}) == len(one)
    # Per key, the engine seq never goes back, and balances carry the value after the change.
    last: dict[str, int] = {}
    for r in one:
        data = json.loads(r.payload)
        assert data["seq"] >= last.get(r.partition_key, 0)
        last[r.partition_key] = data["seq"]
        if r.type in ("order", "fill", "balance"):
            assert r.partition_key == data["trader"]
        if r.type == "trade":
            assert r.partition_key == data["market_id"]


def test_final_balances_rebuild_from_the_stream(tmp_path: Path, items: list[Applied]) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    rows = persist_stream(url, items, 50)
    rebuilt: dict[tuple[str, str], tuple[int, int]] = {}
    for r in rows:
        if r.type == "balance":
            d = json.loads(r.payload)
            rebuilt[d["trader"], d["token"]] = (int(d["total"]), int(d["locked"]))
    engine = make_engine(url)
    with engine.connect() as conn:
        stored = {
            (t, k): (int(total), int(locked))
            for t, k, total, locked in conn.execute(
                text("SELECT trader, token, total, locked FROM balances")
            )
        }
    engine.dispose()
    assert rebuilt == stored


def test_retry_adds_nothing_and_rollback_leaves_nothing(
    tmp_path: Path, items: list[Applied]
) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    upgrade(url)
    engine = make_engine(url)
    factory = session_factory(engine)
    count = text("SELECT count(*) FROM stream_outbox")

    def fail_after_writing() -> None:
        with unit_of_work(factory) as session:
            write_batch(session, items[:100], cursor_name="p", stream=True)
            assert session.execute(count).scalar_one() > 0
            raise RuntimeError("the transaction fails after the rows were written")

    with pytest.raises(RuntimeError):
        fail_after_writing()
    with factory() as session:
        assert session.execute(count).scalar_one() == 0
        assert session.execute(text("SELECT count(*) FROM fills")).scalar_one() == 0
    for _ in range(2):  # the same batch again (a retry after an unknown commit outcome)
        with unit_of_work(factory) as session:
            write_batch(session, items[:100], cursor_name="p", stream=True)
    with factory() as session:
        events = session.execute(count).scalar_one()
        once = persist_stream(f"sqlite:///{tmp_path / 'e.db'}", items[:100], 100)
        assert events == len(once) > 0
    engine.dispose()


def test_no_stream_writes_no_events(tmp_path: Path, items: list[Applied]) -> None:
    assert persist_stream(f"sqlite:///{tmp_path / 'f.db'}", items, 50, stream=False) == []


def test_every_event_matches_its_schema(tmp_path: Path, items: list[Applied]) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    persist_stream(url, items, 50)
    engine = make_engine(url)
    messages = check_conformance(outbox_rows(session_factory(engine)))
    engine.dispose()
    check_key_order(messages)
    assert {"trade", "fill", "order", "balance"} <= {m["type"] for m in messages}
