"""settleBatch on eth-tester: happy paths, every settlement guard, batch ids, cancels."""

from __future__ import annotations

import pytest
from web3.logs import DISCARD

from backend.chain.exchange import SignedOrder, fills_hash
from backend.domain.types import Side
from tests.unit.contracts.harness import LOT, PRICE, UNIT, USDC, Harness, fill


@pytest.fixture
def funded(h: Harness) -> Harness:
    for t in h.traders[:4]:
        h.fund(t, h.weth, 10 * UNIT)
        h.fund(t, h.usdc, 100_000 * USDC)
    return h


def _pair(h: Harness, amount: int = UNIT, price: int = PRICE) -> tuple[SignedOrder, SignedOrder]:
    a, b = h.traders[0], h.traders[1]
    return h.order(a, Side.SELL, amount, price), h.order(b, Side.BUY, amount, price)


def test_one_fill_moves_balances_and_pays_fees(funded: Harness) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    maker, taker = _pair(h)
    quote = 3000 * USDC
    maker_fee, taker_fee = quote // 1000, UNIT // 500  # 10 bps of quote, 20 bps of base
    batch = h.batch([fill(maker, taker, UNIT, maker_fee, taker_fee)])
    receipt = h.settle_raw(batch)
    assert h.balance(a, h.weth) == 9 * UNIT
    assert h.balance(a, h.usdc) == 100_000 * USDC + quote - maker_fee
    assert h.balance(b, h.weth) == 11 * UNIT - taker_fee
    assert h.balance(b, h.usdc) == 100_000 * USDC - quote
    assert h.balance(h.fee_recipient, h.usdc) == maker_fee
    assert h.balance(h.fee_recipient, h.weth) == taker_fee
    assert h.exchange.last_batch_id() == 1
    (settled,) = h.contract.events.BatchSettled().process_receipt(receipt, errors=DISCARD)
    assert settled["args"]["batchId"] == 1
    assert settled["args"]["fillCount"] == 1
    assert settled["args"]["orderCount"] == 2
    assert settled["args"]["fillsHash"] == fills_hash(batch)
    # Both orders filled whole: nonce consumed, no partial amount kept.
    assert h.exchange.is_nonce_used(a.address, maker.order.nonce)
    assert h.exchange.filled_amount(h.order_hash(maker)) == 0


def test_taker_sell_at_maker_bid(funded: Harness) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    maker = h.order(a, Side.BUY, UNIT, PRICE)
    taker = h.order(b, Side.SELL, UNIT, PRICE - 1000 * 10**6)  # limit 2000 USDC
    h.settle([fill(maker, taker, UNIT)])
    assert h.balance(a, h.weth) == 11 * UNIT
    assert h.balance(b, h.usdc) == 103_000 * USDC  # executes at the maker's price


def test_partially_filled_then_filled_in_a_later_batch(funded: Harness) -> None:
    h = funded
    a, b, c = h.traders[0], h.traders[1], h.traders[2]
    maker = h.order(a, Side.SELL, 3 * UNIT)
    h.settle([fill(maker, h.order(b, Side.BUY, UNIT), UNIT)])
    assert h.exchange.filled_amount(h.order_hash(maker)) == UNIT
    h.settle([fill(maker, h.order(c, Side.BUY, 2 * UNIT), 2 * UNIT)])
    assert h.exchange.filled_amount(h.order_hash(maker)) == 0
    assert h.balance(a, h.weth) == 7 * UNIT
    skipped = h.expect_skip("NotFillable", [fill(maker, h.order(c, Side.BUY, LOT), LOT)])
    assert skipped == (0, h.order_hash(maker))


def test_maker_filled_by_several_takers_in_one_batch(funded: Harness) -> None:
    h = funded
    a = h.traders[0]
    maker = h.order(a, Side.SELL, 3 * UNIT)
    takers = [h.order(t, Side.BUY, UNIT) for t in h.traders[1:4]]
    h.settle([fill(maker, t, UNIT) for t in takers])
    assert h.balance(a, h.weth) == 7 * UNIT
    assert h.balance(a, h.usdc) == 109_000 * USDC
    assert h.exchange.is_nonce_used(a.address, maker.order.nonce)


def test_same_trader_many_orders_and_netting(funded: Harness) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    fills = []
    for _ in range(5):
        fills.append(fill(h.order(a, Side.SELL, UNIT), h.order(b, Side.BUY, UNIT), UNIT))
        fills.append(fill(h.order(b, Side.SELL, UNIT), h.order(a, Side.BUY, UNIT), UNIT))
    h.settle(fills)
    assert h.balance(a, h.weth) == 10 * UNIT
    assert h.balance(b, h.usdc) == 100_000 * USDC


def test_nonces_across_bitmap_words(funded: Harness) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    # Window moves forward to word 2, then word 1 and word 0 fall back to the mapping.
    for nonce in (5, 300, 200, 6, 1000, 127, 128):
        maker = h.order(a, Side.SELL, LOT, nonce=nonce)
        h.settle([fill(maker, h.order(b, Side.BUY, LOT), LOT)])
        assert h.exchange.is_nonce_used(a.address, nonce)
        again = h.order(a, Side.SELL, 2 * LOT, nonce=nonce)  # another order, same nonce
        h.expect_skip("NotFillable", [fill(again, h.order(b, Side.BUY, LOT), LOT)])
    assert not h.exchange.is_nonce_used(a.address, 7)
    assert not h.exchange.is_nonce_used(a.address, 2**64 - 1)


def test_replayed_batch_id_reverts(funded: Harness) -> None:
    h = funded
    maker, taker = _pair(h)
    batch = h.batch([fill(maker, taker, LOT)])
    h.settle_raw(batch, batch_id=1)
    assert h.expect_settle_revert("BatchIdMismatch", batch, batch_id=1) == (2, 1)


def test_out_of_order_batch_id_reverts(funded: Harness) -> None:
    h = funded
    maker, taker = _pair(h)
    assert h.expect_settle_revert("BatchIdMismatch", [fill(maker, taker, LOT)], batch_id=2) == (
        1,
        2,
    )
    assert h.expect_settle_revert("BatchIdMismatch", [fill(maker, taker, LOT)], batch_id=0) == (
        1,
        0,
    )


def test_only_the_operator_settles(funded: Harness) -> None:
    h = funded
    maker, taker = _pair(h)
    err = h.settle_error([fill(maker, taker, LOT)], sender=h.admin)
    assert err.name == "AccessControlUnauthorizedAccount"


def test_unsorted_tables_revert(funded: Harness) -> None:
    h = funded
    maker, taker = _pair(h)
    batch = h.batch([fill(maker, taker, LOT)])
    traders, tokens, *rest = batch.value
    swapped = type(batch)(value=(traders[::-1], tokens, *rest), orders=batch.orders)  # type: ignore[arg-type]
    assert h.expect_settle_revert("TradersNotSorted", swapped) == (1,)
    dup = type(batch)(value=(traders, [tokens[0], tokens[0]], *rest), orders=batch.orders)  # type: ignore[arg-type]
    assert h.expect_settle_revert("TokensNotSorted", dup) == (1,)


def test_signature_by_someone_else_reverts(funded: Harness) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    forged = h.order(a, Side.SELL, UNIT, signer=b)
    err = h.expect_settle_revert(
        "InvalidSignature", [fill(forged, h.order(b, Side.BUY, UNIT), UNIT)]
    )
    assert err == (a.address, h.order_hash(forged))


def test_high_s_signature_reverts(funded: Harness) -> None:
    from backend.eip712.signing import Signature

    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    h = funded
    maker, taker = _pair(h)
    sig = maker.signature
    malleable = SignedOrder(maker.order, Signature(sig.r, n - sig.s, 55 - sig.v))
    h.expect_settle_revert("InvalidSignature", [fill(malleable, taker, UNIT)])


def test_market_mismatch_reverts(funded: Harness) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    maker = h.order(a, Side.SELL, UNIT, base=h.wbtc)
    assert h.expect_settle_revert(
        "MarketMismatch", [fill(maker, h.order(b, Side.BUY, UNIT), UNIT)]
    ) == (0,)


def test_same_side_reverts(funded: Harness) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    fills = [
        fill(h.order(a, Side.SELL, UNIT), h.order(b, Side.BUY, UNIT), UNIT),
        fill(h.order(a, Side.BUY, UNIT), h.order(b, Side.BUY, UNIT), UNIT),
    ]
    assert h.expect_settle_revert("SidesNotOpposite", fills) == (1,)


@pytest.mark.parametrize("taker_side", [Side.BUY, Side.SELL])
def test_prices_that_do_not_cross_revert(funded: Harness, taker_side: Side) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    step = 10**6  # 1 USDC per WETH in price units
    maker_price = PRICE
    taker_price = PRICE - step if taker_side is Side.BUY else PRICE + step
    maker = h.order(a, taker_side.opposite, UNIT, maker_price)
    taker = h.order(b, taker_side, UNIT, taker_price)
    assert h.expect_settle_revert("PricesDoNotCross", [fill(maker, taker, UNIT)]) == (
        0,
        maker_price,
        taker_price,
    )


def test_inexact_quote_reverts(funded: Harness) -> None:
    h = funded
    maker, taker = _pair(h)
    assert h.expect_settle_revert("InexactQuote", [fill(maker, taker, 1)]) == (0, 1, PRICE)


@pytest.mark.parametrize("who", ["maker", "taker"])
def test_fee_above_cap_reverts(funded: Harness, who: str) -> None:
    h = funded
    maker, taker = _pair(h)
    quote = 3000 * USDC
    # Maker sells: receives quote; taker buys: receives base. Cap is 100 bps.
    cap = quote // 100 if who == "maker" else UNIT // 100
    ok = fill(maker, taker, UNIT, *((cap, 0) if who == "maker" else (0, cap)))
    h.settle([ok])
    maker2, taker2 = _pair(h)
    bad = fill(maker2, taker2, UNIT, *((cap + 1, 0) if who == "maker" else (0, cap + 1)))
    assert h.expect_settle_revert("FeeTooHigh", [bad]) == (0, cap + 1, cap)


def test_overfill_is_skipped_and_the_rest_settles(funded: Harness) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    maker = h.order(a, Side.SELL, UNIT)
    fills = [
        fill(maker, h.order(b, Side.BUY, UNIT), UNIT),
        fill(maker, h.order(b, Side.BUY, LOT), LOT),
    ]
    assert h.expect_skip("Overfilled", fills) == (1, h.order_hash(maker))
    assert h.balance(a, h.weth) == 9 * UNIT
    assert h.exchange.is_nonce_used(a.address, maker.order.nonce)


def test_order_listed_twice_in_a_batch_reverts(funded: Harness) -> None:
    """The operator's own inconsistency (not a trader's doing) still reverts the batch."""
    h = funded
    a, b = h.traders[0], h.traders[1]
    maker = h.order(a, Side.SELL, 2 * UNIT)
    half = UNIT + UNIT // 2
    batch = h.batch(
        [
            fill(maker, h.order(b, Side.BUY, half), half),
            fill(maker, h.order(b, Side.BUY, half), half),
        ]
    )
    traders, tokens, orders, fills, cancels, cancel_alls, kills = batch.value
    maker_index = fills[0][1] & 0xFFFF
    # The second fill names a second copy of the maker: each copy alone has room for it.
    second = (fills[1][0], (fills[1][1] & ~0xFFFF) | len(orders))
    doubled = (traders, tokens, [*orders, orders[maker_index]], [fills[0], second], cancels,
               cancel_alls, kills)  # fmt: skip
    err = h.expect_settle_revert("OrderOverfilled", type(batch)(doubled, batch.orders))
    assert err == (h.order_hash(maker), 2 * UNIT, 2 * half)


def test_two_orders_with_one_nonce_in_a_batch_revert(funded: Harness) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    first = h.order(a, Side.SELL, UNIT, nonce=77)
    second = h.order(a, Side.SELL, 2 * UNIT, nonce=77)
    fills = [
        fill(first, h.order(b, Side.BUY, UNIT), UNIT),
        fill(second, h.order(b, Side.BUY, UNIT), UNIT),
    ]
    assert h.expect_settle_revert("OrderNotFillable", fills) == (h.order_hash(second),)


def test_zero_fill_amount_reverts(funded: Harness) -> None:
    h = funded
    maker, taker = _pair(h)
    h.expect_settle_revert("ZeroAmount", [fill(maker, taker, 0)])


def test_order_without_fill_reverts(funded: Harness) -> None:
    h = funded
    maker, taker = _pair(h)
    batch = h.batch([fill(maker, taker, UNIT)])
    traders, tokens, orders, fills, cancels, cancel_alls, kills = batch.value
    extra = (traders, tokens, [*orders, orders[0]], fills, cancels, cancel_alls, kills)
    assert h.expect_settle_revert("UnusedOrder", type(batch)(extra, batch.orders)) == (2,)


def test_insufficient_balance_reverts(funded: Harness) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    maker = h.order(a, Side.SELL, 11 * UNIT)
    err = h.expect_settle_revert(
        "InsufficientBalance", [fill(maker, h.order(b, Side.BUY, 11 * UNIT), 11 * UNIT)]
    )
    assert err == (a.address, h.weth.address, 10 * UNIT, 11 * UNIT)


def test_signed_cancel_in_a_batch_blocks_later_settlement(funded: Harness) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    resting = h.order(a, Side.SELL, 2 * UNIT)
    other_maker, other_taker = _pair(h)
    # Same batch: a fill of `resting`, then its cancel (cancels apply after fills).
    receipt = h.settle(
        [fill(resting, h.order(b, Side.BUY, UNIT), UNIT), fill(other_maker, other_taker, UNIT)],
        cancels=[h.cancel(resting)],
    )
    (ev,) = h.contract.events.OrderCancelled().process_receipt(receipt, errors=DISCARD)
    assert ev["args"]["orderHash"] == h.order_hash(resting)
    h.expect_skip("NotFillable", [fill(resting, h.order(b, Side.BUY, UNIT), UNIT)])


def test_signed_cancel_of_an_unseen_order(funded: Harness) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    resting = h.order(a, Side.SELL, UNIT)
    m, t = _pair(h)
    h.settle([fill(m, t, LOT)], cancels=[h.cancel(resting)])
    assert h.exchange.is_nonce_used(a.address, resting.order.nonce)
    h.expect_skip("NotFillable", [fill(resting, h.order(b, Side.BUY, UNIT), UNIT)])


def test_cancel_signed_by_someone_else_reverts(funded: Harness) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    resting = h.order(a, Side.SELL, UNIT)
    m, t = _pair(h)
    err = h.expect_settle_revert(
        "InvalidSignature", [fill(m, t, LOT)], cancels=[h.cancel(resting, signer=b)]
    )
    assert err[0] == a.address


def test_signed_cancel_all_per_market_and_global(funded: Harness) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    h.nonces[a.address] = 100  # later orders of `a` stay above the bars
    weth_order = h.order(a, Side.SELL, UNIT, nonce=20)
    wbtc_order = h.order(a, Side.SELL, UNIT, nonce=21, base=h.wbtc)
    h.fund(a, h.wbtc, 10 * UNIT)
    m, t = _pair(h)
    receipt = h.settle([fill(m, t, LOT)], cancel_alls=[h.cancel_all(a, 30, h.weth, h.usdc)])
    (ev,) = h.contract.events.NoncesInvalidated().process_receipt(receipt, errors=DISCARD)
    assert ev["args"]["baseToken"] == h.weth.address
    h.expect_skip("NonceInvalidated", [fill(weth_order, h.order(b, Side.BUY, UNIT), UNIT)])
    # The other market is untouched by a per-market bar...
    h.settle([fill(wbtc_order, h.order(b, Side.BUY, UNIT, base=h.wbtc), UNIT)])
    # ...but a global CancelAll (zero tokens) covers it; replaying it is harmless.
    wbtc_next = h.order(a, Side.SELL, UNIT, nonce=40, base=h.wbtc)
    global_cancel = h.cancel_all(a, 50)
    m, t = _pair(h)
    h.settle([fill(m, t, LOT)], cancel_alls=[global_cancel, global_cancel])
    h.expect_skip(
        "NonceInvalidated", [fill(wbtc_next, h.order(b, Side.BUY, UNIT, base=h.wbtc), UNIT)]
    )


def test_cancel_all_signed_by_someone_else_reverts(funded: Harness) -> None:
    h = funded
    a, b = h.traders[0], h.traders[1]
    forged = h.cancel_all(a, 100)
    from backend.chain.exchange import SignedCancelAll
    from backend.eip712.signing import sign

    forged = SignedCancelAll(forged.cancel_all, sign(forged.cancel_all, h.domain, b.key))
    m, t = _pair(h)
    h.expect_settle_revert("InvalidSignature", [fill(m, t, LOT)], cancel_alls=[forged])
