"""The admin is a timelock driven by a multisig, not the operator's hot key (`hybridex deploy`).

Hole: the deploy made the operator key the admin, and every admin action took effect at once,
so a stolen hot key could grant itself roles, point the fees at itself and pause, unseen.
"""

from __future__ import annotations

from typing import Any

import pytest
from web3 import Web3

from backend.chain.artifacts import load
from backend.chain.deploy import Sender, create_address, deploy_exchange_behind_timelock
from backend.chain.exchange import exchange_contract
from tests.unit.contracts.harness import Harness, RevertError

DELAY = 8 * 86_400
ZERO_SALT = b"\x00" * 32
NO_PREDECESSOR = b"\x00" * 32


class Admin:
    """An Exchange deployed as `hybridex deploy` does, and its timelock."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.multisig = h.traders[5]
        sender = Sender.from_key(h.w3, h.operator.key, gas=8_000_000)
        deployed = deploy_exchange_behind_timelock(
            sender,
            admin=self.multisig.address,
            fee_recipient=h.fee_recipient.address,
            exit_delay=50_400,
            admin_delay_s=DELAY,
        )
        self.exchange = exchange_contract(h.w3, deployed.exchange)
        self.timelock = h.w3.eth.contract(address=deployed.timelock, abi=load("AdminTimelock").abi)

    def calldata(self, fn: Any) -> bytes:
        return bytes.fromhex(fn._encode_transaction_data()[2:])

    def schedule(self, data: bytes) -> None:
        fn = self.timelock.functions.schedule(
            self.exchange.address, 0, data, NO_PREDECESSOR, ZERO_SALT, DELAY
        )
        self.h.send(fn, self.multisig)

    def execute_fn(self, data: bytes) -> Any:
        return self.timelock.functions.execute(
            self.exchange.address, 0, data, NO_PREDECESSOR, ZERO_SALT
        )


@pytest.fixture
def admin(h: Harness) -> Admin:
    return Admin(h)


def _actions(a: Admin) -> dict[str, Any]:
    ex = a.exchange.functions
    operator_role = ex.OPERATOR_ROLE().call()
    return {
        "setFeeRecipient": ex.setFeeRecipient(a.h.traders[6].address),
        "pause": ex.pause(),
        "grantRole": ex.grantRole(operator_role, a.h.traders[6].address),
        "setExitDelay": ex.setExitDelay(20),
    }


def test_the_timelock_is_the_only_admin(admin: Admin) -> None:
    ex = admin.exchange.functions
    admin_role = ex.DEFAULT_ADMIN_ROLE().call()
    assert ex.hasRole(admin_role, admin.timelock.address).call()
    assert not ex.hasRole(admin_role, admin.h.operator.address).call()
    assert not ex.hasRole(admin_role, admin.multisig.address).call()
    assert ex.hasRole(ex.OPERATOR_ROLE().call(), admin.h.operator.address).call()
    assert admin.timelock.functions.getMinDelay().call() == DELAY


@pytest.mark.parametrize("action", ["setFeeRecipient", "pause", "grantRole", "setExitDelay"])
def test_no_admin_action_runs_directly(admin: Admin, action: str) -> None:
    """Neither the operator's key nor the multisig can act without the timelock."""
    fn = _actions(admin)[action]
    for who in (admin.h.operator, admin.multisig):
        assert admin.h.error_of(fn, who).name == "AccessControlUnauthorizedAccount"


@pytest.mark.parametrize("action", ["setFeeRecipient", "pause", "grantRole", "setExitDelay"])
def test_admin_action_before_its_timelock_runs_out_is_refused(admin: Admin, action: str) -> None:
    h = admin.h
    data = admin.calldata(_actions(admin)[action])
    admin.schedule(data)
    h.warp(DELAY - 3_600)
    err = h.error_of(admin.execute_fn(data), admin.multisig)
    assert err.name == "TimelockUnexpectedOperationState"
    h.warp(3_601)
    h.send(admin.execute_fn(data), admin.multisig)
    ex = admin.exchange.functions
    if action == "setFeeRecipient":
        assert ex.feeRecipient().call() == h.traders[6].address
    elif action == "pause":
        assert ex.paused().call()
    elif action == "grantRole":
        assert ex.hasRole(ex.OPERATOR_ROLE().call(), h.traders[6].address).call()
    else:
        assert ex.exitDelay().call() == 20


def test_only_the_multisig_schedules(admin: Admin) -> None:
    data = admin.calldata(_actions(admin)["setFeeRecipient"])
    fn = admin.timelock.functions.schedule(
        admin.exchange.address, 0, data, NO_PREDECESSOR, ZERO_SALT, DELAY
    )
    with pytest.raises(RevertError) as info:
        admin.h.check(fn, admin.h.operator)
    assert info.value.name == "AccessControlUnauthorizedAccount"


def test_create_address_predicts_deployments(h: Harness) -> None:
    sender = Sender.from_key(h.w3, h.traders[4].key, gas=3_000_000)
    nonce = h.w3.eth.get_transaction_count(sender.address)
    token = sender.deploy("DemoToken", "T", "T", 18)
    assert token.address == create_address(sender.address, nonce)
    assert Web3.is_checksum_address(token.address)
