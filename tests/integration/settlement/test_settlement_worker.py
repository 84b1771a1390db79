"""A real Celery worker settles the real engine's fills on anvil, exactly once.

Each test: fills through the engine service (journal + persister into PostgreSQL), then a
`celery worker -B` child process (Redis broker under the test's prefix) settles them.
"""

from __future__ import annotations

import asyncio
import signal
import time
import urllib.request
from collections.abc import Iterator

import pytest

from backend.chain.anvil import free_port, rpc_call
from backend.domain.errors import DexError, ErrorCode
from backend.domain.types import PRICE_SCALE
from backend.eip712.signing import sign
from backend.engine.inprocess import InProcessEngineClient
from backend.engine.service import EngineService
from backend.settlement.crashpoints import CRASH_ENV, MARKER_ENV
from backend.settlement.withdrawals import request_withdrawal
from tests.integration.settlement.conftest import (
    OPERATOR_KEY,
    WAIT_S,
    Stack,
    automine,
    scrape,
)
from tests.otlp_receiver import Receiver, otlp_receiver
from tests.unit.contracts.harness import LOT, PRICE, UNIT, USDC

pytestmark = pytest.mark.integration

GWEI = 10**9


def _market_with_fills(stack: Stack, pairs: list[tuple[int, int, int]]) -> int:
    h = stack.h
    traders = h.traders[:4]
    commands = stack.listing()
    for t in traders:
        commands += stack.fund(t, weth=UNIT, usdc=10_000 * USDC)
    commands += stack.trades([(traders[m], traders[t], lots) for m, t, lots in pairs])
    return stack.engine(commands)


TEN_TRADES = [(0, 1, 2), (2, 3, 3), (0, 3, 1), (2, 1, 4), (0, 1, 5),
              (2, 3, 1), (0, 1, 1), (2, 3, 2), (0, 3, 3), (2, 1, 2)]  # fmt: skip


def test_engine_fills_settle_on_chain_and_a_withdrawal_follows(stack: Stack) -> None:
    assert _market_with_fills(stack, TEN_TRADES) == 10
    stack.start_worker()
    stack.wait("every fill settled", stack.all_settled)
    ids = stack.assert_batches_sequential()
    assert len(ids) >= 3  # at most 4 fills a batch
    stack.assert_chain_matches_engine()
    rows = stack.query(
        "SELECT fs.status, b.settled_block, t.status, t.block_number FROM fill_settlements fs "
        "JOIN settlement_batches b ON b.batch_id = fs.batch_id "
        "JOIN settlement_transactions t ON t.tx_hash = b.settled_tx_hash"
    )
    assert len(rows) == 10
    assert all(r[0] == "settled" and r[2] == "confirmed" and r[1] == r[3] for r in rows)
    # The worker told each trader on `fills:{address}`: submitted (batch, tx), then settled.
    for trader in stack.h.traders[:4]:
        messages = stack.feed(f"fills:{trader.address}")
        assert [m.seq for m in messages] == list(range(1, len(messages) + 1))
        final = {m.data["fillId"]: m.data for m in messages}
        assert final
        assert all(d["status"] == "settled" and d["block"] for d in final.values())
        submitted = [m.data for m in messages if m.data["status"] == "submitted"]
        assert {d["fillId"] for d in submitted} == set(final)
        assert all(d["txHash"] and d["batchId"] for d in submitted)

    # Withdrawal: verified, reserved by the engine (journaled), submitted by the worker.
    h = stack.h
    trader, other = h.traders[1], h.traders[2]
    w = h.withdrawal(trader, h.weth, 3 * 10**15)
    good = sign(w, h.domain, trader.key).to_bytes()

    async def intake() -> None:
        service = await EngineService.open(
            journal_dir=stack.tmp / "journal",
            session_factory=stack.factory,
            fee_recipient=h.fee_recipient.address,
        )
        client = InProcessEngineClient(service)
        try:
            forged = sign(w, h.domain, other.key).to_bytes()
            with pytest.raises(DexError) as bad:
                await request_withdrawal(client, stack.factory, w, forged, domain=h.domain)
            assert bad.value.code is ErrorCode.INVALID_SIGNATURE
            too_much = h.withdrawal(trader, h.weth, 10 * UNIT)
            sig = sign(too_much, h.domain, trader.key).to_bytes()
            with pytest.raises(DexError) as poor:
                await request_withdrawal(client, stack.factory, too_much, sig, domain=h.domain)
            assert poor.value.code is ErrorCode.INSUFFICIENT_BALANCE
            outcome = await request_withdrawal(client, stack.factory, w, good, domain=h.domain)
            assert outcome.status.value == "reserved"
        finally:
            await client.close()

    asyncio.run(intake())
    before = h.weth.functions.balanceOf(trader.address).call()
    stack.wait(
        "withdrawal confirmed",
        lambda: stack.query("SELECT status FROM withdrawal_settlements") == [("confirmed",)],
    )
    assert h.weth.functions.balanceOf(trader.address).call() == before + w.amount
    # Same nonce, different amount: refused.
    reused = h.withdrawal(trader, h.weth, 10**15, nonce=w.nonce)

    async def reuse() -> ErrorCode:
        service = await EngineService.open(
            journal_dir=stack.tmp / "journal", session_factory=stack.factory
        )
        client = InProcessEngineClient(service)
        try:
            sig = sign(reused, h.domain, trader.key).to_bytes()
            await request_withdrawal(client, stack.factory, reused, sig, domain=h.domain)
        except DexError as exc:
            return exc.code
        finally:
            await client.close()
        raise AssertionError("a reused withdrawal nonce was accepted")

    assert asyncio.run(reuse()) is ErrorCode.NONCE_REUSED
    assert OPERATOR_KEY[2:].lower() not in stack.worker_log().lower()  # never logged


@pytest.mark.parametrize("point", ["after_simulation", "after_broadcast"])
def test_sigkill_while_sending_then_restart_settles_exactly_once(stack: Stack, point: str) -> None:
    assert _market_with_fills(stack, TEN_TRADES) == 10
    marker = stack.tmp / "crashed"
    proc = stack.start_worker(**{CRASH_ENV: point, MARKER_ENV: str(marker)})
    assert proc.wait(WAIT_S) == -signal.SIGKILL, stack.worker_log()
    assert marker.read_text() == point
    txs = stack.query("SELECT batch_id, status FROM settlement_transactions")
    if point == "after_simulation":
        assert txs == []
        assert stack.query("SELECT batch_id, status FROM settlement_batches") == [(1, "pending")]
        assert stack.h.exchange.last_batch_id() == 0
    else:  # broadcast (anvil mined it at once) but never recorded as such
        assert txs == [(1, "signed")]
        assert stack.h.exchange.last_batch_id() == 1

    stack.start_worker()  # no crash point this time
    stack.wait("every fill settled after the restart", stack.all_settled)
    stack.assert_batches_sequential()
    stack.assert_chain_matches_engine()
    per_batch = stack.query("SELECT batch_id, count(*) FROM settlement_transactions GROUP BY 1")
    assert all(n == 1 for _, n in per_batch), (
        per_batch
    )  # the stored bytes, re-sent, never re-signed
    claims = stack.query("SELECT count(*), count(DISTINCT fill_id) FROM fill_settlements")
    assert claims == [(10, 10)]


@pytest.fixture
def collector() -> Iterator[Receiver]:
    with otlp_receiver() as receiver:
        yield receiver


def test_stuck_transaction_is_replaced_with_bumped_fees_and_included(
    stack: Stack, collector: Receiver
) -> None:
    assert _market_with_fills(stack, TEN_TRADES[:3]) == 3
    node = stack.node
    automine(node, False)
    cap = 150 * GWEI
    port = free_port()
    stack.start_worker(
        HYBRIDEX_BATCH_MAX_FILLS="10",
        HYBRIDEX_MAX_FEE_PER_GAS_WEI=str(cap),
        HYBRIDEX_SETTLEMENT_METRICS_PORT=str(port),
        HYBRIDEX_OTEL_ENDPOINT=collector.url,
    )
    stack.wait(
        "the batch broadcast",
        lambda: stack.query("SELECT status FROM settlement_transactions") == [("broadcast",)],
    )
    # Not mined: the operators' gauges see the three fills (2 + 3 + 1 lots) waiting.
    lots = sum(n for _, _, n in TEN_TRADES[:3])
    h = stack.h
    weth = ("hybridex_settlement_unsettled_exposure", frozenset({("token", h.weth.address)}))
    usdc = ("hybridex_settlement_unsettled_exposure", frozenset({("token", h.usdc.address)}))
    oldest: tuple[str, frozenset[tuple[str, str]]] = (
        "hybridex_settlement_oldest_unsettled_seconds",
        frozenset(),
    )
    stack.wait("a tick's backlog gauges", lambda: scrape(port).get(oldest, 0) > 0.5)
    seen = scrape(port)
    assert seen[weth] == lots * LOT
    # Nothing mined yet, so the operator's balance is still what the tick read; ticks run.
    operator = stack.h.operator.address
    balance = ("hybridex_settlement_operator_balance_wei", frozenset())
    assert seen[balance] == float(stack.h.w3.eth.get_balance(operator))
    assert seen[("hybridex_settlement_operator_balance_alert_wei", frozenset())] == 5e17
    last_tick = ("hybridex_settlement_last_tick_timestamp_seconds", frozenset())
    assert time.time() - 30 < seen[last_tick] <= time.time()
    assert seen[usdc] == lots * LOT * PRICE // PRICE_SCALE
    assert seen[oldest] < WAIT_S + 10
    ((first_hash, first_fee),) = stack.query(
        "SELECT tx_hash, max_fee_per_gas FROM settlement_transactions"
    )
    # The next blocks' base fee is far above what the first transaction offers.
    rpc_call(node.url, "anvil_setNextBlockBaseFeePerGas", [hex(50 * GWEI)])

    def mine_and_check() -> bool:
        rpc_call(node.url, "evm_mine", [])
        return stack.all_settled()

    stack.wait("the replacement included", mine_and_check)
    txs = stack.query(
        "SELECT tx_hash, status, replaces_tx_hash, max_fee_per_gas, nonce FROM "
        "settlement_transactions ORDER BY id"
    )
    assert len(txs) >= 2
    assert txs[0][0] == first_hash
    assert txs[0][1] == "replaced"
    final = txs[-1]
    assert final[1] == "confirmed"
    assert final[2] == txs[-2][0]  # each replacement names the one it replaces
    assert {t[4] for t in txs} == {txs[0][4]}  # same nonce
    assert int(final[3]) * 1000 >= int(first_fee) * 1125
    assert int(final[3]) <= cap
    stack.assert_batches_sequential()
    stack.assert_chain_matches_engine()
    # Tracing on: the worker's spans reached the collector, the batch's naming its transaction.
    stack.wait("the worker's spans", lambda: bool(collector.named("settlement send_batch")))
    sent = [s for s in collector.named("settlement send_batch") if s.attributes.get(
        "hybridex.outcome") == "submitted"]  # fmt: skip
    assert {s.attributes["hybridex.batch_id"] for s in sent} == {1}  # re-sends answer too
    assert sent[0].service == "hybridex-worker"
    assert sent[0].attributes["hybridex.tx_hash"] == "0x" + bytes(first_hash).hex()
    assert sent[0].attributes["hybridex.fill_count"] == 3
    assert collector.named("settlement tick")


def test_fill_of_an_exited_trader_is_skipped_on_chain_and_the_rest_settle(stack: Stack) -> None:
    # trader 2 sells in the second fill; the others never trade with trader 2.
    pairs = [(0, 1, 2), (2, 3, 3), (0, 1, 1), (0, 3, 1), (0, 1, 4)]
    assert _market_with_fills(stack, pairs) == 5
    h = stack.h
    exited = h.traders[2]
    h.send(h.contract.functions.requestExit(), exited)
    h.mine(h.exit_delay + 1)
    port = free_port()
    stack.start_worker(HYBRIDEX_BATCH_MAX_FILLS="10", HYBRIDEX_SETTLEMENT_METRICS_PORT=str(port))
    stack.wait("four settled, one failed", lambda: stack.all_settled(failed=1))
    # the alert metric, scraped from the worker process
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    assert b'hybridex_settlement_fills_failed_total{reason="TraderExited"} 1.0' in metrics
    assert b"hybridex_settlement_fills_settled_total 4.0" in metrics
    # the next tick sees nothing left (the failed fill is no longer exposure)
    oldest: tuple[str, frozenset[tuple[str, str]]] = (
        "hybridex_settlement_oldest_unsettled_seconds",
        frozenset(),
    )
    stack.wait("the backlog gauges at 0", lambda: scrape(port).get(oldest) == 0)
    seen = scrape(port)
    for token in (h.weth, h.usdc):
        key = ("hybridex_settlement_unsettled_exposure", frozenset({("token", token.address)}))
        assert seen[key] == 0
    ((gas_used,),) = stack.query("SELECT gas_used FROM settlement_batches")
    assert seen[("hybridex_settlement_batch_gas_count", frozenset())] == 1
    assert seen[("hybridex_settlement_batch_gas_sum", frozenset())] == gas_used
    ((maker, reason, batch_id),) = stack.query(
        "SELECT f.maker_trader, fs.failure_reason, fs.batch_id FROM fill_settlements fs "
        "JOIN fills f ON f.id = fs.fill_id WHERE fs.status = 'failed'"
    )
    assert maker == exited.address
    assert reason.startswith("TraderExited(order 0x")
    assert reason.endswith(", skipped on chain)")
    assert batch_id == 1
    # The batch went out whole; the contract left the dead fill out (FillSkipped).
    assert stack.query("SELECT batch_id, status, fill_count FROM settlement_batches") == [
        (1, "settled", 5)
    ]
    assert stack.query("SELECT count(*) FROM fill_reverts") == [(1,)]  # owed its RevertFill
    assert h.exchange.last_batch_id() == 1
    for trader in (h.traders[0], h.traders[1]):  # untouched by the failed fill
        for token in (h.weth, h.usdc):
            engine = stack.engine_balances()[(trader.address, token.address)]
            assert h.exchange.balance_of(trader.address, token.address) == engine
