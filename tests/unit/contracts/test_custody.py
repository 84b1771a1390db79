"""Deposits, withdrawals, exits, pause and admin on eth-tester."""

from __future__ import annotations

import pytest
from web3.logs import DISCARD

from backend.domain.types import Side
from backend.eip712.signing import Signature, sign, sign_typed
from tests.unit.contracts.harness import LOT, UNIT, USDC, Harness, fill

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ZERO = "0x" + "00" * 20


def test_deposit_credits_and_emits(h: Harness) -> None:
    a = h.traders[0]
    receipt = h.deposit(a, h.usdc, 500 * USDC)
    assert h.balance(a, h.usdc) == 500 * USDC
    assert h.usdc.functions.balanceOf(h.exchange.address).call() == 500 * USDC
    (ev,) = h.contract.events.Deposited().process_receipt(receipt, errors=DISCARD)
    assert dict(ev["args"]) == {
        "trader": a.address,
        "token": h.usdc.address,
        "amount": 500 * USDC,
        "payer": a.address,
    }


def test_deposit_for_credits_the_beneficiary(h: Harness) -> None:
    a = h.traders[0]
    h.fund(a, h.weth, UNIT)
    assert h.balance(a, h.weth) == UNIT
    assert h.balance(h.admin, h.weth) == 0


def test_deposit_guards(h: Harness) -> None:
    a = h.traders[0]
    fns = h.contract.functions
    h.expect_revert("ZeroAmount", fns.deposit(h.usdc.address, 0), a)
    h.expect_revert("ZeroAddress", fns.deposit(ZERO, 1), a)
    h.expect_revert("ZeroAddress", fns.depositFor(ZERO, h.usdc.address, 1), h.admin)


def test_fee_on_transfer_token_is_refused(h: Harness) -> None:
    a = h.traders[0]
    evil = h.deploy("EvilToken")
    h.send(evil.functions.mint(a.address, 1000), a)
    h.send(evil.functions.approve(h.exchange.address, 1000), a)
    h.send(evil.functions.setFeeBps(100), a)
    args = h.expect_revert(
        "TransferAmountMismatch", h.contract.functions.deposit(evil.address, 1000), a
    )
    assert args == (evil.address, 1000, 990)
    h.send(evil.functions.setFeeBps(0), a)
    h.send(h.contract.functions.deposit(evil.address, 1000), a)  # a plain transfer is fine
    assert h.balance(a, evil) == 1000


def test_token_returning_false_is_refused(h: Harness) -> None:
    a = h.traders[0]
    evil = h.deploy("EvilToken")
    h.send(evil.functions.mint(a.address, 1000), a)
    h.send(evil.functions.approve(h.exchange.address, 1000), a)
    h.send(evil.functions.setReturnFalse(True), a)
    args = h.expect_revert(
        "SafeERC20FailedOperation", h.contract.functions.deposit(evil.address, 1000), a
    )
    assert args == (evil.address,)


def test_reentrant_deposit_is_refused(h: Harness) -> None:
    a = h.traders[0]
    evil = h.deploy("EvilToken")
    h.send(evil.functions.mint(a.address, 1000), a)
    h.send(evil.functions.approve(h.exchange.address, 1000), a)
    reenter = h.contract.functions.deposit(evil.address, 1)._encode_transaction_data()
    h.send(evil.functions.setReenter(h.exchange.address, reenter), a)
    h.expect_revert(
        "ReentrancyGuardReentrantCall", h.contract.functions.deposit(evil.address, 1000), a
    )


def test_withdraw_with_a_wallet_signature(h: Harness) -> None:
    """A signature from eth_account's typed-data encoder (as a wallet) verifies on chain."""
    a = h.traders[0]
    h.fund(a, h.usdc, 1000 * USDC)
    w = h.withdrawal(a, h.usdc, 400 * USDC)
    receipt = h.send(h.withdraw_fn(w, sign_typed(w, h.domain, a.key)), h.operator)
    assert h.balance(a, h.usdc) == 600 * USDC
    assert h.usdc.functions.balanceOf(a.address).call() == 400 * USDC
    (ev,) = h.contract.events.Withdrawn().process_receipt(receipt, errors=DISCARD)
    assert dict(ev["args"]) == {
        "trader": a.address,
        "token": h.usdc.address,
        "amount": 400 * USDC,
        "nonce": 0,
    }
    assert h.exchange.is_withdrawal_nonce_used(a.address, 0)


def test_withdrawal_nonce_is_usable_once(h: Harness) -> None:
    a = h.traders[0]
    h.fund(a, h.usdc, 1000 * USDC)
    w = h.withdrawal(a, h.usdc, 100 * USDC, nonce=300)
    sig = sign(w, h.domain, a.key)
    h.send(h.withdraw_fn(w, sig), h.operator)
    assert h.expect_revert("WithdrawalNonceUsed", h.withdraw_fn(w, sig), h.operator) == (
        a.address,
        300,
    )


def test_withdraw_guards(h: Harness) -> None:
    a, b = h.traders[0], h.traders[1]
    h.fund(a, h.usdc, 1000 * USDC)
    w = h.withdrawal(a, h.usdc, 2000 * USDC)
    assert h.expect_revert(
        "InsufficientBalance", h.withdraw_fn(w, sign(w, h.domain, a.key)), h.operator
    ) == (
        a.address,
        h.usdc.address,
        1000 * USDC,
        2000 * USDC,
    )
    zero = h.withdrawal(a, h.usdc, 0)
    h.expect_revert("ZeroAmount", h.withdraw_fn(zero, sign(zero, h.domain, a.key)), h.operator)
    w = h.withdrawal(a, h.usdc, 10 * USDC)
    h.expect_revert("InvalidSignature", h.withdraw_fn(w, sign(w, h.domain, b.key)), h.operator)
    good = sign(w, h.domain, a.key)
    high_s = Signature(good.r, SECP256K1_N - good.s, 55 - good.v)
    h.expect_revert("InvalidSignature", h.withdraw_fn(w, high_s), h.operator)
    h.expect_revert("InvalidSignature", h.withdraw_fn(w, good.to_bytes()[:64]), h.operator)
    args = h.expect_revert("AccessControlUnauthorizedAccount", h.withdraw_fn(w, good), a)
    assert args[0] == a.address


def test_exit_and_exit_withdraw_while_the_operator_does_nothing(h: Harness) -> None:
    a, b = h.traders[0], h.traders[1]
    h.fund(a, h.weth, 5 * UNIT)
    h.fund(a, h.usdc, 7 * USDC)
    h.fund(b, h.usdc, 100_000 * USDC)
    fns = h.contract.functions
    h.expect_revert("ExitNotReady", fns.exitWithdraw(h.weth.address), a)
    receipt = h.send(fns.requestExit(), a)
    (ev,) = h.contract.events.ExitRequested().process_receipt(receipt, errors=DISCARD)
    effective = ev["args"]["effectiveBlock"]
    assert effective == receipt["blockNumber"] + h.exit_delay == h.exchange.exit_block(a.address)
    assert h.expect_revert("ExitAlreadyRequested", fns.requestExit(), a) == (a.address, effective)
    assert h.expect_revert("ExitNotReady", fns.exitWithdraw(h.weth.address), a)[1] == effective
    # Before the effective block the operator may still settle the trader's fills.
    h.settle([fill(h.order(a, Side.SELL, UNIT), h.order(b, Side.BUY, UNIT), UNIT)])
    h.mine(h.exit_delay)
    maker = h.order(a, Side.SELL, UNIT)
    assert h.expect_skip("TraderExited", [fill(maker, h.order(b, Side.BUY, UNIT), UNIT)]) == (
        0,
        h.order_hash(maker),
    )
    # Nothing from the operator is needed: the trader takes everything out alone.
    receipt = h.send(fns.exitWithdraw(h.weth.address), a)
    (ev,) = h.contract.events.ExitWithdrawn().process_receipt(receipt, errors=DISCARD)
    assert ev["args"]["amount"] == 4 * UNIT
    assert h.weth.functions.balanceOf(a.address).call() == 4 * UNIT
    assert h.balance(a, h.weth) == 0
    h.expect_revert("ZeroAmount", fns.exitWithdraw(h.weth.address), a)


def test_pause_blocks_deposit_settle_withdraw_but_never_exits_or_cancels(h: Harness) -> None:
    a, b = h.traders[0], h.traders[1]
    h.fund(a, h.weth, 5 * UNIT)
    h.fund(b, h.usdc, 100_000 * USDC)
    fns = h.contract.functions
    h.expect_revert("AccessControlUnauthorizedAccount", fns.pause(), h.operator)
    h.expect_revert("ExpectedPause", fns.unpause(), h.admin)
    h.send(fns.pause(), h.admin)
    assert h.exchange.paused()
    h.expect_revert("EnforcedPause", fns.deposit(h.usdc.address, 1), a)
    h.expect_revert("EnforcedPause", fns.depositFor(a.address, h.usdc.address, 1), h.admin)
    h.expect_settle_revert(
        "EnforcedPause", [fill(h.order(a, Side.SELL, LOT), h.order(b, Side.BUY, LOT), LOT)]
    )
    w = h.withdrawal(a, h.weth, UNIT)
    h.expect_revert("EnforcedPause", h.withdraw_fn(w, sign(w, h.domain, a.key)), h.operator)
    # Cancels and the escape hatch keep working while paused.
    h.send(fns.invalidateNonces(5), a)
    h.send(fns.requestExit(), a)
    h.mine(h.exit_delay)
    h.send(fns.exitWithdraw(h.weth.address), a)
    assert h.weth.functions.balanceOf(a.address).call() == 5 * UNIT
    h.send(fns.unpause(), h.admin)
    assert not h.exchange.paused()


def test_admin_settings(h: Harness) -> None:
    fns = h.contract.functions
    receipt = h.send(fns.setExitDelay(50), h.admin)
    assert h.exchange.exit_delay() == 50
    assert (
        h.contract.events.ExitDelaySet().process_receipt(receipt, errors=DISCARD)[0]["args"][
            "exitDelay"
        ]
        == 50
    )
    assert h.expect_revert("ExitDelayOutOfBounds", fns.setExitDelay(9), h.admin) == (9, 10, 201_600)
    h.expect_revert("ExitDelayOutOfBounds", fns.setExitDelay(201_601), h.admin)
    h.expect_revert("AccessControlUnauthorizedAccount", fns.setExitDelay(50), h.operator)
    h.expect_revert("ZeroAddress", fns.setFeeRecipient(ZERO), h.admin)
    h.send(fns.setFeeRecipient(h.traders[5].address), h.admin)
    assert h.exchange.fee_recipient() == h.traders[5].address
    role = fns.OPERATOR_ROLE().call()
    h.expect_revert(
        "AccessControlBadConfirmation", fns.renounceRole(role, h.admin.address), h.operator
    )


def test_constructor_guards(h: Harness) -> None:
    from backend.chain.artifacts import load

    art = load("Exchange")
    factory = h.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    admin = h.admin.address
    for args, name in (
        ((ZERO, admin, admin, 10, 3_600), "ZeroAddress"),
        ((admin, admin, admin, 1, 3_600), "ExitDelayOutOfBounds"),
        ((admin, admin, admin, 10, 59), "CancelDelayOutOfBounds"),
        ((admin, admin, admin, 10, 604_801), "CancelDelayOutOfBounds"),
    ):
        tx = factory.constructor(*args).build_transaction(
            {"from": admin, "gas": 6_000_000, "nonce": 0}
        )
        with pytest.raises(Exception, match="execution reverted") as info:
            h.w3.eth.call({"from": admin, "data": tx["data"], "gas": 6_000_000})
        from tests.unit.contracts.harness import decode_error, revert_data

        raw = revert_data(info.value)
        assert raw is not None
        assert decode_error(raw)[0] == name


def test_engine_fee_cap_mirrors_the_contract(h: Harness) -> None:
    # A market the engine lists with fees above the on-chain cap would match unsettleable fills.
    from backend.matching.market import MAX_FEE_BPS

    assert h.contract.functions.MAX_FEE_BPS().call() == MAX_FEE_BPS
