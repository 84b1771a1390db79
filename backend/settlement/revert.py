"""Simulation (`eth_call`, `eth_estimateGas`) and decoding of the contract's custom errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

import requests
from eth_abi.abi import decode as abi_decode
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3Exception
from web3.types import BlockIdentifier, TxParams

from backend.chain.exchange import exchange_abi
from backend.domain.errors import ErrorCode, RetryableError

ERROR_STRING: Final = bytes.fromhex("08c379a0")
PANIC: Final = bytes.fromhex("4e487b71")

GLOBAL_ERRORS: Final = frozenset(
    {
        "BatchIdMismatch",
        "EnforcedPause",
        "AccessControlUnauthorizedAccount",
        "ReentrancyGuardReentrantCall",
    }
)
"""Reverts that say nothing about a fill: never bisect on them, retry later instead."""


@dataclass(frozen=True, slots=True)
class Revert:
    name: str
    args: tuple[Any, ...]
    data: bytes

    @property
    def is_global(self) -> bool:
        return self.name in GLOBAL_ERRORS or self.name.startswith("unknown")

    @property
    def reason(self) -> str:
        """Custom error name and arguments, e.g. `TraderExited(0xAb…, 123)`."""

        def fmt(value: Any) -> str:
            if isinstance(value, bytes):
                return "0x" + value.hex()
            return str(value)

        return f"{self.name}({', '.join(fmt(a) for a in self.args)})"


@cache
def _error_table() -> dict[bytes, tuple[str, list[str]]]:
    table: dict[bytes, tuple[str, list[str]]] = {}
    for item in exchange_abi():
        if item["type"] != "error":
            continue
        types = [i["type"] for i in item["inputs"]]
        selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
        table[selector] = (item["name"], types)
    table[ERROR_STRING] = ("Error", ["string"])
    table[PANIC] = ("Panic", ["uint256"])
    return table


def decode_revert(data: bytes) -> Revert:
    entry = _error_table().get(data[:4])
    if entry is None:
        return Revert(f"unknown:0x{data[:4].hex()}", (), data)
    name, types = entry
    try:
        values = abi_decode(types, data[4:]) if types else ()
    except Exception:  # malformed arguments: keep the name
        return Revert(name, (), data)
    args = tuple(
        to_checksum_address(v) if t == "address" else v for t, v in zip(types, values, strict=True)
    )
    return Revert(name, args, data)


def _revert_data(exc: ContractLogicError) -> bytes:
    data = exc.data
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    if isinstance(data, dict) and isinstance(data.get("data"), str):
        return bytes.fromhex(data["data"][2:])
    return b""


@contextmanager
def rpc_guard(what: str) -> Iterator[None]:
    """Node failures (timeouts, refused connections, RPC errors) become `RetryableError`."""
    try:
        yield
    except ContractLogicError:
        raise
    except (requests.RequestException, TimeoutError, ConnectionError, Web3Exception) as exc:
        raise RetryableError(
            ErrorCode.RPC_UNAVAILABLE, f"{what}: {type(exc).__name__}", rpc=what
        ) from exc


def simulate(
    w3: Web3,
    *,
    sender: str,
    to: str,
    data: bytes,
    block: BlockIdentifier = "pending",
    gas: int | None = None,
) -> Revert | None:
    """`eth_call` the transaction on the pending state; None if it succeeds."""
    tx: TxParams = {
        "from": to_checksum_address(sender),
        "to": to_checksum_address(to),
        "data": data,
    }
    if gas is not None:
        tx["gas"] = gas
    try:
        with rpc_guard("eth_call"):
            w3.eth.call(tx, block)
    except ContractLogicError as exc:
        return revert_of(exc)
    return None


def estimate(
    w3: Web3, *, sender: str, to: str, data: bytes, block: BlockIdentifier = "pending"
) -> Revert | int:
    """`eth_estimateGas` on the pending state: the gas the transaction needs, or its revert —
    nodes revert an estimate exactly as they revert an `eth_call`, so this one call both
    simulates and prices (it costs the node several executions: a binary search on the limit)."""
    tx: TxParams = {
        "from": to_checksum_address(sender),
        "to": to_checksum_address(to),
        "data": data,
    }
    try:
        with rpc_guard("eth_estimateGas"):
            return int(w3.eth.estimate_gas(tx, block))
    except ContractLogicError as exc:
        return revert_of(exc)


def revert_of(exc: ContractLogicError) -> Revert:
    raw = _revert_data(exc)
    if not raw:
        return Revert("unknown:no-data", (str(exc),), b"")
    return decode_revert(raw)
