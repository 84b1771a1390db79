"""Orders the engine closed itself reach the chain dead with the next batch (real engine, real
database, `form_batch`, anvil): an IOC remainder cannot be filled a second time."""

from __future__ import annotations

import pytest
from web3.logs import DISCARD

from backend.domain.types import Side, TimeInForce
from backend.eip712.hashing import digest
from backend.engine.client import Intake
from backend.matching.commands import CancelAll
from backend.settlement.batcher import form_batch, load_batch
from tests.integration.settlement.conftest import Stack
from tests.unit.contracts.harness import LOT, PRICE, UNIT, USDC, fill

pytestmark = pytest.mark.integration


def _funded(stack: Stack) -> None:
    commands = stack.listing()
    for t in stack.h.traders[:3]:
        commands += stack.fund(t, weth=UNIT, usdc=10_000 * USDC)
    stack.engine(commands)


def test_ioc_remainder_is_committed_dead_and_cannot_fill_again(stack: Stack) -> None:
    h = stack.h
    a, b, c = h.traders[:3]
    _funded(stack)
    ioc = h.order(b, Side.BUY, 2 * LOT, PRICE, time_in_force=TimeInForce.IOC)
    stack.engine([stack.place(a, Side.SELL, 1), stack.place_signed(ioc)])
    ctx = stack.context()
    assert form_batch(ctx, force=True) == 1
    with stack.factory() as session:
        content = load_batch(session, 1)
    assert [k.order_hash for k in content.kills] == [h.order_hash(ioc)]
    encoded = content.encode()
    assert encoded.value[6] == []  # used by the batch's fill: flagged on the order instead
    h.settle_raw(encoded, 1)
    assert h.exchange.is_nonce_used(b.address, ioc.order.nonce)
    assert h.exchange.filled_amount(h.order_hash(ioc)) == 0
    # A later batch (a stolen operator key) cannot fill the remainder.
    again = [fill(h.order(c, Side.SELL, LOT, PRICE), ioc, LOT)]
    assert h.expect_skip("NotFillable", again) == (0, h.order_hash(ioc))


def test_unmatched_ioc_is_killed_by_a_batch_of_its_own(stack: Stack) -> None:
    h = stack.h
    b = h.traders[1]
    _funded(stack)
    ioc = h.order(b, Side.BUY, LOT, PRICE, time_in_force=TimeInForce.IOC)
    stack.engine([stack.place_signed(ioc)])  # nothing to match: cancelled whole
    ctx = stack.context()
    assert form_batch(ctx, force=True) == 1
    with stack.factory() as session:
        content = load_batch(session, 1)
    assert content.fills == ()
    assert [k.order_hash for k in content.kills] == [h.order_hash(ioc)]
    receipt = h.settle_raw(content.encode(), 1)
    (closed,) = h.contract.events.OrderClosed().process_receipt(receipt, errors=DISCARD)
    assert closed["args"]["orderHash"] == h.order_hash(ioc)
    assert h.exchange.is_nonce_used(b.address, ioc.order.nonce)
    stack.execute("UPDATE settlement_batches SET status = 'settled'")
    assert form_batch(ctx, force=True) is None  # committed once, never again


def test_orders_closed_by_a_signed_cancel_all_are_left_to_it(stack: Stack) -> None:
    """A committed `CancelAll` bars them on chain already: no kill is spent on them."""
    h = stack.h
    b = h.traders[1]
    _funded(stack)
    resting = [h.order(b, Side.BUY, LOT, PRICE - i * 10**6) for i in range(1, 3)]
    signed = h.cancel_all(b, h.next_nonce(b))
    msg = signed.cancel_all
    intake = Intake(
        signature=signed.signature.to_bytes(),
        signed_hash=digest(msg, h.domain),
        base_token=msg.baseToken,
        quote_token=msg.quoteToken,
    )
    command = CancelAll(0, 0, b.address, None, msg.nonceBelow)
    stack.engine([*(stack.place_signed(o) for o in resting), (command, intake)])
    statuses = stack.query("SELECT status FROM orders WHERE trader = :t", t=b.address)
    assert sorted(s for (s,) in statuses) == ["cancelled", "cancelled"]
    ctx = stack.context()
    assert form_batch(ctx, force=True) == 1
    with stack.factory() as session:
        content = load_batch(session, 1)
    assert content.kills == ()
    assert len(content.cancels) == 1
