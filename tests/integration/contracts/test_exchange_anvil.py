"""The Exchange over anvil's JSON-RPC: vectors, a full round trip, batch ids, exit, pause."""

from __future__ import annotations

import json
from typing import Any

import pytest
from web3.logs import DISCARD

from backend.chain.exchange import FillInput, SignedOrder
from backend.domain.types import Side, TimeInForce
from backend.eip712 import Order
from backend.eip712.signing import sign, sign_typed
from tests.unit.contracts.harness import LOT, PRICE, UNIT, USDC, Harness, fill
from tests.unit.contracts.test_hashing_views import hash_view
from tests.unit.eip712.vectors import FIRST_ANVIL_CONTRACT, FIXTURE

pytestmark = pytest.mark.integration

DOC: dict[str, Any] = json.loads(FIXTURE.read_text())


def test_the_exchange_has_the_vector_domain(h: Harness) -> None:
    assert h.exchange.address == FIRST_ANVIL_CONTRACT
    assert h.w3.eth.chain_id == DOC["domain"]["chainId"]
    assert (
        "0x" + bytes(h.contract.functions.domainSeparator().call()).hex() == DOC["domainSeparator"]
    )


@pytest.mark.parametrize(
    "vector", DOC["vectors"], ids=lambda v: f"{v['primaryType']}-{v['digest'][:10]}"
)
def test_contract_reproduces_every_digest(h: Harness, vector: dict[str, Any]) -> None:
    assert "0x" + hash_view(h.contract, vector).hex() == vector["digest"]


def _wallet_order(h: Harness, trader: Any, side: Side, amount: int, nonce: int) -> SignedOrder:
    order = Order(
        trader=trader.address,
        baseToken=h.weth.address,
        quoteToken=h.usdc.address,
        side=side,
        price=PRICE,
        amount=amount,
        timeInForce=TimeInForce.GTC,
        nonce=nonce,
        expiry=0,
    )
    return SignedOrder(order, sign_typed(order, h.domain, trader.key))


def test_round_trip_with_wallet_signatures(h: Harness) -> None:
    """deposit → settle (orders signed by eth_account.sign_typed_data) → withdraw."""
    a, b = h.traders[0], h.traders[1]
    h.deposit(a, h.weth, 2 * UNIT)
    h.deposit(b, h.usdc, 10_000 * USDC)
    maker = _wallet_order(h, a, Side.SELL, UNIT, 1)
    taker = _wallet_order(h, b, Side.BUY, UNIT, 1)
    receipt = h.settle([FillInput(maker, taker, UNIT, 3 * USDC, UNIT // 1000)])
    (ev,) = h.contract.events.BatchSettled().process_receipt(receipt, errors=DISCARD)
    assert ev["args"]["batchId"] == 1
    assert h.balance(a, h.usdc) == 3000 * USDC - 3 * USDC
    assert h.balance(b, h.weth) == UNIT - UNIT // 1000
    w = h.withdrawal(b, h.weth, h.balance(b, h.weth))
    h.send(h.withdraw_fn(w, sign_typed(w, h.domain, b.key)), h.operator)
    assert h.weth.functions.balanceOf(b.address).call() == UNIT - UNIT // 1000
    assert h.balance(b, h.weth) == 0


def test_replayed_and_skipped_batch_ids(h: Harness) -> None:
    a, b = h.traders[0], h.traders[1]
    h.fund(a, h.weth, UNIT)
    h.fund(b, h.usdc, 10_000 * USDC)
    batch = h.batch([fill(h.order(a, Side.SELL, LOT), h.order(b, Side.BUY, LOT), LOT)])
    h.settle_raw(batch)
    assert h.expect_settle_revert("BatchIdMismatch", batch, batch_id=1) == (2, 1)
    assert h.expect_settle_revert("BatchIdMismatch", batch, batch_id=3) == (2, 3)
    # A replay that still gets mined reverts on chain and changes nothing.
    from backend.chain.exchange import settle_calldata

    tx = h.w3.eth.send_transaction(
        {
            "from": h.operator.address,
            "to": h.exchange.address,
            "data": settle_calldata(1, batch),
            "gas": 2_000_000,
        }
    )
    assert h.w3.eth.wait_for_transaction_receipt(tx)["status"] == 0
    assert h.exchange.last_batch_id() == 1
    assert h.balance(a, h.weth) == UNIT - LOT


def test_exit_while_the_operator_does_nothing(h: Harness) -> None:
    a, b = h.traders[0], h.traders[1]
    h.fund(a, h.usdc, 50 * USDC)
    h.fund(b, h.weth, UNIT)
    fns = h.contract.functions
    receipt = h.send(fns.requestExit(), a)
    effective = h.exchange.exit_block(a.address)
    assert effective == receipt["blockNumber"] + h.exit_delay
    h.expect_revert("ExitNotReady", fns.exitWithdraw(h.usdc.address), a)
    h.mine(h.exit_delay)
    taker = h.order(a, Side.BUY, LOT)
    assert h.expect_skip("TraderExited", [fill(h.order(b, Side.SELL, LOT), taker, LOT)]) == (
        0,
        h.order_hash(taker),
    )
    h.send(fns.pause(), h.admin)  # even paused, the exit works
    h.send(fns.exitWithdraw(h.usdc.address), a)
    assert h.usdc.functions.balanceOf(a.address).call() == 50 * USDC
    h.expect_revert("EnforcedPause", fns.depositFor(a.address, h.usdc.address, 1), h.admin)


def test_signed_cancel_then_settlement_refused(h: Harness) -> None:
    a, b = h.traders[0], h.traders[1]
    h.fund(a, h.weth, UNIT)
    h.fund(b, h.usdc, 10_000 * USDC)
    resting = h.order(a, Side.SELL, LOT * 2)
    m, t = h.order(a, Side.SELL, LOT), h.order(b, Side.BUY, LOT)
    h.settle([fill(m, t, LOT)], cancels=[h.cancel(resting)])
    h.expect_skip("NotFillable", [fill(resting, h.order(b, Side.BUY, LOT), LOT)])
    w = h.withdrawal(a, h.weth, LOT)
    sig = sign(w, h.domain, a.key)
    h.send(h.withdraw_fn(w, sig), h.operator)
    h.expect_revert("WithdrawalNonceUsed", h.withdraw_fn(w, sig), h.operator)
