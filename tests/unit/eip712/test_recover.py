from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.domain.errors import DexError, ErrorCode
from backend.domain.types import UINT64_MAX, UINT256_MAX, Side, TimeInForce
from backend.eip712.domain import Domain
from backend.eip712.hashing import digest, typed_data
from backend.eip712.messages import Order, Withdrawal
from backend.eip712.recover import recover, verify
from backend.eip712.signing import sign, sign_typed

KEYS = ["0x" + f"{i:02x}" * 32 for i in range(1, 6)]
DOMAIN = Domain(chain_id=31337, verifying_contract="0x5FbDB2315678afecb367f032d93F642f64180aa3")
OTHER_CHAIN = Domain(chain_id=1, verifying_contract=DOMAIN.verifying_contract)


@st.composite
def signed_orders(draw: st.DrawFn) -> tuple[str, Order]:
    key = draw(st.sampled_from(KEYS))
    addr = st.binary(min_size=20, max_size=20).map(to_checksum_address)
    order = Order(
        trader=Account.from_key(key).address,
        baseToken=draw(addr),
        quoteToken=draw(addr),
        side=draw(st.sampled_from(Side)),
        price=draw(st.integers(0, UINT256_MAX)),
        amount=draw(st.integers(0, UINT256_MAX)),
        timeInForce=draw(st.sampled_from(TimeInForce)),
        nonce=draw(st.integers(0, UINT64_MAX)),
        expiry=draw(st.integers(0, UINT64_MAX)),
    )
    return key, order


@settings(max_examples=60, deadline=None)
@given(signed_orders())
def test_fast_path_equals_eth_account_on_random_orders(case: tuple[str, Order]) -> None:
    key, order = case
    # Signed as a wallet does (generic typed-data encoder) …
    sig = sign_typed(order, DOMAIN, key).to_bytes()
    # … recovered by eth_account the slow way and by the fast path: same signer, same digest.
    signable = encode_typed_data(full_message=typed_data(order, DOMAIN))
    assert Account.recover_message(signable, signature=sig) == order.trader
    assert recover(digest(order, DOMAIN), sig) == order.trader
    assert verify(order, sig, DOMAIN) == digest(order, DOMAIN)


def test_signature_of_another_trader_is_refused() -> None:
    order = Order(
        Account.from_key(KEYS[0]).address,
        DOMAIN.verifying_contract,
        DOMAIN.verifying_contract,
        Side.SELL,
        1,
        1,
        TimeInForce.GTC,
        1,
        0,
    )
    sig = sign(order, DOMAIN, KEYS[1]).to_bytes()
    with pytest.raises(DexError, match="not by the trader") as info:
        verify(order, sig, DOMAIN)
    assert info.value.code is ErrorCode.INVALID_SIGNATURE


def test_wrong_domain_recovers_someone_else() -> None:
    w = Withdrawal(Account.from_key(KEYS[2]).address, DOMAIN.verifying_contract, 5, 1, 1)
    sig = sign(w, OTHER_CHAIN, KEYS[2]).to_bytes()
    verify(w, sig, OTHER_CHAIN)
    with pytest.raises(DexError, match="chain id and verifying contract"):
        verify(w, sig, DOMAIN)


def test_unrecoverable_signature_is_invalid() -> None:
    # r = 0 is not on the curve
    bad = bytes(32) + (1).to_bytes(32, "big") + bytes([27])
    with pytest.raises(DexError) as info:
        recover(b"\x11" * 32, bad)
    assert info.value.code is ErrorCode.INVALID_SIGNATURE
