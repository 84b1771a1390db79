from __future__ import annotations

import pytest
from web3 import Web3

from backend.chain.anvil import ANVIL_CHAIN_ID, Anvil, rpc_call
from backend.chain.deploy import Sender
from backend.config import DEV_PRIVATE_KEYS

pytestmark = pytest.mark.integration


def test_anvil_fixture_serves_cancun_chain_and_stops(anvil: Anvil) -> None:
    assert int(str(rpc_call(anvil.url, "eth_chainId")), 16) == ANVIL_CHAIN_ID
    block = rpc_call(anvil.url, "eth_getBlockByNumber", ["latest", False])
    assert isinstance(block, dict)
    assert "blobGasUsed" in block  # cancun header fields
    assert "requestsHash" not in block  # not prague


def test_anvil_process_is_gone_after_stop() -> None:
    node = Anvil().start()
    proc = node.process
    assert proc is not None
    node.stop()
    assert proc.poll() is not None
    with pytest.raises(OSError, match="refused"):
        rpc_call(node.url, "eth_chainId", timeout=0.5)


def test_deploy_and_mint_demo_token_over_json_rpc(anvil: Anvil) -> None:
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    sender = Sender.from_key(w3, DEV_PRIVATE_KEYS[0])
    token = sender.deploy("DemoToken", "USD Coin", "USDC", 6)
    sender.transact(token.functions.mint(sender.address, 5 * 10**6))
    assert token.functions.decimals().call() == 6
    assert token.functions.balanceOf(sender.address).call() == 5 * 10**6
