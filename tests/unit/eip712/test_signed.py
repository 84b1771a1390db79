"""The native signature check (backend/native/src/sig.rs) gives the reference's answers.

Equal on the shared vectors and on random messages of every signed type (the signer also
checked by eth_account's generic typed-data path), and equal on every refusal: the same
DexError code, message and context, raised at the same step (parsing, or `verified()`).
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.domain.errors import DexError, ErrorCode
from backend.domain.types import UINT64_MAX, UINT256_MAX, Side, TimeInForce
from backend.eip712 import signed as signed_mod
from backend.eip712.domain import Domain
from backend.eip712.hashing import typed_data
from backend.eip712.messages import Cancel, CancelAll, Message, Order, Withdrawal
from backend.eip712.parsing import SECP256K1_N, message_to_json
from backend.eip712.recover import NO_KEY
from backend.eip712.signed import Signed, check_native, check_reference
from backend.eip712.signing import sign

pytestmark = pytest.mark.skipif(
    not signed_mod.native_available(), reason="the native crate is not built"
)

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "eip712_vectors.json"
KEYS = ["0x" + f"{i:02x}" * 32 for i in range(1, 6)]
DOMAIN = Domain(chain_id=31337, verifying_contract="0x5FbDB2315678afecb367f032d93F642f64180aa3")
OTHER_CHAIN = Domain(chain_id=1, verifying_contract=DOMAIN.verifying_contract)
OTHER_CONTRACT = Domain(chain_id=31337, verifying_contract="0x" + "11" * 20)
KINDS: dict[str, type[Any]] = {
    "Order": Order,
    "Cancel": Cancel,
    "CancelAll": CancelAll,
    "Withdrawal": Withdrawal,
}
Check = Callable[[type[Any], object, object, Domain], Signed[Any]]


def answer(fn: Check, kind: type[Any], body: object, sig: object, domain: Domain) -> tuple:
    """What a caller sees: the parsing refusal, or the parsed values and `verified()`'s answer."""
    try:
        s = fn(kind, body, sig, domain)
    except DexError as exc:
        return ("refused at parsing", exc.code, exc.message, exc.context)
    try:
        verified: tuple = ("verified", s.verified())
    except DexError as exc:
        verified = ("refused at verify", exc.code, exc.message, exc.context)
    m = s.message
    fields = tuple((f, getattr(m, f), type(getattr(m, f))) for f in type(m).__dataclass_fields__)
    return (type(m), fields, s.signature, s.digest, s.signer, s.trader_signed, verified)


def assert_same(kind: type[Any], body: object, sig: object, domain: Domain = DOMAIN) -> tuple:
    native = answer(check_native, kind, body, sig, domain)
    reference = answer(check_reference, kind, body, sig, domain)
    assert native == reference
    return native


# ------------------------------------------------------------------ accepted messages


def test_the_api_uses_the_native_check_unless_told_otherwise() -> None:
    assert signed_mod.uses_native()
    try:
        signed_mod.select("python")
        assert not signed_mod.uses_native()
    finally:
        signed_mod.select("native")
    assert signed_mod.uses_native()


def test_equal_to_the_reference_on_the_shared_vectors() -> None:
    doc = json.loads(FIXTURE.read_text())
    domain = Domain(doc["domain"]["chainId"], doc["domain"]["verifyingContract"])
    assert domain.separator.hex() == doc["domainSeparator"][2:]
    for v in doc["vectors"]:
        kind = KINDS[v["primaryType"]]
        got = assert_same(kind, v["message"], v["signature"], domain)
        assert got[0] is kind
        assert got[3].hex() == v["digest"][2:]
        assert got[-1] == ("verified", got[3])
        assert to_checksum_address(got[4]) == v["signer"]


addresses = st.binary(min_size=20, max_size=20).map(to_checksum_address)
# amounts drawn mostly near the edges of uint256 (and of the narrower widths)
u256 = st.one_of(
    st.integers(0, UINT256_MAX),
    st.integers(UINT256_MAX - 2**16, UINT256_MAX),
    st.integers(0, 2**64 + 2**16),
)
u64 = st.one_of(st.integers(0, UINT64_MAX), st.integers(UINT64_MAX - 1000, UINT64_MAX))


@st.composite
def messages(draw: st.DrawFn) -> tuple[str, Message]:
    key = draw(st.sampled_from(KEYS) | st.binary(min_size=32, max_size=32).map(_valid_key))
    trader = Account.from_key(key).address
    kind = draw(st.sampled_from(list(KINDS)))
    msg: Message
    if kind == "Order":
        msg = Order(
            trader, draw(addresses), draw(addresses), draw(st.sampled_from(Side)), draw(u256),
            draw(u256), draw(st.sampled_from(TimeInForce)), draw(u64), draw(u64),
            draw(st.integers(0, 2**16 - 1)),
        )  # fmt: skip
    elif kind == "Cancel":
        msg = Cancel(trader, draw(st.binary(min_size=32, max_size=32)))
    elif kind == "CancelAll":
        msg = CancelAll(trader, draw(addresses), draw(addresses), draw(u64))
    else:
        msg = Withdrawal(trader, draw(addresses), draw(u256), draw(u64), draw(u64))
    return key, msg


def _valid_key(raw: bytes) -> str:
    k = int.from_bytes(raw, "big") % (SECP256K1_N - 1) + 1
    return "0x" + k.to_bytes(32, "big").hex()


@settings(max_examples=400, deadline=None)
@given(messages())
def test_equal_to_the_reference_and_eth_account_on_random_messages(
    case: tuple[str, Message],
) -> None:
    key, msg = case
    sig = "0x" + sign(msg, DOMAIN, key).to_bytes().hex()
    got = assert_same(type(msg), message_to_json(msg), sig, DOMAIN)
    assert got[-1] == ("verified", got[3])
    signable = encode_typed_data(full_message=typed_data(msg, DOMAIN))
    assert Account.recover_message(signable, signature=bytes.fromhex(sig[2:])) == msg.trader
    assert to_checksum_address(got[4]) == msg.trader


# ------------------------------------------------------------------ refusals

KEY = KEYS[0]
TRADER = Account.from_key(KEY).address
BASE = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
QUOTE = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
SAMPLES: list[Message] = [
    Order(TRADER, BASE, QUOTE, Side.SELL, 3_000_500_000, 10**18, TimeInForce.GTC, 7, 0, 30),
    Cancel(TRADER, bytes(range(32))),
    CancelAll(TRADER, BASE, QUOTE, 99),
    Withdrawal(TRADER, BASE, 10**18, 3, 2_000_000_000),
]


def _signed(msg: Message, domain: Domain = DOMAIN) -> tuple[dict[str, Any], str]:
    return message_to_json(msg), "0x" + sign(msg, domain, KEY).to_bytes().hex()


def _case(msg: Message) -> str:
    return type(msg).__name__


BAD_VALUES: list[object] = [
    None, True, False, 0, 1, -1, 2**64, 1.5, [], {}, "", "0", "00", "01", "-1", "+1", "1.0",
    "1e3", " 1", "1 ", "0x", "0x0", "0x1", "0xg0", "0X00", "٣", "1" * 79, str(UINT256_MAX),
    str(UINT256_MAX + 1), str(UINT64_MAX), str(UINT64_MAX + 1), "65535", "65536", 2, 3, 4, 255,
    "0x" + "00" * 19, "0x" + "00" * 21, "0x" + "00" * 31, "0x" + "00" * 33, "0x" + "ab" * 20,
    "0x" + "AB" * 20, "0x" + "aB" * 20, BASE.lower(), BASE.upper().replace("0X", "0x"),
    BASE[:-1] + ("3" if BASE[-1] != "3" else "4"), TRADER.swapcase().replace("0X", "0x"),
    "\ud800", "0x" + "00" * 32, "0x" + "ff" * 32,
]  # fmt: skip


@pytest.mark.parametrize("msg", SAMPLES, ids=_case)
def test_equal_on_every_bad_field_value(msg: Message) -> None:
    body, sig = _signed(msg)
    refusals = 0
    for name in body:
        for bad in BAD_VALUES:
            got = assert_same(type(msg), {**body, name: bad}, sig)
            refusals += got[0] == "refused at parsing"
    assert refusals > len(body) * len(BAD_VALUES) // 2  # most of them are refused


@pytest.mark.parametrize("msg", SAMPLES, ids=_case)
def test_equal_on_missing_extra_and_non_object_bodies(msg: Message) -> None:
    body, sig = _signed(msg)
    for name in body:
        assert assert_same(type(msg), {k: v for k, v in body.items() if k != name}, sig)[0] == (
            "refused at parsing"
        )
    assert assert_same(type(msg), {**body, "extra": "1"}, sig)[0] == "refused at parsing"
    assert assert_same(type(msg), {}, sig)[0] == "refused at parsing"
    for not_an_object in (None, [], "x", 1, [body]):
        assert assert_same(type(msg), not_an_object, sig)[0] == "refused at parsing"
    first = next(iter(body))
    odd_keys = {**{k: v for k, v in body.items() if k != first}, 1: body[first]}
    assert assert_same(type(msg), odd_keys, sig)[0] == "refused at parsing"

    class Lying(dict[str, Any]):
        def __getitem__(self, key: str) -> Any:
            return "0x" + "00" * 20 if key == "trader" else super().__getitem__(key)

    # a mapping that is not a plain dict is read as the reference reads it
    assert assert_same(type(msg), Lying(body), sig)[-1][0] == "refused at verify"


def _not_an_x() -> int:
    """The smallest x with no point (x, y) on secp256k1 (x³ + 7 is no square mod p)."""
    p = 2**256 - 2**32 - 977
    x = 1
    while pow(x**3 + 7, (p - 1) // 2, p) == 1:
        x += 1
    return x


def _with(sig: str, r: int | None = None, s: int | None = None, v: int | None = None) -> str:
    raw = bytearray(bytes.fromhex(sig[2:]))
    if r is not None:
        raw[:32] = r.to_bytes(32, "big")
    if s is not None:
        raw[32:64] = s.to_bytes(32, "big")
    if v is not None:
        raw[64] = v
    return "0x" + raw.hex()


@pytest.mark.parametrize("msg", SAMPLES, ids=_case)
def test_equal_on_bad_signatures(msg: Message) -> None:
    body, sig = _signed(msg)
    r, s, v = int(sig[2:66], 16), int(sig[66:130], 16), int(sig[130:], 16)
    kind = type(msg)
    # high-s: the same signature's other form, valid for libsecp256k1 but refused
    assert assert_same(kind, body, _with(sig, s=SECP256K1_N - s, v=55 - v))[0] == (
        "refused at parsing"
    )
    for bad_v in range(256):
        got = assert_same(kind, body, _with(sig, v=bad_v))
        if bad_v in (0, 1, 27, 28):
            assert got[0] is kind
        else:
            assert got[0] == "refused at parsing"
    # v as the recovery id itself is accepted and the same signature
    assert assert_same(kind, body, _with(sig, v=v - 27))[-1][0] == "verified"
    # the other recovery id recovers another key (or none): refused at verify
    assert assert_same(kind, body, _with(sig, v=55 - v))[-1][0] == "refused at verify"
    for r2, s2 in [(0, s), (r, 0), (SECP256K1_N, s), (r, SECP256K1_N // 2 + 1), (2**256 - 1, s)]:
        assert assert_same(kind, body, _with(sig, r=r2, s=s2))[0] == "refused at parsing"
    assert assert_same(kind, body, _with(sig, s=SECP256K1_N // 2))[-1][0] == "refused at verify"
    # an r that is no point's x: no key recovers
    got = assert_same(kind, body, _with(sig, r=_not_an_x()))
    assert got[4] is None
    assert got[-1][:3] == ("refused at verify", ErrorCode.INVALID_SIGNATURE, NO_KEY)
    for truncated in (sig[:-2], sig[:-1], sig[:4], "0x", sig + "00", sig[2:], sig.upper()):
        assert assert_same(kind, body, truncated)[0] == "refused at parsing"
    for not_hex in (None, 1, b"\x00" * 65, [sig], sig.replace("0x", "0X"), "0x" + "zz" * 65):
        assert assert_same(kind, body, not_hex)[0] == "refused at parsing"


@pytest.mark.parametrize("msg", SAMPLES, ids=_case)
@pytest.mark.parametrize("domain", [OTHER_CHAIN, OTHER_CONTRACT], ids=["chain-id", "contract"])
def test_equal_on_a_wrong_domain(msg: Message, domain: Domain) -> None:
    body, sig = _signed(msg, domain)  # signed for another domain than the one checked
    got = assert_same(type(msg), body, sig, DOMAIN)
    assert got[-1][0] == "refused at verify"
    assert "check the chain id and verifying contract" in got[-1][2]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SAMPLES),
    st.data(),
)
def test_equal_on_random_mutations(msg: Message, data: st.DataObject) -> None:
    body, sig = _signed(msg)
    name = data.draw(st.sampled_from([*body, "signature"]))
    value = body[name] if name != "signature" else sig
    text = str(value)
    mutated: object = data.draw(
        st.one_of(
            st.text(alphabet="0123456789abcdefABCDEFx ", max_size=140),
            st.integers(-(2**300), 2**300).map(str),
            st.integers(-3, 300),
            st.just(text[:-1]),
            st.just(text + "0"),
            st.integers(0, len(text) - 1).map(lambda i: text[:i] + text[i + 1 :]),
            st.integers(0, len(text) - 1).map(
                lambda i: text[:i] + text[i].swapcase() + text[i + 1 :]
            ),
        )
    )
    if name == "signature":
        assert_same(type(msg), body, mutated)
    else:
        assert_same(type(msg), {**body, name: mutated}, sig)


@pytest.mark.parametrize("msg", SAMPLES, ids=_case)
def test_native_answers_are_left_out_of_the_cycle_collector(msg: Message) -> None:
    """The native check builds the message and its `Signed` untracked (their fields are atoms
    and the message): a request's parked orders cost the collector nothing. They stay equal to
    the reference's tracked ones."""
    body, sig = _signed(msg)
    native, reference = (
        check_native(type(msg), body, sig, DOMAIN),
        check_reference(type(msg), body, sig, DOMAIN),
    )
    assert native == reference
    assert not gc.is_tracked(native)
    assert not gc.is_tracked(native.message)
    assert gc.is_tracked(reference)
