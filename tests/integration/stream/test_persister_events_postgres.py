"""The engine persister's stream events on PostgreSQL, through the real engine service: every
event matches its schema, the expected types are there, order holds per key; a retried batch
adds nothing and a rolled-back one leaves nothing (SQLite: tests/unit/stream)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from eth_utils.address import to_checksum_address
from sqlalchemy import text

from backend.db.session import make_engine, session_factory, unit_of_work
from backend.domain.types import Side, TimeInForce
from backend.engine.persister import write_batch
from backend.engine.records import Applied
from backend.engine.service import EngineService
from backend.matching.commands import AddMarket, Command, Credit, PlaceOrder
from backend.matching.engine import Engine
from tests.stream_schemas import check_conformance, check_key_order, outbox_rows
from tests.unit.engine.helpers import (
    LOT,
    MID,
    order_hash,
    setup,
    spec,
    trader,
    workload,
)

pytestmark = pytest.mark.integration

RISKY = "RISKY-QUOTE"
RISKY_BASE = to_checksum_address("0x" + "ee" * 20)


def risky_session() -> list[tuple[Command, None]]:
    """A market with a 10 % band and a 5 % breaker: a trade sets the reference, an order far
    from it is refused (band), a trade 6 % away trips the breaker."""
    market = replace(
        spec(),
        market_id=RISKY,
        base_token=RISKY_BASE,
        price_band_bps=1_000,
        breaker_move_bps=500,
        breaker_window_s=60,
    )

    def order(i: int, nonce: int, side: Side, price: int) -> tuple[Command, None]:
        h = order_hash("risky", i, nonce)
        cmd = PlaceOrder(
            0, 0, h, trader(i), RISKY, side, price, LOT, TimeInForce.GTC, 1_000 + nonce, 0
        )
        return cmd, None

    up = MID * 106 // 100 // (10**16) * 10**16
    return [
        (AddMarket(0, 0, market), None),
        (Credit(0, 0, trader(0), RISKY_BASE, 10**12), None),
        order(0, 1, Side.SELL, MID),
        order(1, 2, Side.BUY, MID),  # trade at MID: the reference
        order(1, 3, Side.BUY, 2 * MID),  # outside the band: refused
        order(0, 4, Side.SELL, up),
        order(1, 5, Side.BUY, up),  # +6 % within the window: breaker
    ]


def test_engine_service_events_match_their_schemas(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    factory = session_factory(engine)

    async def run() -> None:
        service = await EngineService.open(
            journal_dir=tmp_path / "journal", session_factory=factory, stream=True
        )
        try:
            for cmd, intake in setup(6) + workload(300, 6) + risky_session():
                await service.submit(cmd, intake)
        finally:
            await service.close()

    asyncio.run(run())
    messages = check_conformance(outbox_rows(factory))
    check_key_order(messages)
    types = {m["type"] for m in messages}
    assert {"trade", "fill", "order", "balance", "risk"} <= types
    kinds = {m["data"]["kind"] for m in messages if m["type"] == "risk"}
    assert kinds == {"price_band", "circuit_breaker", "market_state"}
    # The last balance event per (trader, token) is the stored balance.
    last = {
        (m["data"]["trader"], m["data"]["token"]): (m["data"]["total"], m["data"]["locked"])
        for m in messages
        if m["type"] == "balance"
    }
    with engine.connect() as conn:
        stored = {
            (t, k): (str(total), str(locked))
            for t, k, total, locked in conn.execute(
                text("SELECT trader, token, total, locked FROM balances")
            )
        }
    assert last == stored
    # Fills: one `matched` per side, keyed by that side's trader; trades keyed by market.
    trades = [m for m in messages if m["type"] == "trade"]
    fills = [m for m in messages if m["type"] == "fill"]
    with engine.connect() as conn:
        assert len(trades) == conn.execute(text("SELECT count(*) FROM fills")).scalar_one()
    assert len(fills) == 2 * len(trades)
    assert all(m["key"] == m["data"]["market_id"] for m in trades)
    assert all(m["key"] == m["data"]["trader"] and m["data"]["state"] == "matched" for m in fills)
    engine.dispose()


def test_retry_adds_nothing_and_rollback_leaves_nothing_postgres(db_url: str) -> None:
    matching, items = Engine(), []
    for seq, (cmd, intake) in enumerate(setup(4) + workload(120, 4, seed=5), start=1):
        stamped = replace(cmd, seq=seq, now=1_700_000_000)
        items.append(Applied(stamped, intake, matching.apply(stamped)))
    engine = make_engine(db_url)
    factory = session_factory(engine)
    count = text("SELECT count(*) FROM stream_outbox")

    def fail_after_writing() -> None:
        with unit_of_work(factory) as session:
            write_batch(session, items, cursor_name="p", stream=True)
            assert session.execute(count).scalar_one() > 0
            raise RuntimeError("the transaction fails after the rows were written")

    with pytest.raises(RuntimeError):
        fail_after_writing()
    with factory() as session:
        assert session.execute(count).scalar_one() == 0
        assert session.execute(text("SELECT count(*) FROM balances")).scalar_one() == 0
    written = []
    # The first attempt goes in by COPY; then a retry of the committed batch (its outcome was
    # unknown) ignores the ids already there.
    for attempt in range(2):
        with unit_of_work(factory) as session:
            write_batch(session, items, cursor_name="p", stream=True, first_attempt=attempt == 0)
        written.append([r.event_id for r in outbox_rows(factory)])
    assert written[0] == written[1]
    assert len(set(written[0])) == len(written[0]) > 0
    engine.dispose()
