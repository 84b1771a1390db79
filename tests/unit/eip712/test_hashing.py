"""The fast hasher equals eth_account's generic typed-data encoder on random messages."""

from __future__ import annotations

from eth_account.messages import encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.domain.types import Side, TimeInForce
from backend.eip712 import Cancel, CancelAll, Domain, Order, Withdrawal
from backend.eip712.hashing import digest, typed_data
from backend.eip712.messages import EIP712_TYPES, ScheduleCancel, Session, encode_type
from backend.eip712.signing import Signature, sign, sign_typed

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
u256 = st.integers(0, 2**256 - 1)
u64 = st.integers(0, 2**64 - 1)
u16 = st.integers(0, 2**16 - 1)
domains = st.builds(Domain, st.integers(1, 2**64), addresses)
orders = st.builds(
    Order,
    addresses,
    addresses,
    addresses,
    st.sampled_from(Side),
    u256,
    u256,
    st.sampled_from(TimeInForce),
    u64,
    u64,
    u16,
)
messages = st.one_of(
    orders,
    st.builds(Cancel, addresses, st.binary(min_size=32, max_size=32)),
    st.builds(CancelAll, addresses, addresses, addresses, u64),
    st.builds(Withdrawal, addresses, addresses, u256, u64, u64),
    st.builds(Session, addresses, st.text(max_size=40), u64),
    st.builds(ScheduleCancel, addresses, u64, u64),
)


def _generic_digest(msg: object, domain: Domain) -> bytes:
    from eth_utils.crypto import keccak

    signable = encode_typed_data(full_message=typed_data(msg, domain))  # type: ignore[arg-type]
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


@settings(max_examples=200, deadline=None)
@given(messages, domains)
def test_fast_digest_equals_generic_encoder(msg: Order, domain: Domain) -> None:
    assert digest(msg, domain) == _generic_digest(msg, domain)


def test_published_types() -> None:
    assert encode_type("Order") == (
        "Order(address trader,address baseToken,address quoteToken,uint8 side,uint256 price,"
        "uint256 amount,uint8 timeInForce,uint64 nonce,uint64 expiry,uint16 maxFeeBps)"
    )
    assert encode_type("Cancel") == "Cancel(address trader,bytes32 orderHash)"
    assert encode_type("Session") == "Session(address trader,string scope,uint64 expiry)"
    assert encode_type("ScheduleCancel") == (
        "ScheduleCancel(address trader,uint64 time,uint64 nonce)"
    )
    assert encode_type("CancelAll") == (
        "CancelAll(address trader,address baseToken,address quoteToken,uint64 nonceBelow)"
    )
    assert encode_type("Withdrawal") == (
        "Withdrawal(address trader,address token,uint256 amount,uint64 nonce,uint64 expiry)"
    )
    assert [f["name"] for f in EIP712_TYPES["EIP712Domain"]] == [
        "name",
        "version",
        "chainId",
        "verifyingContract",
    ]


def test_fast_and_wallet_signatures_agree() -> None:
    key = "0x" + "42" * 32
    domain = Domain(1, "0x" + "11" * 20)
    w = Withdrawal("0x" + "22" * 20, "0x" + "33" * 20, 5, 9, 1_900_000_000)
    sig = sign(w, domain, key)
    assert sig == sign_typed(w, domain, key)
    assert Signature.from_bytes(sig.to_bytes()) == sig


def test_keccak_runs_on_pysha3_in_a_fresh_process() -> None:
    """Importing `backend` makes eth-hash use pysha3 (about 6x faster than pycryptodome,
    which eth-hash would otherwise pick), and the hash is still Keccak-256."""
    import subprocess
    import sys

    code = (
        "import backend\n"
        "from eth_hash.auto import keccak\n"
        "assert keccak(b'').hex() == "
        "'c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470'\n"
        "print(type(keccak.hasher.__self__).__name__)\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "ETH_HASH_BACKEND"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "PySha3Backend"
