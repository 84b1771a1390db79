"""`hybridex deploy` as the one-shot job of compose / Kubernetes runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from web3 import Web3

from backend.chain.anvil import Anvil
from backend.chain.artifacts import load
from backend.chain.exchange import ExchangeReader
from backend.config import DEV_PRIVATE_KEYS

pytestmark = pytest.mark.integration

OPERATOR_KEY = DEV_PRIVATE_KEYS[3]
MULTISIG = "0x" + "5a" * 20  # stands for the admin multisig (a Safe) in these tests


def _deploy(
    node: Anvil, tmp_path: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HYBRIDEX_") or "TEST" in k}
    base.update(
        HYBRIDEX_MODE="dev", HYBRIDEX_RPC_URL=node.url, HYBRIDEX_OPERATOR_KEY=OPERATOR_KEY, **env
    )
    return subprocess.run(
        [sys.executable, "-m", "backend.cli.main", "deploy", *args],
        capture_output=True, text=True, env=base, cwd=tmp_path, timeout=120, check=False,
    )  # fmt: skip


def test_deploys_once_then_recognises_its_contract(tmp_path: Path) -> None:
    with Anvil() as node:
        first = _deploy(
            node, tmp_path, "--exit-delay", "30", "--write-env", "exchange.env",
            HYBRIDEX_DEPLOY_ADMIN=MULTISIG, HYBRIDEX_CANCEL_DELAY_S="900",
        )  # fmt: skip
        assert first.returncode == 0, first.stderr + first.stdout
        match = re.search(r"Exchange deployed at (0x[0-9a-fA-F]{40}) on chain 31337", first.stdout)
        assert match, first.stdout
        address = match.group(1)
        assert (tmp_path / "exchange.env").read_text() == f"HYBRIDEX_EXCHANGE_ADDRESS={address}\n"
        w3 = Web3(Web3.HTTPProvider(node.url))
        reader = ExchangeReader.at(w3, address)
        assert reader.contract.functions.exitDelay().call() == 30
        assert reader.cancel_delay() == 900  # HYBRIDEX_CANCEL_DELAY_S, what /v1/info publishes
        operator_role = reader.contract.functions.OPERATOR_ROLE().call()
        operator = w3.eth.account.from_key(OPERATOR_KEY).address
        assert reader.contract.functions.hasRole(operator_role, operator).call()
        # The admin role is the timelock's alone, driven by the multisig, never the hot key.
        timelock = re.search(r"admin timelock (0x[0-9a-fA-F]{40})", first.stdout)
        assert timelock, first.stdout
        admin_role = reader.contract.functions.DEFAULT_ADMIN_ROLE().call()
        assert reader.contract.functions.hasRole(admin_role, timelock.group(1)).call()
        assert not reader.contract.functions.hasRole(admin_role, operator).call()
        lock = w3.eth.contract(address=timelock.group(1), abi=load("AdminTimelock").abi)
        assert lock.functions.getMinDelay().call() == 8 * 86_400
        proposer = lock.functions.PROPOSER_ROLE().call()
        multisig = Web3.to_checksum_address(MULTISIG)
        assert lock.functions.hasRole(proposer, multisig).call()
        assert not lock.functions.hasRole(proposer, operator).call()

        again = _deploy(node, tmp_path, HYBRIDEX_EXCHANGE_ADDRESS=address)
        assert again.returncode == 0, again.stderr
        assert f"Exchange already deployed at {address}" in again.stdout
        assert w3.eth.get_transaction_count(operator) == 2  # nothing sent the second time


def test_refuses_when_the_contract_lands_elsewhere_than_configured(tmp_path: Path) -> None:
    with Anvil() as node:
        elsewhere = "0x" + "12" * 20
        result = _deploy(
            node, tmp_path, HYBRIDEX_EXCHANGE_ADDRESS=elsewhere, HYBRIDEX_DEPLOY_ADMIN=MULTISIG
        )
        assert result.returncode == 2
        assert "fix the configuration" in result.stdout


def test_refuses_a_node_on_another_chain(tmp_path: Path) -> None:
    with Anvil() as node:
        result = _deploy(node, tmp_path, HYBRIDEX_CHAIN_ID="1")
        assert result.returncode == 2
        assert "serves chain 31337" in result.stdout


def test_refuses_the_operator_as_admin_unless_dev(tmp_path: Path) -> None:
    with Anvil() as node:
        operator = Web3().eth.account.from_key(OPERATOR_KEY).address
        missing = _deploy(node, tmp_path)
        assert missing.returncode == 2
        assert "--admin" in missing.stdout
        same = _deploy(node, tmp_path, "--admin", operator)
        assert same.returncode == 2
        assert "operator's hot key" in same.stdout
        short = _deploy(node, tmp_path, "--admin", MULTISIG, "--admin-delay", "3600")
        assert short.returncode == 2
        assert "not longer than the exit delay" in short.stdout
        other = _deploy(node, tmp_path, "--admin", MULTISIG, "--cancel-delay", "120")
        assert other.returncode == 2
        assert "differs from HYBRIDEX_CANCEL_DELAY_S" in other.stdout
        w3 = Web3(Web3.HTTPProvider(node.url))
        assert w3.eth.get_transaction_count(operator) == 0  # refused before sending anything
        dev = _deploy(node, tmp_path, "--dev", "--admin-delay", "0")
        assert dev.returncode == 0, dev.stderr + dev.stdout
        assert f"proposer and executor {operator}" in dev.stdout
