from __future__ import annotations

from web3 import Web3

from backend.chain.deploy import Sender
from backend.config import DEV_PRIVATE_KEYS


def test_eth_tester_chain_runs_the_same_artifacts(eth_tester_w3: Web3) -> None:
    sender = Sender.from_key(eth_tester_w3, DEV_PRIVATE_KEYS[0], gas=3_000_000)
    funder = eth_tester_w3.eth.accounts[0]
    eth_tester_w3.eth.send_transaction({"from": funder, "to": sender.address, "value": 10**18})
    token = sender.deploy("DemoToken", "Wrapped Ether", "WETH", 18)
    sender.transact(token.functions.mint(sender.address, 7))
    assert token.functions.balanceOf(sender.address).call() == 7
