"""A fill the contract skips (`FillSkipped`) ends `failed` and owed its revert, while the rest
of its batch settles; the indexer nets the batch without it, whether the monitor or the indexer
sees the mined batch first. Anvil, PostgreSQL, the real engine service, in-process steps."""

from __future__ import annotations

import pytest

from backend.domain.types import Side
from backend.settlement.batcher import form_batch
from backend.settlement.monitor import follow_up
from backend.settlement.sender import send_batch
from tests.integration.settlement.conftest import PRICE, Stack
from tests.integration.settlement.test_withdrawals import live
from tests.unit.contracts.harness import LOT, UNIT, USDC

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("first", ["monitor", "indexer"])
def test_a_fill_cancelled_on_chain_past_its_delay_is_skipped_and_undone(
    stack: Stack, first: str
) -> None:
    h = stack.h
    seller, quitter, buyer = h.traders[0], h.traders[1], h.traders[2]
    with live(stack) as s:
        h.fund(seller, h.weth, UNIT)
        h.fund(quitter, h.weth, UNIT)
        h.fund(buyer, h.usdc, 100_000 * USDC)
        s.sync()
        portal = s.http.portal
        assert portal is not None
        dead = h.order(quitter, Side.SELL, LOT, PRICE)
        commands = [
            *stack.trades([(seller, buyer, 1)]),
            stack.place_signed(dead),
            stack.place(buyer, Side.BUY, 1),
            *stack.trades([(seller, buyer, 2)]),
        ]
        for cmd, intake in commands:
            portal.call(s.service.submit, cmd, intake)
        s.flush()
        # The quitter cancels on chain and settlement is slower than the delay.
        o = dead.order
        h.send(h.contract.functions.cancelOrder(
            (o.trader, o.baseToken, o.quoteToken, o.side, o.price, o.amount, o.timeInForce,
             o.nonce, o.expiry, o.maxFeeBps)
        ), quitter)  # fmt: skip
        h.warp(h.exchange.cancel_delay())
        ctx = stack.context(confirmations=1, batch_max_fills=3)  # formed at once
        assert form_batch(ctx) == 1
        assert send_batch(ctx, 1) == "submitted"
        if first == "indexer":
            s.sync()
            follow_up(ctx)
        else:
            follow_up(ctx)
            s.sync()
        rows = stack.query(
            "SELECT f.maker_trader, fs.status, fs.skipped_on_chain, fs.failure_reason "
            "FROM fill_settlements fs JOIN fills f ON f.id = fs.fill_id ORDER BY f.seq"
        )
        assert [(m, st, bool(sk)) for m, st, sk, _ in rows] == [
            (seller.address, "settled", False),
            (quitter.address, "failed", True),
            (seller.address, "settled", False),
        ]
        assert str(rows[1][3]).startswith("Cancelled(order 0x")
        assert stack.query("SELECT batch_id, status, fill_count FROM settlement_batches") == [
            (1, "settled", 3)
        ]
        assert stack.query("SELECT count(*) FROM fill_reverts") == [(1,)]
        # The indexer's on-chain ledger follows the chain: the skipped fill moved nothing.
        assert h.exchange.balance_of(quitter.address, h.weth.address) == UNIT
        for trader in (seller, quitter, buyer):
            for token in (h.weth, h.usdc):
                found = stack.query(
                    "SELECT amount FROM chain_balances WHERE trader = :t AND token = :k",
                    t=trader.address,
                    k=token.address,
                )
                on_chain = h.exchange.balance_of(trader.address, token.address)
                assert sum(int(a) for (a,) in found) == on_chain, (trader.address, token.address)
