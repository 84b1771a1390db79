"""Deterministic generator of tests/fixtures/eip712_vectors.json (the shared EIP-712 vectors).

Regenerate with `.venv/bin/python -m tests.unit.eip712.vectors --write`; a test checks the
checked-in file equals a fresh generation, and both Python and the contract reproduce it.
The domain is anvil's chain id and the address of the first contract deployed by anvil's
first dev key, so a fresh anvil can reproduce every digest exactly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils.address import to_checksum_address

from backend.config import DEV_PRIVATE_KEYS
from backend.domain.types import Side, TimeInForce
from backend.eip712 import Cancel, CancelAll, Domain, Message, Order, Withdrawal
from backend.eip712.hashing import digest, struct_hash
from backend.eip712.messages import message_fields
from backend.eip712.signing import sign_typed

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "eip712_vectors.json"
ANVIL_CHAIN_ID = 31337
FIRST_ANVIL_CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DOMAIN = Domain(ANVIL_CHAIN_ID, FIRST_ANVIL_CONTRACT)
WETH = to_checksum_address("0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2")
USDC = to_checksum_address("0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48")
WBTC = to_checksum_address("0x2260fac5e5542a773aa44fbcfedf7c193bc2c599")
ZERO = "0x0000000000000000000000000000000000000000"
U16_MAX = 2**16 - 1
U64_MAX = 2**64 - 1
U256_MAX = 2**256 - 1


def _keys() -> list[str]:
    return list(DEV_PRIVATE_KEYS[:3])


def _addr(key: str) -> str:
    return str(Account.from_key(key).address)


def orders() -> list[tuple[str, Order]]:
    k0, k1, k2 = _keys()
    return [
        (
            k0,
            Order(_addr(k0), WETH, USDC, Side.SELL, 3000500000, 10**18, TimeInForce.GTC, 1, 0, 30),
        ),
        (
            k1,
            Order(
                _addr(k1),
                WETH,
                USDC,
                Side.BUY,
                3000500000,
                25 * 10**16,
                TimeInForce.IOC,
                1732500000000,
                1732503600,
                0,
            ),
        ),
        (k2, Order(_addr(k2), WBTC, USDC, Side.BUY, 6 * 10**20, 10**5, TimeInForce.FOK, 7, 0, 100)),
        (
            k0,
            Order(
                _addr(k0),
                WBTC,
                USDC,
                Side.SELL,
                1,
                1,
                TimeInForce.POST_ONLY,
                U64_MAX,
                U64_MAX,
                U16_MAX,
            ),
        ),
        (k1, Order(_addr(k1), WETH, USDC, Side.BUY, U256_MAX, U256_MAX, TimeInForce.GTC, 0, 0, 20)),
    ]


def messages() -> list[tuple[str, Message]]:
    k0, k1, k2 = _keys()
    out: list[tuple[str, Message]] = list(orders())
    for key, order in orders()[:2]:
        out.append((key, Cancel(order.trader, digest(order, DOMAIN))))
    out.append((k2, Cancel(_addr(k2), b"\x00" * 32)))
    out += [
        (k0, CancelAll(_addr(k0), WETH, USDC, 1732500000000)),
        (k1, CancelAll(_addr(k1), ZERO, ZERO, U64_MAX)),
        (k2, Withdrawal(_addr(k2), USDC, 1_000_000, 0, 1732503600)),
        (k0, Withdrawal(_addr(k0), WETH, U256_MAX, U64_MAX, U64_MAX)),
    ]
    return out


def _message_json(msg: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in message_fields(msg).items():
        if isinstance(value, bytes):
            out[name] = "0x" + value.hex()
        elif name in ("side", "timeInForce"):
            out[name] = int(value)  # JSON numbers, exactly as signed (SPEC §2)
        elif isinstance(value, int):
            out[name] = str(value)  # amounts, prices, nonces, expiries: decimal strings
        else:
            out[name] = value
    return out


def generate() -> dict[str, Any]:
    vectors: list[dict[str, Any]] = []
    for key, msg in messages():
        sig = sign_typed(msg, DOMAIN, key)
        vectors.append(
            {
                "primaryType": msg.PRIMARY_TYPE,
                "message": _message_json(msg),
                "structHash": "0x" + struct_hash(msg).hex(),
                "digest": "0x" + digest(msg, DOMAIN).hex(),
                "signer": _addr(key),
                "signature": "0x" + sig.to_bytes().hex(),
            }
        )
    return {
        "description": (
            "Hybridex EIP-712 vectors (SPEC §3); "
            "digest = keccak(0x1901 ‖ domainSeparator ‖ structHash)"
        ),
        "domain": DOMAIN.as_dict(),
        "domainSeparator": "0x" + DOMAIN.separator.hex(),
        "vectors": vectors,
    }


def parse_message(primary_type: str, message: dict[str, Any]) -> Message:
    """Rebuilds a message dataclass from its vector JSON."""
    if primary_type == "Order":
        return Order(
            trader=message["trader"],
            baseToken=message["baseToken"],
            quoteToken=message["quoteToken"],
            side=Side(message["side"]),
            price=int(message["price"]),
            amount=int(message["amount"]),
            timeInForce=TimeInForce(message["timeInForce"]),
            nonce=int(message["nonce"]),
            expiry=int(message["expiry"]),
            maxFeeBps=int(message["maxFeeBps"]),
        )
    if primary_type == "Cancel":
        return Cancel(message["trader"], bytes.fromhex(message["orderHash"][2:]))
    if primary_type == "CancelAll":
        return CancelAll(
            message["trader"],
            message["baseToken"],
            message["quoteToken"],
            int(message["nonceBelow"]),
        )
    if primary_type == "Withdrawal":
        return Withdrawal(
            message["trader"],
            message["token"],
            int(message["amount"]),
            int(message["nonce"]),
            int(message["expiry"]),
        )
    raise ValueError(primary_type)


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2) + "\n"


if __name__ == "__main__":
    if "--write" in sys.argv:
        FIXTURE.write_text(render(generate()))
        print(f"wrote {FIXTURE}")
    else:
        sys.stdout.write(render(generate()))
