"""The bad-input battery through HTTP: each answered 4xx with its code, and the engine's book and
balances unchanged after each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson
import pytest

from backend.domain.types import Side, TimeInForce
from backend.eip712.domain import Domain
from backend.eip712.parsing import SECP256K1_N, message_to_json
from backend.eip712.signing import sign
from tests.unit.api.harness import (
    CHAIN_ID,
    DOMAIN,
    EXCHANGE,
    KEYS,
    LOT,
    ONE,
    PRICE,
    TICK,
    TRADERS,
    WETH,
    Harness,
)

Case = tuple[str, Callable[[Harness], Any], int, str]


def raw(h: Harness, content: bytes | Any, **headers: str) -> Any:
    return h.client.post(
        "/v1/orders", content=content, headers={"content-type": "application/json", **headers}
    )


def with_field(h: Harness, field: str, value: Any) -> Any:
    body = h.order_body(h.order(0, Side.BUY))
    body["order"][field] = value
    return h.client.post("/v1/orders", json=body)


def without(h: Harness, field: str) -> Any:
    body = h.order_body(h.order(0, Side.BUY))
    del body["order"][field]
    return h.client.post("/v1/orders", json=body)


def signed_in(h: Harness, domain: Domain) -> Any:
    order = h.order(0, Side.BUY)
    body = {"order": message_to_json(order), "signature": h.signed(order, KEYS[0], domain)}
    return h.client.post("/v1/orders", json=body)


def high_s(h: Harness) -> Any:
    order = h.order(0, Side.BUY)
    sig = sign(order, DOMAIN, KEYS[0])
    flipped = replace(sig, s=SECP256K1_N - sig.s, v=55 - sig.v)  # the same point, high s
    body = {"order": message_to_json(order), "signature": "0x" + flipped.to_bytes().hex()}
    return h.client.post("/v1/orders", json=body)


def by_other_key(h: Harness) -> Any:
    return h.client.post("/v1/orders", json=h.order_body(h.order(0, Side.BUY), key=KEYS[1]))


def chunked_megabyte(h: Harness) -> Any:
    def gen() -> Any:
        for _ in range(16):
            yield b" " * 65536

    return raw(h, gen())


CASES: list[Case] = [
    ("malformed json", lambda h: raw(h, b'{"order": '), 400, "INVALID_REQUEST"),
    ("not an object", lambda h: raw(h, b"[1, 2]"), 400, "INVALID_REQUEST"),
    ("empty body", lambda h: raw(h, b""), 400, "INVALID_REQUEST"),
    ("missing signature", lambda h: h.client.post(
        "/v1/orders", json={"order": message_to_json(h.order(0, Side.BUY))}), 400,
        "INVALID_REQUEST"),
    ("unknown top-level field", lambda h: h.client.post(
        "/v1/orders", json={**h.order_body(h.order(0, Side.BUY)), "x": 1}), 400,
        "INVALID_REQUEST"),
    ("missing order field", lambda h: without(h, "nonce"), 400, "INVALID_ORDER"),
    ("extra order field", lambda h: with_field(h, "fee", "1"), 400, "INVALID_ORDER"),
    ("amount >= 2^256", lambda h: with_field(h, "amount", str(2**256)), 400, "INVALID_ORDER"),
    ("nonce >= 2^64", lambda h: with_field(h, "nonce", str(2**64)), 400, "INVALID_ORDER"),
    ("negative amount", lambda h: with_field(h, "amount", "-1"), 400, "INVALID_ORDER"),
    ("fractional price", lambda h: with_field(h, "price", "3000.5"), 400, "INVALID_ORDER"),
    ("exponent price", lambda h: with_field(h, "price", "3e9"), 400, "INVALID_ORDER"),
    ("numeric amount", lambda h: with_field(h, "amount", ONE), 400, "INVALID_ORDER"),
    ("side as string", lambda h: with_field(h, "side", "0"), 400, "INVALID_ORDER"),
    ("side as boolean", lambda h: with_field(h, "side", False), 400, "INVALID_ORDER"),
    ("side out of range", lambda h: with_field(h, "side", 2), 400, "INVALID_ORDER"),
    ("bad hex address", lambda h: with_field(h, "trader", "0x" + "zz" * 20), 400,
     "INVALID_ORDER"),
    ("short address", lambda h: with_field(h, "baseToken", WETH[:-2]), 400, "INVALID_ORDER"),
    ("bad checksum", lambda h: with_field(h, "trader", TRADERS[0][:2] + TRADERS[0][2:].swapcase()
                                          if TRADERS[0][2:].swapcase() != TRADERS[0][2:].upper()
                                          else "0x" + "aB" * 20), 400, "INVALID_ORDER"),
    ("bad signature hex", lambda h: h.client.post("/v1/orders", json={
        **h.order_body(h.order(0, Side.BUY)), "signature": "0xnothex"}), 401,
        "INVALID_SIGNATURE"),
    ("short signature", lambda h: h.client.post("/v1/orders", json={
        **h.order_body(h.order(0, Side.BUY)), "signature": "0x" + "11" * 64}), 401,
        "INVALID_SIGNATURE"),
    ("wrong chain id", lambda h: signed_in(h, Domain(CHAIN_ID + 1, EXCHANGE)), 401,
     "INVALID_SIGNATURE"),
    ("wrong verifying contract", lambda h: signed_in(h, Domain(CHAIN_ID, "0x" + "11" * 20)), 401,
     "INVALID_SIGNATURE"),
    ("signature of another trader", by_other_key, 401, "INVALID_SIGNATURE"),
    ("high-s signature", high_s, 401, "INVALID_SIGNATURE"),
    ("expired order", lambda h: h.place(h.order(0, Side.BUY, expiry=1_600_000_000)), 400,
     "EXPIRED"),
    ("reused nonce", lambda h: h.place(h.order(0, Side.BUY, PRICE - TICK, nonce=7)), 409,
     "NONCE_REUSED"),
    ("off tick", lambda h: h.place(h.order(0, Side.BUY, PRICE + 1)), 400, "INVALID_TICK"),
    ("off lot", lambda h: h.place(h.order(0, Side.BUY, amount=LOT + 1)), 400, "INVALID_LOT"),
    ("zero amount", lambda h: h.place(h.order(0, Side.BUY, amount=0)), 400, "INVALID_ORDER"),
    ("unknown market", lambda h: h.place(h.order(0, Side.BUY, base="0x" + "12" * 20)), 404,
     "UNKNOWN_MARKET"),
    ("insufficient balance", lambda h: h.place(h.order(0, Side.BUY, amount=10**6 * ONE)), 422,
     "INSUFFICIENT_BALANCE"),
    ("unfunded trader", lambda h: h.place(h.order(4, Side.SELL)), 422, "INSUFFICIENT_BALANCE"),
    ("post-only would take", lambda h: h.place(
        h.order(1, Side.BUY, PRICE + 5 * TICK, tif=TimeInForce.POST_ONLY)), 422,
     "POST_ONLY_WOULD_TAKE"),
    ("client order id too long", lambda h: h.place(h.order(0, Side.BUY), clientOrderId="x" * 65),
     400, "INVALID_ORDER"),
    ("1 MB body", lambda h: raw(h, b"{" + b" " * (1 << 20) + b"}"), 413, "PAYLOAD_TOO_LARGE"),
    ("1 MB body without length", chunked_megabyte, 413, "PAYLOAD_TOO_LARGE"),
]  # fmt: skip


@pytest.fixture
def seeded(api: Harness) -> Harness:
    """A book with a bid (nonce 7) and an ask, so reuse and post-only have something to hit."""
    assert api.place(api.order(0, Side.BUY, PRICE - 10 * TICK, nonce=7)).status_code == 200
    assert api.place(api.order(2, Side.SELL, PRICE + TICK)).status_code == 200
    return api


def test_bad_input_battery(seeded: Harness) -> None:
    h = seeded
    before = h.state()
    failures = []
    for name, call, status, code in CASES:
        r = call(h)
        try:
            body = orjson.loads(r.content)
            got = (r.status_code, body["error"]["code"])
            assert set(body) == {"error"}
            assert body["error"]["message"]
        except Exception:
            got = (r.status_code, r.text[:80])
        if got != (status, code):
            failures.append(f"{name}: expected {(status, code)}, got {got}")
        if h.state() != before:
            failures.append(f"{name}: book or balances changed")
    assert not failures, "\n".join(failures)


def test_fastapi_validation_and_unknown_routes_answer_in_the_error_shape(api: Harness) -> None:
    for path, status in (
        ("/v1/markets/WETH-USDC/book?depth=abc", 400),
        ("/v1/markets/WETH-USDC/book?depth=0", 400),
        ("/v1/markets/WETH-USDC/candles?interval=7m", 400),
        ("/v1/nope", 404),
        ("/v1/markets/NOPE-USDC/book", 404),
        ("/v1/accounts/0x1234/balances", 400),
    ):
        r = api.client.get(path)
        assert r.status_code == status, (path, r.text)
        assert set(r.json()["error"]) == {"code", "message"}
    r = api.client.put("/v1/orders")
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "INVALID_REQUEST"
