"""What an order or a withdrawal signs bounds what the contract lets the operator do with it:
an order's expiry (with a grace for batches in flight) and `maxFeeBps`, a withdrawal's expiry.

Each hole test below settled (or withdrew) on the contract before these checks existed.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.domain.types import Side
from backend.eip712.signing import sign
from tests.unit.contracts.harness import UNIT, USDC, Harness, fill

GRACE = 120  # Exchange.EXPIRY_GRACE


@pytest.fixture
def funded(h: Harness) -> Harness:
    for t in h.traders[:2]:
        h.fund(t, h.weth, 10 * UNIT)
        h.fund(t, h.usdc, 100_000 * USDC)
    return h


def test_grace_constant_matches_the_contract(h: Harness) -> None:
    assert h.contract.functions.EXPIRY_GRACE().call() == GRACE


def test_expired_order_does_not_settle(funded: Harness) -> None:
    """Hole: `_verifyOrders` never read the expiry, so an order expired long ago settled."""
    h = funded
    a, b = h.traders[0], h.traders[1]
    maker = h.order(a, Side.SELL, UNIT, expiry=1)  # 1970
    taker = h.order(b, Side.BUY, UNIT)
    assert h.expect_skip("Expired", [fill(maker, taker, UNIT)]) == (0, h.order_hash(maker))
    assert h.balance(a, h.weth) == 10 * UNIT


def test_expired_taker_does_not_settle_either(funded: Harness) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    expiry = h.timestamp() + 30
    maker = h.order(a, Side.SELL, UNIT)
    taker = h.order(b, Side.BUY, UNIT, expiry=expiry)
    h.warp(30 + GRACE + 5)
    assert h.expect_skip("Expired", [fill(maker, taker, UNIT)]) == (0, h.order_hash(taker))


def test_fill_matched_before_expiry_settles_within_the_grace(funded: Harness) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    expiry = h.timestamp() + 10
    maker = h.order(a, Side.SELL, UNIT, expiry=expiry)
    h.warp(10 + GRACE // 2)  # expired, but a batch formed before expiry may still be in flight
    h.settle([fill(maker, h.order(b, Side.BUY, UNIT), UNIT)])
    assert h.balance(a, h.weth) == 9 * UNIT


def test_order_without_expiry_never_expires(funded: Harness) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    maker = h.order(a, Side.SELL, UNIT, expiry=0)
    h.warp(365 * 86_400)
    h.settle([fill(maker, h.order(b, Side.BUY, UNIT), UNIT)])
    assert h.balance(b, h.weth) == 11 * UNIT


@pytest.mark.parametrize("who", ["maker", "taker"])
def test_fill_above_signed_max_fee_bps_is_refused(funded: Harness, who: str) -> None:
    """Hole: the Order type had no fee field, so the operator chose any fee up to 1 % a side.
    An order signed for 10 bps is now charged 10 bps at most."""
    h = funded
    a, b = h.traders[0], h.traders[1]
    quote = 3000 * USDC
    received = quote if who == "maker" else UNIT  # the maker sells (gets quote), taker buys

    def pair() -> tuple[object, object]:
        bps = {"maker": 10 if who == "maker" else 100, "taker": 10 if who == "taker" else 100}
        return (
            h.order(a, Side.SELL, UNIT, max_fee_bps=bps["maker"]),
            h.order(b, Side.BUY, UNIT, max_fee_bps=bps["taker"]),
        )

    bound = received * 10 // 10_000
    maker, taker = pair()
    fees = (bound, 0) if who == "maker" else (0, bound)
    h.settle([fill(maker, taker, UNIT, *fees)])  # exactly the signed bound: settles
    maker, taker = pair()
    over = (bound + 1, 0) if who == "maker" else (0, bound + 1)
    assert h.expect_settle_revert("FeeTooHigh", [fill(maker, taker, UNIT, *over)]) == (
        0,
        bound + 1,
        bound,
    )


def test_max_fee_bps_above_the_cap_is_held_to_the_cap(funded: Harness) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    cap = UNIT // 100
    maker = h.order(a, Side.SELL, UNIT, max_fee_bps=65_535)
    taker = h.order(b, Side.BUY, UNIT, max_fee_bps=65_535)
    assert h.expect_settle_revert("FeeTooHigh", [fill(maker, taker, UNIT, 0, cap + 1)]) == (
        0,
        cap + 1,
        cap,
    )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(bps=st.integers(0, 120), fee=st.integers(0, UNIT // 50))
def test_fee_settles_exactly_when_within_the_signed_bound(
    funded: Harness, bps: int, fee: int
) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    snapshot = h.snapshot()
    try:
        maker = h.order(a, Side.SELL, UNIT)
        taker = h.order(b, Side.BUY, UNIT, max_fee_bps=bps)
        allowed = fee * 10_000 <= UNIT * min(bps, 100)
        f = fill(maker, taker, UNIT, 0, fee)
        if allowed:
            h.settle([f])
            assert h.balance(b, h.weth) == 11 * UNIT - fee
        else:
            assert h.expect_settle_revert("FeeTooHigh", [f])[1] == fee
    finally:
        h.revert(snapshot)


def test_withdrawal_after_its_expiry_is_refused(h: Harness) -> None:
    """Hole: a withdrawal signature never expired; the operator could submit it at any time."""
    a = h.traders[0]
    h.fund(a, h.usdc, 1000 * USDC)
    expiry = h.timestamp() + 60
    w = h.withdrawal(a, h.usdc, 400 * USDC, expiry=expiry)
    sig = sign(w, h.domain, a.key)
    h.warp(61)
    now = h.timestamp()
    err = h.expect_revert("WithdrawalExpired", h.withdraw_fn(w, sig), h.operator)
    assert err[:3] == (a.address, w.nonce, expiry)
    assert err[3] >= now
    assert h.balance(a, h.usdc) == 1000 * USDC


def test_withdrawal_before_its_expiry_executes(h: Harness) -> None:
    a = h.traders[0]
    h.fund(a, h.usdc, 1000 * USDC)
    w = h.withdrawal(a, h.usdc, 400 * USDC, expiry=h.timestamp() + 60)
    h.send(h.withdraw_fn(w, sign(w, h.domain, a.key)), h.operator)
    assert h.balance(a, h.usdc) == 600 * USDC
