"""Exchange tests over real JSON-RPC: a fresh anvil per module, the Exchange deployed first."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account import Account as EthAccount
from web3 import Web3

from backend.chain.anvil import Anvil
from backend.config import DEV_PRIVATE_KEYS
from tests.unit.contracts.harness import Account, Harness


def anvil_accounts() -> list[Account]:
    return [Account(EthAccount.from_key(k).address, k) for k in DEV_PRIVATE_KEYS]


@pytest.fixture(scope="module")
def anvil_harness() -> Iterator[Harness]:
    with Anvil() as node:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
        yield Harness(w3, anvil_accounts())


@pytest.fixture
def h(anvil_harness: Harness) -> Iterator[Harness]:
    snapshot = anvil_harness.snapshot()
    try:
        yield anvil_harness
    finally:
        anvil_harness.revert(snapshot)
