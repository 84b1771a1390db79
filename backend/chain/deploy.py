"""Deploy contracts and send operator transactions from a local key (deploy CLI, dev, tests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import rlp
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.types import TxParams, TxReceipt, Wei

from backend.chain.artifacts import load


class TransactionFailedError(RuntimeError):
    pass


@dataclass
class Sender:
    """A key that sends transactions one after another, tracking its own nonce."""

    w3: Web3
    account: LocalAccount
    gas: int | None = None
    """Explicit gas limit; None estimates (slow on eth-tester for big calls, SPEC §13)."""

    @classmethod
    def from_key(cls, w3: Web3, private_key: str, gas: int | None = None) -> Sender:
        return cls(w3=w3, account=Account.from_key(private_key), gas=gas)

    @property
    def address(self) -> ChecksumAddress:
        return self.account.address

    def send(self, tx: TxParams) -> TxReceipt:
        tx = dict(tx)  # type: ignore[assignment]
        tx.setdefault("from", self.address)
        tx.setdefault("chainId", self.w3.eth.chain_id)
        tx.setdefault("nonce", self.w3.eth.get_transaction_count(self.address, "pending"))
        if "gas" not in tx:
            tx["gas"] = self.gas if self.gas is not None else self.w3.eth.estimate_gas(tx)
        if "maxFeePerGas" not in tx and "gasPrice" not in tx:
            base = self.w3.eth.get_block("latest").get("baseFeePerGas", 0)
            tip = 10**9
            tx["maxPriorityFeePerGas"] = Wei(tip)
            tx["maxFeePerGas"] = Wei(2 * int(base) + tip)
        signed = self.account.sign_transaction(tx)  # type: ignore[arg-type]
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
        if receipt["status"] != 1:
            raise TransactionFailedError(f"transaction {tx_hash.to_0x_hex()} reverted")
        return receipt

    def transact(self, fn: Any, **overrides: Any) -> TxReceipt:
        """Send a bound contract function call (`contract.functions.f(args)`)."""
        params: dict[str, Any] = {"from": self.address, **overrides}
        if self.gas is not None:
            params.setdefault("gas", self.gas)  # skips build_transaction's estimate
        return self.send(fn.build_transaction(params))

    def deploy(self, name: str, *args: Any) -> Contract:
        artifact = load(name)
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        tx: TxParams = {
            "from": self.address,
            "data": factory.constructor(*args).data_in_transaction,
        }
        receipt = self.send(tx)
        address = receipt["contractAddress"]
        if address is None:
            raise TransactionFailedError(f"deployment of {name} returned no address")
        return self.w3.eth.contract(address=address, abi=artifact.abi)


def contract_at(w3: Web3, name: str, address: str) -> Contract:
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=load(name).abi)


def create_address(sender: str, nonce: int) -> ChecksumAddress:
    """The address a contract deployed by `sender` with transaction nonce `nonce` gets (CREATE)."""
    raw = keccak(rlp.encode([bytes.fromhex(sender[2:]), nonce]))[12:]
    return Web3.to_checksum_address(raw)


@dataclass(frozen=True)
class Deployment:
    exchange: ChecksumAddress
    timelock: ChecksumAddress


def deploy_exchange_behind_timelock(
    sender: Sender,
    *,
    admin: str,
    fee_recipient: str,
    exit_delay: int,
    admin_delay_s: int,
    cancel_delay_s: int = 3_600,
) -> Deployment:
    """Deploys the Exchange with `sender` as operator and an `AdminTimelock` as its only admin;
    `admin` (a multisig) proposes and executes through the timelock, never directly.

    The Exchange goes first (so it keeps the address of the sender's next nonce, which configs
    pin) and names the timelock by the address its deployment, the next transaction, will get.
    """
    nonce = sender.w3.eth.get_transaction_count(sender.address, "pending")
    timelock_address = create_address(sender.address, nonce + 1)
    exchange = sender.deploy(
        "Exchange", timelock_address, sender.address, Web3.to_checksum_address(fee_recipient),
        exit_delay, cancel_delay_s,
    )  # fmt: skip
    members = [Web3.to_checksum_address(admin)]
    timelock = sender.deploy("AdminTimelock", admin_delay_s, members, members)
    if timelock.address != timelock_address:
        raise TransactionFailedError(
            f"the timelock landed at {timelock.address}, not {timelock_address}: the Exchange at "
            f"{exchange.address} has no reachable admin; deploy again from a quiet key"
        )
    return Deployment(exchange=exchange.address, timelock=timelock.address)
