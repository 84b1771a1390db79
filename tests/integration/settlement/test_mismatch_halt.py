"""Mismatches stop the line: a batch the chain settled with other fills than the ones recorded
for it halts settlement and the indexer (metric, critical log, no more work), instead of a log
line and a guess. Anvil, PostgreSQL, the real engine service, in-process settlement steps."""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client import REGISTRY

from backend.domain.errors import ErrorCode, HaltError
from backend.settlement.batcher import form_batch
from backend.settlement.monitor import follow_up
from backend.settlement.sender import send_batch
from backend.settlement.tick import run_tick
from tests.integration.settlement.conftest import Stack
from tests.integration.settlement.test_withdrawals import live
from tests.unit.contracts.harness import UNIT, USDC

pytestmark = pytest.mark.integration


def _halted(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


def test_settlement_halts_on_a_batch_the_chain_settled_differently(stack: Stack) -> None:
    h = stack.h
    seller, buyer = h.traders[0], h.traders[1]
    commands = stack.listing()
    commands += stack.fund(seller, weth=UNIT, usdc=0)
    commands += stack.fund(buyer, weth=0, usdc=100_000 * USDC)
    assert stack.engine(commands + stack.trades([(seller, buyer, 1), (seller, buyer, 2)])) == 2
    ctx = stack.context(confirmations=1, batch_max_fills=2)
    assert form_batch(ctx) == 1
    assert send_batch(ctx, 1) == "submitted"
    (recorded,) = stack.query("SELECT fills_hash FROM settlement_batches WHERE batch_id = 1")[0]
    # what another writer (or a bug) could leave: the record no longer names what was sent
    stack.execute("UPDATE settlement_batches SET fills_hash = :h", h=bytes(32))

    with pytest.raises(HaltError) as halted:
        follow_up(ctx)
    assert halted.value.code is ErrorCode.SETTLEMENT_INCONSISTENT
    assert halted.value.context["batch_id"] == 1
    assert _halted("hybridex_settlement_halted") == 1
    assert stack.query("SELECT status FROM settlement_batches") == [("submitted",)]
    assert stack.query("SELECT DISTINCT status FROM fill_settlements") == [("submitted",)]
    # every later tick stops at the same point: nothing else is formed or sent
    with pytest.raises(HaltError):
        run_tick(ctx, lambda b: pytest.fail(f"sent batch {b}"), lambda w: pytest.fail("sent"))

    # the operator finds the cause and puts the record right: the line moves again
    stack.execute("UPDATE settlement_batches SET fills_hash = :h", h=bytes(recorded))
    follow_up(ctx)
    assert _halted("hybridex_settlement_halted") == 0
    assert stack.query("SELECT status FROM settlement_batches") == [("settled",)]


def test_indexer_halts_instead_of_skipping_a_ledger_update(stack: Stack) -> None:
    h = stack.h
    seller, buyer = h.traders[0], h.traders[1]
    with live(stack) as s:
        h.fund(seller, h.weth, UNIT)
        h.fund(buyer, h.usdc, 100_000 * USDC)
        s.sync()
        portal = s.http.portal
        assert portal is not None
        for cmd, intake in stack.trades([(seller, buyer, 1)]):
            portal.call(s.service.submit, cmd, intake)
        s.flush()
        ctx = stack.context(confirmations=1, batch_max_fills=1)
        assert form_batch(ctx) == 1
        assert send_batch(ctx, 1) == "submitted"
        follow_up(ctx)
        assert stack.query("SELECT status FROM settlement_batches") == [("settled",)]
        before = stack.query("SELECT trader, token, amount FROM chain_balances ORDER BY 1, 2")
        stack.execute("UPDATE settlement_batches SET fills_hash = :h", h=bytes(32))

        h.mine(2)  # the BatchSettled event is confirmed for the indexer
        with pytest.raises(HaltError) as halted:
            s.indexer.run_until_synced()
        assert halted.value.code is ErrorCode.SETTLEMENT_INCONSISTENT
        after = stack.query("SELECT trader, token, amount FROM chain_balances ORDER BY 1, 2")
        assert after == before  # nothing half-applied

        # the daemon loop halts and stays up (metrics, probes) instead of crash-looping
        runner = threading.Thread(target=s.indexer.run, daemon=True)
        runner.start()
        deadline = time.monotonic() + 20
        while _halted("hybridex_indexer_halted") != 1:
            assert time.monotonic() < deadline, "the indexer did not halt"
            time.sleep(0.05)
        time.sleep(0.3)
        assert runner.is_alive()
        assert (
            stack.query("SELECT trader, token, amount FROM chain_balances ORDER BY 1, 2") == before
        )
        s.indexer.stop_event.set()
        runner.join(10)
        assert not runner.is_alive()
