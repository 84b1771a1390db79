"""Private reads need the trader's signed Session: orders, fills, balances, deposits and
withdrawals are not public on chain. Public market data stays open."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from backend.api.sessions import HEADER, encode_token, session_token
from backend.domain.types import Side
from backend.eip712.domain import Domain
from backend.eip712.hashing import digest
from backend.eip712.messages import Session
from backend.eip712.signing import sign
from tests.unit.api.harness import (
    DOMAIN,
    EXCHANGE,
    KEYS,
    MARKET,
    ONE,
    PRICE,
    TRADERS,
    Harness,
    running_api,
)  # fmt: skip

ADMIN_TOKEN = "operator-token-for-tests"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Harness]:
    with running_api(tmp_path, admin_token=ADMIN_TOKEN, api_session_max_s=3_600) as harness:
        yield harness


def _private_paths(api: Harness, who: int, order_hash: str) -> list[tuple[str, dict[str, Any]]]:
    t = TRADERS[who]
    return [
        (f"/v1/accounts/{t}/balances", {}),
        (f"/v1/accounts/{t}/fills", {}),
        (f"/v1/accounts/{t}/deposits", {}),
        (f"/v1/accounts/{t}/withdrawals", {}),
        ("/v1/orders", {"trader": t}),
        (f"/v1/orders/{order_hash}", {}),
    ]


def _error(answer: Any) -> str:
    code: str = answer.json()["error"]["code"]
    return code


def _session(who: int, *, expiry: int, scope: str = "read", key: str | None = None) -> str:
    msg = Session(trader=TRADERS[who], scope=scope, expiry=expiry)
    return encode_token(msg, sign(msg, DOMAIN, key or KEYS[who]).to_bytes())


def test_private_reads_need_the_traders_session(api: Harness) -> None:
    order = api.order(0, Side.BUY, PRICE, ONE)
    assert api.place(order).status_code == 200
    api.flush()
    h = "0x" + digest(order, DOMAIN).hex()
    mine = {HEADER: session_token(TRADERS[0], KEYS[0], DOMAIN)}
    theirs = {HEADER: session_token(TRADERS[1], KEYS[1], DOMAIN)}
    for path, params in _private_paths(api, 0, h):
        bare = api.client.get(path, params=params)
        assert bare.status_code == 401, (path, bare.text)
        assert _error(bare) == "SESSION_REQUIRED"
        assert HEADER in bare.json()["error"]["message"]
        ok = api.client.get(path, params=params, headers=mine)
        assert ok.status_code == 200, (path, ok.text)
        other = api.client.get(path, params=params, headers=theirs)
        if path.startswith("/v1/orders/0x"):
            # another trader's order hash answers as an unknown one: existence is not leaked
            assert (other.status_code, _error(other)) == (404, "ORDER_NOT_FOUND")
        else:
            assert (other.status_code, _error(other)) == (403, "SESSION_FORBIDDEN"), path
    listed = api.client.get("/v1/orders", params={"trader": TRADERS[0]}, headers=mine).json()
    assert [o["orderHash"] for o in listed["orders"]] == [h]
    # the operator's token reads any trader
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert api.client.get(f"/v1/accounts/{TRADERS[2]}/balances", headers=admin).status_code == 200
    wrong = {"Authorization": "Bearer nope"}
    assert _error(api.client.get(f"/v1/accounts/{TRADERS[2]}/balances", headers=wrong)) == (
        "SESSION_REQUIRED"
    )


def test_public_market_data_stays_open(api: Harness) -> None:
    for path in ("/v1/info", "/v1/markets", f"/v1/markets/{MARKET}/book", "/v1/tickers"):
        assert api.client.get(path).status_code == 200, path
    # a market's orders are everyone's private data; its public view is the book
    answer = api.client.get("/v1/orders", params={"market": MARKET})
    assert (answer.status_code, _error(answer)) == (400, "INVALID_REQUEST")


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: _session(0, expiry=int(time.time()) - 1), "SESSION_INVALID"),  # expired
        (lambda: _session(0, expiry=int(time.time()) + 7_200), "SESSION_INVALID"),  # too long
        (lambda: _session(0, expiry=int(time.time()) + 60, scope="trade"), "SESSION_INVALID"),
        (lambda: _session(0, expiry=int(time.time()) + 60, key=KEYS[1]), "INVALID_SIGNATURE"),
        (lambda: "not base64 !", "SESSION_INVALID"),
        (lambda: base64.urlsafe_b64encode(b"[1, 2]").decode(), "SESSION_INVALID"),
        (
            lambda: base64.urlsafe_b64encode(
                orjson.dumps({"session": {"trader": TRADERS[0]}, "signature": "0x00"})
            ).decode(),
            "SESSION_INVALID",
        ),
        (lambda: "A" * 5_000, "SESSION_INVALID"),
    ],
    ids=["expired", "too-long-lived", "scope", "signer", "encoding", "shape", "fields", "size"],
)
def test_bad_sessions_are_refused_with_a_clear_code(api: Harness, make: Any, code: str) -> None:
    answer = api.client.get(f"/v1/accounts/{TRADERS[0]}/balances", headers={HEADER: make()})
    assert answer.status_code == 401, answer.text
    assert _error(answer) == code
    assert answer.json()["error"]["message"]


def test_a_session_for_another_exchange_is_refused(api: Harness) -> None:
    elsewhere = Domain(DOMAIN.chain_id, "0x" + "12" * 20)
    assert elsewhere.verifying_contract != EXCHANGE
    token = session_token(TRADERS[0], KEYS[0], elsewhere)
    answer = api.client.get(f"/v1/accounts/{TRADERS[0]}/balances", headers={HEADER: token})
    assert (answer.status_code, _error(answer)) == (401, "INVALID_SIGNATURE")


def test_a_verified_session_is_not_recovered_again(api: Harness) -> None:
    token = session_token(TRADERS[0], KEYS[0], DOMAIN)
    verifier = api.ctx.read_sessions
    calls = 0
    real = verifier._verify

    def counting(token: str, now: int) -> Session:
        nonlocal calls
        calls += 1
        return real(token, now)

    verifier._verify = counting  # type: ignore[method-assign]
    for _ in range(5):
        path = f"/v1/accounts/{TRADERS[0]}/balances"
        assert api.client.get(path, headers={HEADER: token}).status_code == 200
    assert calls == 1


def test_private_channels_need_the_traders_session(api: Harness) -> None:
    channel = f"orders:{TRADERS[0]}"
    with api.client.websocket_connect("/v1/ws") as ws:
        ws.send_json({"op": "subscribe", "channel": channel})
        answer = ws.receive_json()
        assert (answer["type"], answer["code"]) == ("error", "SESSION_REQUIRED")
        ws.send_json({"op": "subscribe", "channel": f"trades:{MARKET}"})  # public: open
        assert ws.receive_json()["type"] == "subscribed"
        # another trader's session does not open this trader's channel
        ws.send_json({"op": "auth", "session": session_token(TRADERS[1], KEYS[1], DOMAIN)})
        assert ws.receive_json() == {"type": "authenticated", "trader": TRADERS[1]}
        ws.send_json({"op": "subscribe", "channel": channel})
        assert ws.receive_json()["code"] == "SESSION_FORBIDDEN"
        ws.send_json({"op": "auth", "session": "garbage"})
        assert ws.receive_json()["code"] == "SESSION_INVALID"
        ws.send_json({"op": "auth", "session": session_token(TRADERS[0], KEYS[0], DOMAIN)})
        assert ws.receive_json()["type"] == "authenticated"
        ws.send_json({"op": "subscribe", "channel": channel})
        assert ws.receive_json()["type"] == "subscribed"
        api.place(api.order(0, Side.BUY, PRICE, ONE))
        update = ws.receive_json()
        assert (update["type"], update["channel"]) == ("update", channel)


@pytest.fixture
def fast_heartbeat(tmp_path: Path) -> Iterator[Harness]:
    with running_api(tmp_path, api_ws_heartbeat_s=0.2) as harness:
        yield harness


def test_a_private_subscription_ends_when_its_session_expires(fast_heartbeat: Harness) -> None:
    h = fast_heartbeat
    channel = f"balances:{TRADERS[0]}"
    token = _session(0, expiry=int(time.time()) + 2)
    with h.client.websocket_connect("/v1/ws", headers={HEADER: token}) as ws:
        ws.send_json({"op": "subscribe", "channel": channel})
        assert ws.receive_json()["type"] == "subscribed"
        deadline = time.monotonic() + 10
        while True:
            assert time.monotonic() < deadline, "the subscription outlived its session"
            msg = ws.receive_json()
            if msg["type"] == "error":
                break
        assert (msg["code"], msg["channel"]) == ("SESSION_INVALID", channel)
        beat = ws.receive_json()
        while beat["type"] != "heartbeat":
            beat = ws.receive_json()
        assert channel not in beat["seqs"]
