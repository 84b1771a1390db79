"""One Exchange deployment on eth-tester per module; every test runs inside a snapshot."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.contracts.harness import Harness, eth_tester_accounts


@pytest.fixture(scope="module")
def module_harness() -> Harness:
    from eth_tester import EthereumTester, PyEVMBackend
    from web3 import Web3
    from web3.providers.eth_tester import EthereumTesterProvider

    w3 = Web3(EthereumTesterProvider(EthereumTester(PyEVMBackend())))
    return Harness(w3, eth_tester_accounts())


@pytest.fixture
def h(module_harness: Harness) -> Iterator[Harness]:
    snapshot = module_harness.snapshot()
    try:
        yield module_harness
    finally:
        module_harness.revert(snapshot)
