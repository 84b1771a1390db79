from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st

from backend.domain.errors import DexError, ErrorCode
from backend.domain.types import UINT64_MAX, UINT256_MAX, Side, TimeInForce
from backend.eip712.domain import Domain
from backend.eip712.messages import Order
from backend.eip712.parsing import (
    SECP256K1_N,
    message_to_json,
    parse_cancel,
    parse_cancel_all,
    parse_order,
    parse_signature,
    parse_withdrawal,
)
from backend.eip712.signing import sign

KEY = "0x" + "42" * 32
TRADER = Account.from_key(KEY).address
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
DOMAIN = Domain(chain_id=31337, verifying_contract="0x5FbDB2315678afecb367f032d93F642f64180aa3")


def order_json(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "trader": TRADER.lower(),
        "baseToken": WETH,
        "quoteToken": USDC.upper().replace("0X", "0x"),
        "side": 0,
        "price": "3000500000",
        "amount": "1000000000000000000",
        "timeInForce": 0,
        "nonce": "1700000000000",
        "expiry": "0",
        "maxFeeBps": "30",
    }
    base.update(overrides)
    return base


def test_valid_order_is_parsed_with_checksummed_addresses() -> None:
    order = parse_order(order_json())
    assert order.trader == TRADER
    assert order.quoteToken == USDC
    assert order.side is Side.BUY
    assert order.timeInForce is TimeInForce.GTC
    assert order.price == 3_000_500_000
    assert order.amount == 10**18
    assert order.maxFeeBps == 30


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("price", 3000, "decimal string"),
        ("price", "-1", "non-negative integer"),
        ("price", "1.5", "non-negative integer"),
        ("price", "1e18", "non-negative integer"),
        ("price", "0012", "leading zeros"),
        ("price", " 12", "non-negative integer"),
        ("amount", str(UINT256_MAX + 1), "exceeds the maximum"),
        ("amount", "9" * 79, "non-negative integer"),
        ("nonce", str(UINT64_MAX + 1), "exceeds the maximum"),
        ("expiry", None, "decimal string"),
        ("maxFeeBps", 30, "decimal string"),
        ("maxFeeBps", "65536", "exceeds the maximum"),
        ("side", True, "JSON integer"),
        ("side", "0", "JSON integer"),
        ("side", 2, "must be one of"),
        ("timeInForce", 4, "must be one of"),
        ("timeInForce", 1.0, "JSON integer"),
        ("trader", "0x1234", "20-byte hex address"),
        ("trader", "0xZZ" + "0" * 38, "20-byte hex address"),
        ("baseToken", "0xc02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2", "EIP-55 checksum"),
    ],
)
def test_malformed_fields_are_refused_with_the_field_named(
    field: str, value: Any, fragment: str
) -> None:
    with pytest.raises(DexError) as info:
        parse_order(order_json(**{field: value}))
    assert info.value.code is ErrorCode.INVALID_ORDER
    assert info.value.context["field"] == f"order.{field}"
    assert fragment in info.value.message


def test_missing_and_unknown_fields_are_refused() -> None:
    body = order_json()
    del body["nonce"]
    with pytest.raises(DexError, match=r"order\.nonce: is required"):
        parse_order(body)
    with pytest.raises(DexError, match=r"order\.extra: is not a field"):
        parse_order(order_json(extra="1"))
    with pytest.raises(DexError, match="must be a JSON object"):
        parse_order([1, 2])


def test_uint_limits_are_inclusive() -> None:
    order = parse_order(order_json(amount=str(UINT256_MAX), nonce=str(UINT64_MAX), price="0"))
    assert (order.amount, order.nonce, order.price) == (UINT256_MAX, UINT64_MAX, 0)


def test_signature_rules() -> None:
    sig = sign(parse_order(order_json()), DOMAIN, KEY).to_bytes()
    assert parse_signature("0x" + sig.hex()) == sig
    as_recid = sig[:64] + bytes([sig[64] - 27])
    assert parse_signature("0x" + as_recid.hex()) == sig  # v 0/1 normalised to 27/28
    s = int.from_bytes(sig[32:64], "big")
    high_s = sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    for bad, fragment in [
        ("0x" + high_s.hex(), "high-s"),
        ("0x" + sig[:64].hex(), "65 bytes"),
        ("0x" + sig.hex() + "00", "65 bytes"),
        (sig.hex(), "0x-prefixed"),
        ("0x" + sig[:64].hex() + "1d", "v must be 27 or 28"),
        ("0x" + "00" * 65, "out of range"),
    ]:
        with pytest.raises(DexError, match=fragment) as info:
            parse_signature(bad)
        assert info.value.code is ErrorCode.INVALID_SIGNATURE


def test_other_messages_parse() -> None:
    h = "0x" + "ab" * 32
    assert parse_cancel({"trader": TRADER, "orderHash": h}).orderHash == bytes.fromhex("ab" * 32)
    with pytest.raises(DexError, match="32 bytes"):
        parse_cancel({"trader": TRADER, "orderHash": "0xabcd"})
    zero = "0x" + "00" * 20
    ca = parse_cancel_all(
        {"trader": TRADER, "baseToken": zero, "quoteToken": zero, "nonceBelow": "5"}
    )
    assert ca.nonceBelow == 5
    w = parse_withdrawal(
        {"trader": TRADER, "token": USDC, "amount": "7", "nonce": "1", "expiry": "9"}
    )
    assert (w.amount, w.nonce, w.expiry) == (7, 1, 9)
    with pytest.raises(DexError, match=r"withdrawal\.expiry: is required"):
        parse_withdrawal({"trader": TRADER, "token": USDC, "amount": "7", "nonce": "1"})


orders = st.builds(
    Order,
    trader=st.just(TRADER),
    baseToken=st.just(WETH),
    quoteToken=st.just(USDC),
    side=st.sampled_from(Side),
    price=st.integers(0, UINT256_MAX),
    amount=st.integers(0, UINT256_MAX),
    timeInForce=st.sampled_from(TimeInForce),
    nonce=st.integers(0, UINT64_MAX),
    expiry=st.integers(0, UINT64_MAX),
    maxFeeBps=st.integers(0, 2**16 - 1),
)


@given(orders)
def test_json_round_trip(order: Order) -> None:
    assert parse_order(message_to_json(order)) == order
