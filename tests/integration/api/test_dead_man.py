"""The dead-man's switch and cancel-on-disconnect against the production deployment
(`hybridex engine` + `hybridex api`, PostgreSQL, Redis): a ScheduleCancel fires, bad ones
are refused with stable codes, an authenticated cancel-on-disconnect fires when the
connection closes, and — journaled in the engine — when its API worker is SIGKILLed."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from eth_account import Account
from websockets.sync.client import connect

from backend.api.sessions import HEADER, session_token
from backend.domain.types import Side, TimeInForce
from backend.eip712.domain import Domain
from backend.eip712.messages import Message, Order, ScheduleCancel
from backend.eip712.parsing import message_to_json
from backend.eip712.signing import sign
from tests.conftest import PG_ADMIN_URL, REDIS_URL
from tests.load import bench_api

pytestmark = pytest.mark.integration


B = bench_api()
DOMAIN = Domain(B.CHAIN_ID, B.EXCHANGE)


@pytest.fixture(scope="module")
def stack() -> Iterator[Any]:
    with B.running_stack(workers=2, pg_admin_url=PG_ADMIN_URL, redis_url=REDIS_URL) as s:
        yield s


def _key(i: int) -> bytes:
    key: bytes = B.trader_key(i)
    return key


def _addr(i: int) -> str:
    return str(Account.from_key(_key(i)).address)


def _body(name: str, msg: Message, key: bytes) -> dict[str, Any]:
    return {name: message_to_json(msg), "signature": "0x" + sign(msg, DOMAIN, key).to_bytes().hex()}


def _url(stack: Any, path: str) -> str:
    return f"http://127.0.0.1:{stack.api_port}{path}"


def _bid(stack: Any, who: int, nonce: int) -> str:
    order = Order(_addr(who), B.WETH, B.USDC, Side.BUY, B.MID - 100 * B.TICK - nonce * B.TICK,
                  B.LOT, TimeInForce.GTC, nonce, 0)  # fmt: skip
    r = httpx.post(_url(stack, "/v1/orders"), json=_body("order", order, _key(who)), timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "open"
    return str(r.json()["orderHash"])


def _status(stack: Any, who: int, order_hash: str) -> str:
    headers = {HEADER: session_token(_addr(who), _key(who), DOMAIN)}
    r = httpx.get(_url(stack, f"/v1/orders/{order_hash}"), headers=headers, timeout=10)
    return str(r.json().get("status")) if r.status_code == 200 else f"http {r.status_code}"


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 20) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(what)
        time.sleep(0.1)
    return time.monotonic() - start


def _schedule(stack: Any, who: int, at: int, nonce: int, key: bytes | None = None) -> Any:
    body = _body("scheduleCancel", ScheduleCancel(_addr(who), at, nonce), key or _key(who))
    return httpx.post(_url(stack, "/v1/orders/schedule-cancel"), json=body, timeout=10)


def test_a_schedule_cancel_fires_and_bad_ones_are_refused_with_stable_codes(stack: Any) -> None:
    mine = [_bid(stack, 0, 1_000 + i) for i in range(3)]
    other = _bid(stack, 1, 1_000)
    now = int(time.time())
    bad_sig = _schedule(stack, 0, now + 60, 1, key=_key(1))
    too_soon = _schedule(stack, 0, now - 1, 1)
    assert (bad_sig.status_code, bad_sig.json()["error"]["code"]) == (401, "INVALID_SIGNATURE")
    assert (too_soon.status_code, too_soon.json()["error"]["code"]) == (400, "SCHEDULE_TOO_SOON")
    ok = _schedule(stack, 0, now + 6, 5)
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "scheduled"
    stale = _schedule(stack, 0, now + 600, 5)
    assert (stale.status_code, stale.json()["error"]["code"]) == (409, "NONCE_REUSED")
    assert all(_status(stack, 0, h) == "open" for h in mine)
    _wait(lambda: all(_status(stack, 0, h) == "cancelled" for h in mine), "the switch fired")
    assert time.time() >= now + 6
    assert _status(stack, 1, other) == "open"


def _cod_connection(stack: Any, who: int, timeout_s: int) -> Any:
    token = session_token(_addr(who), _key(who), DOMAIN)
    ws = connect(f"ws://127.0.0.1:{stack.api_port}/v1/ws", additional_headers={HEADER: token})
    ws.send(orjson.dumps({"op": "cancelOnDisconnect", "id": 1, "enabled": True,
                          "timeoutS": timeout_s}).decode())  # fmt: skip
    while True:
        msg = orjson.loads(ws.recv(timeout=10))
        if msg["type"] == "result":
            assert msg["status"] == 200, msg
            assert msg["body"]["trader"] == _addr(who)
            return ws


def test_cancel_on_disconnect_fires_when_the_connection_closes(stack: Any) -> None:
    ws = _cod_connection(stack, 2, timeout_s=3)
    orders = [_bid(stack, 2, 2_000 + i) for i in range(2)]  # over REST: every order counts
    time.sleep(4)  # past one timeout: the renewals keep the orders
    assert all(_status(stack, 2, h) == "open" for h in orders)
    ws.close()
    took = _wait(lambda: all(_status(stack, 2, h) == "cancelled" for h in orders), "fired")
    assert took < 2.5  # at once, not at the timeout


def test_cancel_on_disconnect_fires_at_the_timeout_when_the_api_worker_dies(stack: Any) -> None:
    ws = _cod_connection(stack, 3, timeout_s=3)
    order = _bid(stack, 3, 3_000)
    victims = stack.api_worker_pids()  # whichever holds the connection: both
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    with pytest.raises(Exception):  # noqa: B017, PT011 - the socket is gone with its worker
        ws.recv(timeout=10)
    _wait(lambda: len(set(stack.api_worker_pids()) - set(victims)) == 2,
          "the workers were replaced", timeout=30)  # fmt: skip
    B.wait_market_listed(stack.api_port)
    _wait(lambda: _status(stack, 3, order) == "cancelled", "the engine timer fired")
    assert time.monotonic() - killed_at <= 3 + 10
