"""The SDK signs exactly what the server verifies: digests equal backend's, signatures
recover to the trader, with the types `/v1/info` publishes."""

from __future__ import annotations

import pytest
from hybridex_client import NonceSource, Signer

from backend.config import DEV_PRIVATE_KEYS
from backend.domain.types import Side, TimeInForce
from backend.eip712.domain import Domain
from backend.eip712.hashing import digest
from backend.eip712.messages import EIP712_TYPES, Cancel, CancelAll, Order, Session, Withdrawal
from backend.eip712.parsing import message_to_json
from backend.eip712.recover import verify

pytestmark = pytest.mark.unit

DOMAIN = Domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
KEY = DEV_PRIVATE_KEYS[1]
SIGNER = Signer(KEY, DOMAIN.as_dict(), EIP712_TYPES)
T = SIGNER.address
WETH = "0x" + "11" * 20
USDC = "0x" + "22" * 20

MESSAGES = [
    Order(T, WETH, USDC, Side.SELL, 3_000 * 10**18, 10**18, TimeInForce.POST_ONLY, 7, 0),
    Order(T, WETH, USDC, Side.BUY, 1, 2**200, TimeInForce.GTC, 2**64 - 1, 1_900_000_000),
    Cancel(T, bytes(range(32))),
    CancelAll(T, "0x" + "00" * 20, "0x" + "00" * 20, 123_456),
    Withdrawal(T, USDC, 5 * 10**6, 9, 1_900_000_000),
    Session(T, "read", 1_800_000_000),
]


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: m.PRIMARY_TYPE)
def test_digest_and_signature_match_the_server(msg: object) -> None:
    wire = message_to_json(msg)  # type: ignore[arg-type]
    assert SIGNER.digest(msg.PRIMARY_TYPE, wire) == "0x" + digest(msg, DOMAIN).hex()  # type: ignore[arg-type, attr-defined]
    signature = bytes.fromhex(SIGNER.sign(msg.PRIMARY_TYPE, wire)[2:])  # type: ignore[attr-defined]
    verify(msg, signature, DOMAIN)  # type: ignore[arg-type]  # raises INVALID_SIGNATURE otherwise


def test_another_domain_gives_another_digest() -> None:
    other = Signer(KEY, Domain(1, DOMAIN.verifying_contract).as_dict(), EIP712_TYPES)
    wire = message_to_json(MESSAGES[0])
    assert other.digest("Order", wire) != SIGNER.digest("Order", wire)


def test_json_form_keeps_amounts_as_decimal_strings_and_enums_as_numbers() -> None:
    wire = SIGNER.to_json(
        "Order",
        {"trader": T, "baseToken": WETH, "quoteToken": USDC, "side": 1, "price": 5,
         "amount": 10**30, "timeInForce": 3, "nonce": 4, "expiry": 0, "maxFeeBps": 25},
    )  # fmt: skip
    assert wire["amount"] == str(10**30)
    assert wire["maxFeeBps"] == "25"
    assert wire["side"] == 1
    assert wire["timeInForce"] == 3
    order = Order(T, WETH, USDC, Side.SELL, 5, 10**30, TimeInForce(3), 4, 0, 25)
    assert wire == message_to_json(order)


def test_unknown_type_and_wrong_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="not a type the server publishes"):
        SIGNER.sign("Transfer", {})
    with pytest.raises(ValueError, match="fields"):
        SIGNER.sign("Cancel", {"trader": T})


def test_nonces_increase_even_when_the_clock_stands_still_or_goes_back() -> None:
    clock = iter([1000, 1000, 999, 5000])
    nonces = NonceSource(clock_ms=lambda: next(clock))
    assert [nonces.next() for _ in range(4)] == [1000, 1001, 1002, 5000]
