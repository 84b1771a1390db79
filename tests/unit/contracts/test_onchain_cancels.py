"""On-chain cancels wait `cancelDelay`, and a dead fill is skipped, not reverted (issue 16,
hole 1): a trader who front-runs a pending batch with `cancelOrder` / `invalidateNonces` can
neither take back fills already matched nor hold up the others in the batch."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.logs import DISCARD

from backend.chain.exchange import SignedOrder
from backend.domain.types import Side
from tests.unit.contracts.harness import LOT, UNIT, USDC, Harness, fill

ZERO = "0x" + "00" * 20


@pytest.fixture
def funded(h: Harness) -> Harness:
    for t in h.traders[:4]:
        h.fund(t, h.weth, 10 * UNIT)
        h.fund(t, h.usdc, 100_000 * USDC)
    return h


def _as_tuple(signed: SignedOrder) -> tuple[Any, ...]:
    o = signed.order
    return (o.trader, o.baseToken, o.quoteToken, o.side, o.price, o.amount, o.timeInForce,
            o.nonce, o.expiry, o.maxFeeBps)  # fmt: skip


def _cancel_on_chain(h: Harness, signed: SignedOrder) -> int:
    trader = next(a for a in h.traders if a.address == signed.order.trader)
    receipt = h.send(h.contract.functions.cancelOrder(_as_tuple(signed)), trader)
    (ev,) = h.contract.events.OrderCancelRequested().process_receipt(receipt, errors=DISCARD)
    assert ev["args"]["orderHash"] == h.order_hash(signed)
    return int(ev["args"]["effectiveTime"])


def test_cancel_delay_is_set_at_deployment(h: Harness) -> None:
    # Its bounds: test_custody.py::test_constructor_guards.
    assert h.exchange.cancel_delay() == 3_600
    assert h.contract.functions.MIN_CANCEL_DELAY().call() == 60


def test_front_running_cancel_does_not_void_the_pending_batch(funded: Harness) -> None:
    """The trader sees their fill in the feed and cancels on chain before its batch lands: the
    batch still settles every fill, the cancelled order's included."""
    h = funded
    a, b, c = h.traders[0], h.traders[1], h.traders[2]
    resting = h.order(a, Side.SELL, 2 * UNIT)
    other_maker, other_taker = h.order(c, Side.SELL, UNIT), h.order(b, Side.BUY, UNIT)
    pending = h.batch(
        [fill(resting, h.order(b, Side.BUY, UNIT), UNIT), fill(other_maker, other_taker, UNIT)]
    )
    h.expect_revert("NotOrderTrader", h.contract.functions.cancelOrder(_as_tuple(resting)), b)
    effective = _cancel_on_chain(h, resting)  # lands first
    assert effective == h.timestamp() + 3_600
    assert h.contract.functions.cancelEffectiveTime(h.order_hash(resting)).call() == effective
    assert h.settle_skips(pending) == []
    assert h.balance(a, h.weth) == 9 * UNIT
    assert h.balance(c, h.weth) == 9 * UNIT
    assert h.balance(b, h.weth) == 12 * UNIT
    # Asking again would postpone it: refused.
    args = h.expect_revert(
        "CancelAlreadyRequested", h.contract.functions.cancelOrder(_as_tuple(resting)), a
    )
    assert args == (h.order_hash(resting), effective)


def test_cancel_in_effect_skips_its_fills_and_the_rest_of_the_batch_settles(
    funded: Harness,
) -> None:
    h = funded
    a, b, c = h.traders[0], h.traders[1], h.traders[2]
    resting = h.order(a, Side.SELL, 2 * UNIT)
    h.settle([fill(resting, h.order(b, Side.BUY, UNIT), UNIT)])  # partly filled
    _cancel_on_chain(h, resting)
    # Before the delay runs out, fills still settle.
    h.warp(3_600 - 60)
    h.settle([fill(resting, h.order(b, Side.BUY, LOT), LOT)])
    h.warp(60)
    other_maker, other_taker = h.order(c, Side.SELL, UNIT), h.order(b, Side.BUY, UNIT)
    fills = [
        fill(other_maker, h.order(b, Side.BUY, LOT), LOT),
        fill(resting, h.order(b, Side.BUY, LOT), LOT),
        fill(other_maker, other_taker, UNIT - LOT),
    ]
    assert h.expect_skip("Cancelled", fills) == (1, h.order_hash(resting))
    assert h.balance(a, h.weth) == 9 * UNIT - LOT  # nothing more left a
    assert h.balance(c, h.weth) == 9 * UNIT  # c's two fills settled
    assert h.exchange.filled_amount(h.order_hash(resting)) == UNIT + LOT


def test_a_dead_taker_skips_every_fill_it_takes_and_leaves_its_makers_open(
    funded: Harness,
) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    taker = h.order(b, Side.BUY, 2 * UNIT)
    makers = [h.order(a, Side.SELL, UNIT), h.order(a, Side.SELL, UNIT)]
    _cancel_on_chain(h, taker)
    h.warp(3_600)
    skips = h.settle_skips([fill(m, taker, UNIT) for m in makers])
    assert [(i, r) for i, _, r in skips] == [(0, "Cancelled"), (1, "Cancelled")]
    for m in makers:  # untouched: no nonce consumed
        assert not h.exchange.is_nonce_used(a.address, m.order.nonce)
    h.settle([fill(makers[0], h.order(b, Side.BUY, UNIT), UNIT)])


def test_invalidate_nonces_waits_for_the_delay(funded: Harness) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    old = h.order(a, Side.SELL, 2 * UNIT, nonce=10)
    new = h.order(a, Side.SELL, UNIT, nonce=11)
    receipt = h.send(h.contract.functions.invalidateNonces(11), a)
    (ev,) = h.contract.events.NonceInvalidationRequested().process_receipt(receipt, errors=DISCARD)
    effective = int(ev["args"]["effectiveTime"])
    assert (ev["args"]["below"], effective) == (11, h.timestamp() + 3_600)
    assert h.contract.functions.pendingNonceBar(a.address).call() == [11, effective]
    # A lower request while it waits would only postpone it: refused.
    args = h.expect_revert(
        "InvalidationAlreadyRequested", h.contract.functions.invalidateNonces(5), a
    )
    assert args == (5, 11, effective)
    assert h.contract.functions.nonceBar(a.address, ZERO, ZERO).call() == 0
    h.settle([fill(old, h.order(b, Side.BUY, UNIT), UNIT)])  # matched before: settles
    h.warp(3_600)
    assert h.contract.functions.nonceBar(a.address, ZERO, ZERO).call() == 11
    assert h.expect_skip("NonceInvalidated", [fill(old, h.order(b, Side.BUY, UNIT), UNIT)]) == (
        0,
        h.order_hash(old),
    )
    h.settle([fill(new, h.order(b, Side.BUY, UNIT), UNIT)])
    # A later request starts from the bar in force; the bar never drops.
    h.send(h.contract.functions.invalidateNonces(20), a)
    h.warp(3_600)
    assert h.contract.functions.nonceBar(a.address, ZERO, ZERO).call() == 20
    assert h.contract.functions.nonceBar(a.address, h.weth.address, h.usdc.address).call() == 20


def test_every_dead_fill_of_a_batch_is_named_and_the_live_ones_settle(funded: Harness) -> None:
    """One batch, four kinds of dead order, two live fills."""
    h = funded
    a, b, c, d = h.traders[:4]
    cancelled = h.order(a, Side.SELL, UNIT)
    expired = h.order(c, Side.SELL, UNIT, expiry=1)
    filled = h.order(d, Side.SELL, UNIT)
    h.settle([fill(filled, h.order(b, Side.BUY, UNIT), UNIT)])
    _cancel_on_chain(h, cancelled)
    h.warp(3_600)
    live = [h.order(d, Side.SELL, UNIT), h.order(d, Side.SELL, UNIT)]
    fills = [
        fill(live[0], h.order(b, Side.BUY, UNIT), UNIT),
        fill(cancelled, h.order(b, Side.BUY, UNIT), UNIT),
        fill(expired, h.order(b, Side.BUY, UNIT), UNIT),
        fill(filled, h.order(b, Side.BUY, UNIT), UNIT),
        fill(live[1], h.order(b, Side.BUY, UNIT), UNIT),
    ]
    before = h.balance(d, h.usdc)
    skips = h.settle_skips(fills)
    assert skips == [
        (1, h.order_hash(cancelled), "Cancelled"),
        (2, h.order_hash(expired), "Expired"),
        (3, h.order_hash(filled), "NotFillable"),
    ]
    assert h.balance(d, h.weth) == 7 * UNIT
    assert h.balance(d, h.usdc) == before + 2 * 3000 * USDC
    assert h.balance(a, h.weth) == 10 * UNIT
    assert h.balance(c, h.weth) == 10 * UNIT


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.integers(1, 20), st.sampled_from(["live", "cancelled", "pending"])),
        min_size=1,
        max_size=6,
    )
)
def test_exactly_the_fills_of_orders_cancelled_in_effect_are_skipped(
    module_harness: Harness, plan: list[tuple[int, str]]
) -> None:
    """Whatever the mix: fills of orders whose on-chain cancel is in effect are skipped, those
    of orders whose cancel still waits settle with the live ones, and exactly the settled base
    moves from sellers to buyers."""
    h = module_harness
    snapshot = h.snapshot()
    try:
        sellers, buyers = h.traders[0:2], h.traders[2:4]
        for t in h.traders[:4]:
            h.fund(t, h.weth, 10 * UNIT)
            h.fund(t, h.usdc, 100_000 * USDC)
        makers = [
            h.order(sellers[i % 2], Side.SELL, lots * LOT) for i, (lots, _) in enumerate(plan)
        ]
        for m, (_, state) in zip(makers, plan, strict=True):
            if state == "cancelled":
                _cancel_on_chain(h, m)
        h.warp(3_600)
        for m, (_, state) in zip(makers, plan, strict=True):
            if state == "pending":  # requested now: binds only after the delay
                _cancel_on_chain(h, m)
        fills = [
            fill(m, h.order(buyers[i % 2], Side.BUY, lots * LOT), lots * LOT)
            for i, (m, (lots, _)) in enumerate(zip(makers, plan, strict=True))
        ]
        before = sum(h.balance(b, h.weth) for b in buyers)
        skips = h.settle_skips(fills)
        dead = [i for i, (_, state) in enumerate(plan) if state == "cancelled"]
        assert skips == [(i, h.order_hash(makers[i]), "Cancelled") for i in dead]
        moved = sum(lots * LOT for lots, state in plan if state != "cancelled")
        assert sum(h.balance(b, h.weth) for b in buyers) - before == moved
        assert sum(h.balance(s, h.weth) for s in sellers) == 20 * UNIT - moved
    finally:
        h.revert(snapshot)
