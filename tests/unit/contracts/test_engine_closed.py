"""Orders the engine closed itself are committed unfillable by the next batch.

Hole: an IOC or FOK remainder, an order cancelled by self-trade prevention, an expired or a
frozen trader's order stayed fillable on chain, because only trader-signed cancels were
committed; a later batch (a stolen operator key) could fill an IOC order a second time.
"""

from __future__ import annotations

import pytest
from web3.logs import DISCARD

from backend.chain.exchange import Kill
from backend.domain.types import Side, TimeInForce
from tests.unit.contracts.harness import LOT, UNIT, USDC, Harness, fill


@pytest.fixture
def funded(h: Harness) -> Harness:
    for t in h.traders[:3]:
        h.fund(t, h.weth, 10 * UNIT)
        h.fund(t, h.usdc, 100_000 * USDC)
    return h


def test_ioc_order_cannot_be_filled_twice(funded: Harness) -> None:
    h = funded
    a, b, c = h.traders[0], h.traders[1], h.traders[2]
    ioc = h.order(b, Side.BUY, 2 * UNIT, time_in_force=TimeInForce.IOC)
    # The engine filled 1 of 2 and cancelled the remainder: the batch says it is closed.
    h.settle_raw(h.batch([fill(h.order(a, Side.SELL, UNIT), ioc, UNIT)], closed={ioc.order}))
    assert h.exchange.is_nonce_used(b.address, ioc.order.nonce)
    assert h.exchange.filled_amount(h.order_hash(ioc)) == 0
    h.mine(100)
    again = [fill(h.order(c, Side.SELL, UNIT), ioc, UNIT)]
    assert h.expect_skip("NotFillable", again) == (0, h.order_hash(ioc))
    assert h.balance(b, h.weth) == 11 * UNIT


def test_closed_flag_on_an_order_filled_whole_changes_nothing(funded: Harness) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    fok = h.order(b, Side.BUY, UNIT, time_in_force=TimeInForce.FOK)
    h.settle_raw(h.batch([fill(h.order(a, Side.SELL, UNIT), fok, UNIT)], closed={fok.order}))
    assert h.balance(b, h.weth) == 11 * UNIT


def test_resting_order_closed_by_the_engine_is_killed(funded: Harness) -> None:
    """Expired, cancelled by self-trade prevention or by a freeze, never filled: no fill in the
    batch uses it, so it comes as a `Kill`."""
    h = funded
    a, b = h.traders[0], h.traders[1]
    maker, taker = h.order(a, Side.SELL, UNIT), h.order(b, Side.BUY, LOT)
    other_maker = h.order(b, Side.SELL, LOT)
    kill = Kill(h.order_hash(maker), a.address, maker.order.nonce)
    receipt = h.settle_raw(
        h.batch([fill(other_maker, h.order(a, Side.BUY, LOT), LOT)], kills=[kill])
    )
    (closed,) = h.contract.events.OrderClosed().process_receipt(receipt, errors=DISCARD)
    assert dict(closed["args"]) == {"trader": a.address, "orderHash": h.order_hash(maker)}
    assert h.expect_skip("NotFillable", [fill(maker, taker, LOT)]) == (0, h.order_hash(maker))


def test_partly_filled_order_closed_later_is_killed(funded: Harness) -> None:
    h = funded
    a, b, c = h.traders[0], h.traders[1], h.traders[2]
    maker = h.order(a, Side.SELL, 3 * UNIT)
    h.settle([fill(maker, h.order(b, Side.BUY, UNIT), UNIT)])
    assert h.exchange.filled_amount(h.order_hash(maker)) == UNIT
    kill = Kill(h.order_hash(maker), a.address, maker.order.nonce)
    h.settle_raw(
        h.batch([fill(h.order(c, Side.SELL, LOT), h.order(b, Side.BUY, LOT), LOT)], kills=[kill])
    )
    assert h.exchange.filled_amount(h.order_hash(maker)) == 0
    again = [fill(maker, h.order(c, Side.BUY, UNIT), UNIT)]
    assert h.expect_skip("NotFillable", again) == (0, h.order_hash(maker))
    assert h.balance(a, h.weth) == 9 * UNIT


def test_kill_is_applied_after_the_fills_of_its_batch(funded: Harness) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    maker = h.order(a, Side.SELL, 2 * UNIT)
    kill = Kill(h.order_hash(maker), a.address, maker.order.nonce)
    # Filled in part, then closed (self-trade prevention): both in one batch.
    h.settle_raw(h.batch([fill(maker, h.order(b, Side.BUY, UNIT), UNIT)], kills=[kill]))
    assert h.balance(a, h.weth) == 9 * UNIT
    assert h.exchange.filled_amount(h.order_hash(maker)) == 0
    assert h.exchange.is_nonce_used(a.address, maker.order.nonce)
