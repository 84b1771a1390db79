"""Restart, re-sync, exit freezes and in-doubt commands, against anvil + the real engine."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from sqlalchemy import select

from backend.chain.anvil import Anvil
from backend.db import unit_of_work
from backend.db.models.indexer import IndexerCommand
from backend.domain.types import Side
from indexer.projection import build_command
from tests.integration.indexer.rig import Chain, Rig, fresh_ledger

pytestmark = pytest.mark.integration


@pytest.fixture
def chain() -> Iterator[Chain]:
    with Anvil() as node:
        yield Chain.start(node)


def test_exit_request_freezes_the_trader_within_one_poll(chain: Chain, tmp_path: Path) -> None:
    rig = Rig(chain, tmp_path / "live", confirmations=12, reorg_window=64)
    try:
        rig.sync()
        trader = chain.h.traders[0].address
        chain.request_exit(0)
        assert not rig.engine.frozen(trader)
        rig.indexer.step()  # one poll, long before 12 confirmations
        assert rig.engine.frozen(trader)
    finally:
        rig.close()


def test_restart_resumes_from_the_cursor_like_an_uninterrupted_run(
    chain: Chain, tmp_path: Path
) -> None:
    traders = [t.address for t in chain.h.traders[:3]]
    for i in range(30):
        chain.deposit(traders[i % 3], chain.h.weth if i % 2 else chain.h.usdc, 100 + i)
    # Backfill in small steps, then "crash" (drop the indexer) and restart twice.
    rig = Rig(chain, tmp_path / "live", reorg_window=8, max_blocks_per_poll=3)
    rig.indexer.ranges.size = 4
    for _ in range(3):
        rig.indexer.step()
    rig.indexer.rpc.close()
    rig.indexer = rig.make_indexer()
    rig.indexer.ranges.size = 4
    for _ in range(4):
        rig.indexer.step()
    chain.deposit(traders[0], chain.h.weth, 999)
    rig.indexer.rpc.close()
    rig.indexer = rig.make_indexer()
    rig.sync()
    try:
        assert rig.ledger() == fresh_ledger(chain, tmp_path / "fresh", reorg_window=8)
    finally:
        rig.close()


def test_from_block_resync_sends_nothing_twice(chain: Chain, tmp_path: Path) -> None:
    alice = chain.h.traders[0].address
    for i in range(5):
        chain.deposit(alice, chain.h.weth, 10 + i)
    chain.mine(3)
    rig = Rig(chain, tmp_path / "live")
    try:
        rig.sync()
        before = rig.ledger()
        rig.indexer.resync_from(1)
        rig.sync()
        assert rig.ledger() == before
        assert rig.engine.total(alice, chain.h.weth.address) == sum(10 + i for i in range(5))
    finally:
        rig.close()


def test_in_doubt_credit_found_in_the_journal_is_not_sent_again(
    chain: Chain, tmp_path: Path
) -> None:
    """A crash after the engine journaled a credit but before the DB recorded it."""
    alice = chain.h.traders[0].address
    weth = chain.h.weth.address
    rig = Rig(chain, tmp_path / "live", confirmations=0)
    try:
        chain.deposit(alice, chain.h.weth, 40)
        chain.deposit(alice, chain.h.weth, 2)
        sink = rig.engine.sink()
        # Simulate the crash: the step commits the outbox rows, the first one is sent (the
        # engine journals and applies it) and the process dies before recording the answer.
        rig.indexer.outbox.drain = lambda: 0  # type: ignore[method-assign]
        rig.sync()
        with unit_of_work(rig.factory) as session:
            rows = session.scalars(select(IndexerCommand).order_by(IndexerCommand.id)).all()
            first = rows[0]
            first.status = "submitted"
            sink.submit(build_command(first.kind, dict(first.command)), ref=first.ref)
        assert rig.engine.total(alice, weth) == 40
        # Restart: resolve, then drain.
        rig.indexer.rpc.close()
        rig.indexer = rig.make_indexer()
        rig.sync()
        assert rig.engine.total(alice, weth) == 42  # 40 once, 2 once
        with unit_of_work(rig.factory) as session:
            statuses = [r.status for r in session.scalars(select(IndexerCommand))]
        assert statuses == ["done", "done"]
    finally:
        rig.close()


def test_start_up_reports_a_fee_recipient_other_than_the_contracts(
    chain: Chain, tmp_path: Path
) -> None:
    """The engine credits fees to HYBRIDEX_FEE_RECIPIENT; the chain to `feeRecipient()`. If they
    differ (or the setting is unset) the indexer says so at start-up, naming both."""
    rig = Rig(chain, tmp_path / "fees")
    on_chain = chain.h.fee_recipient.address
    try:
        for configured, warned in (
            (None, True),
            (chain.h.traders[0].address, True),
            (on_chain, False),
        ):
            rig.indexer.config = dataclasses.replace(rig.indexer.config, fee_recipient=configured)
            with structlog.testing.capture_logs() as logs:
                rig.indexer.check_chain()
            found = [e for e in logs if "feeRecipient()" in e["event"]]
            assert bool(found) == warned, (configured, logs)
            if warned:
                assert found[0]["on_chain"] == on_chain
    finally:
        rig.close()


def test_on_chain_cancel_requests_reach_the_engine_within_one_poll(
    chain: Chain, tmp_path: Path
) -> None:
    """`OrderCancelRequested` / `NonceInvalidationRequested` bind settlement only after the
    contract's `cancelDelay`, but the engine is told at once (before any confirmation)."""
    rig = Rig(chain, tmp_path / "live", confirmations=12, reorg_window=64)
    try:
        rig.sync()
        h = chain.h
        trader = h.traders[0]
        order = h.order(trader, Side.SELL, 10**15).order
        o = order
        as_tuple = (o.trader, o.baseToken, o.quoteToken, o.side, o.price, o.amount,
                    o.timeInForce, o.nonce, o.expiry, o.maxFeeBps)  # fmt: skip
        h.send(h.contract.functions.cancelOrder(as_tuple), trader)
        h.send(h.contract.functions.invalidateNonces(50), trader)
        rig.indexer.step()  # one poll, long before 12 confirmations
        with rig.factory() as session:
            rows = session.scalars(
                select(IndexerCommand)
                .where(IndexerCommand.kind.in_(("cancel_order", "cancel_all")))
                .order_by(IndexerCommand.id)
            ).all()
            got = [(r.kind, r.command, r.status, r.outcome) for r in rows]
        assert got == [
            ("cancel_order", {"trader": trader.address,
                              "order_hash": "0x" + h.order_hash(order).hex()},
             "done", "ORDER_NOT_FOUND"),  # answered: this order was never placed in the engine
            ("cancel_all", {"trader": trader.address, "market_id": None, "nonce_below": 50},
             "done", "applied"),
        ]  # fmt: skip
    finally:
        rig.close()
