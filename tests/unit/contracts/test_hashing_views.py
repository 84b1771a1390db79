"""The contract's hashing views reproduce the shared vectors (struct hashes on eth-tester;
the exact digests are checked on anvil, whose domain the vectors use)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_utils.crypto import keccak

from backend.eip712 import Domain
from tests.unit.contracts.harness import Harness
from tests.unit.eip712.vectors import FIXTURE

VECTORS: list[dict[str, Any]] = json.loads(FIXTURE.read_text())["vectors"]


def hash_view(contract: Any, vector: dict[str, Any]) -> bytes:
    """eth_call of the hashing view for a vector's message."""
    m = vector["message"]
    fns = contract.functions
    match vector["primaryType"]:
        case "Order":
            args = (
                m["trader"],
                m["baseToken"],
                m["quoteToken"],
                m["side"],
                int(m["price"]),
                int(m["amount"]),
                m["timeInForce"],
                int(m["nonce"]),
                int(m["expiry"]),
                int(m["maxFeeBps"]),
            )
            return bytes(fns.hashOrder(args).call())
        case "Cancel":
            return bytes(fns.hashCancel((m["trader"], bytes.fromhex(m["orderHash"][2:]))).call())
        case "CancelAll":
            args = (m["trader"], m["baseToken"], m["quoteToken"], int(m["nonceBelow"]))
            return bytes(fns.hashCancelAll(args).call())
        case "Withdrawal":
            args = (
                m["trader"],
                m["token"],
                int(m["amount"]),
                int(m["nonce"]),
                int(m["expiry"]),
            )
            return bytes(fns.hashWithdrawal(args).call())
    raise ValueError(vector["primaryType"])


def test_domain_separator_matches_python(h: Harness) -> None:
    separator = bytes(h.contract.functions.domainSeparator().call())
    assert separator == Domain(h.w3.eth.chain_id, h.exchange.address).separator


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"{v['primaryType']}-{v['digest'][:10]}")
def test_contract_reproduces_struct_hash(h: Harness, vector: dict[str, Any]) -> None:
    separator = bytes(h.contract.functions.domainSeparator().call())
    expected = keccak(b"\x19\x01" + separator + bytes.fromhex(vector["structHash"][2:]))
    assert hash_view(h.contract, vector) == expected
