"""The reference consumer on a private NATS JetStream: balances rebuilt from balance events,
a restart in the middle resuming from the durable cursor, duplicates ignored by id."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from backend.db import make_engine, session_factory, unit_of_work
from backend.stream import outbox
from backend.stream.consume import BalanceBook, JetStreamReader, differences, rebuild
from backend.stream.outbox import StreamEvent
from backend.stream.publish import NatsPublisher, StreamOptions
from tests.integration.stream.conftest import PrivateNats

pytestmark = pytest.mark.integration

TRADERS = ["0x" + f"{i:02x}" * 20 for i in range(1, 6)]
TOKENS = ["0x" + "aa" * 20, "0x" + "bb" * 20]


def balance_events(count: int) -> tuple[list[StreamEvent], dict[tuple[str, str], tuple[int, int]]]:
    """`count` balance changes over TRADERS × TOKENS, and the final balances they leave."""
    events, final = [], {}
    for n in range(count):
        trader, token = TRADERS[n % 5], TOKENS[(n // 5) % 2]
        total, locked = 10**24 + n * 7, n * 3
        final[(trader, token)] = (total, locked)
        payload = {
            "seq": n,
            "trader": trader,
            "token": token,
            "total": str(total),
            "locked": str(locked),
        }
        events.append(StreamEvent(f"eng-{n}-0", "balance", trader, payload))
    return events, final


def test_consumer_restart_resumes_from_its_cursor(
    nats_server: PrivateNats, sqlite_url: str, prefix: str, tmp_path: Path
) -> None:
    factory = session_factory(make_engine(sqlite_url))
    events, final = balance_events(1200)
    with unit_of_work(factory) as session:
        outbox.add(session, events)
    with factory() as session:
        rows = outbox.pending(session, 5000)
    state = tmp_path / "balances.json"

    async def run() -> tuple[BalanceBook, BalanceBook, BalanceBook]:
        publisher = NatsPublisher(nats_server.url, StreamOptions(prefix=prefix))
        await publisher.start()
        await publisher.publish(rows[:700])
        reader = JetStreamReader(nats_server.url, prefix, "balances")
        await reader.start()
        first = await rebuild(reader, BalanceBook.load(state), state, limit=300)
        await reader.close()  # the consumer stops in the middle

        await publisher.publish(rows[700:])
        # After the stream moved on: a restarted consumer reads on from its cursor.
        reader = JetStreamReader(nats_server.url, prefix, "balances")
        await reader.start()
        second = await rebuild(reader, BalanceBook.load(state), state, idle_s=1.0)
        await reader.close()
        # A fresh consumer re-reads everything; redelivered ids change nothing.
        fresh = await rebuild(
            await _started(JetStreamReader(nats_server.url, prefix, "again")),
            BalanceBook.load(state),
            None,
            idle_s=1.0,
        )
        await publisher.close()
        return first, second, fresh

    first, second, fresh = asyncio.run(run())
    assert 300 <= first.events < 1200
    assert second.events == 1200  # each event applied once across the restart
    assert second.duplicates == 0  # nothing read twice: the cursor was kept
    assert second.balances == final
    assert fresh.duplicates == 1200
    assert fresh.balances == final
    assert differences(second, _as_api(final)) == []
    wrong = _as_api(final)
    wrong[TRADERS[0]][TOKENS[0]] = (1, 0)
    assert differences(second, wrong) == [
        f"{TRADERS[0]} {TOKENS[0]}: stream total={final[(TRADERS[0], TOKENS[0])][0]} "
        f"locked={final[(TRADERS[0], TOKENS[0])][1]}, API total=1 locked=0"
    ]


async def _started(reader: JetStreamReader) -> JetStreamReader:
    await reader.start()
    return reader


def _as_api(
    final: dict[tuple[str, str], tuple[int, int]],
) -> dict[str, dict[str, tuple[int, int]]]:
    api: dict[str, dict[str, tuple[int, int]]] = {}
    for (trader, token), value in final.items():
        api.setdefault(trader, {})[token] = value
    return api
