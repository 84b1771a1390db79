"""Order intake through HTTP against the real engine: place, cross, cancel, cancel-all,
idempotent re-post, the 202 path, and order state."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from backend.domain.types import Side, TimeInForce
from backend.eip712.hashing import digest
from backend.engine.client import (
    BookSnapshot,
    EngineOutcomeUnknownError,
    EngineUnavailableError,
    Intake,
    Outcome,
)
from backend.matching.commands import Command
from tests.unit.api.harness import DOMAIN, MARKET, ONE, PRICE, TICK, TRADERS, USDC, WETH, Harness


def test_resting_order_answers_open_and_shows_in_the_book(api: Harness) -> None:
    order = api.order(0, Side.BUY)
    r = api.place(order, clientOrderId="bot-1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["orderHash"] == "0x" + digest(order, DOMAIN).hex()
    assert body["status"] == "open"
    assert body["filled"] == "0"
    assert body["remaining"] == str(ONE)
    assert body["fills"] == []
    assert api.book().bids == [(PRICE, ONE)]

    api.flush()
    got = api.client.get(f"/v1/orders/{body['orderHash']}", headers=api.as_trader(0)).json()
    assert got["status"] == "open"
    assert got["clientOrderId"] == "bot-1"
    assert got["price"] == str(PRICE)
    assert got["side"] == 0
    assert got["trader"] == TRADERS[0]
    listed = api.client.get(
        "/v1/orders", params={"trader": TRADERS[0].lower()}, headers=api.as_trader(0)
    ).json()
    assert [o["orderHash"] for o in listed["orders"]] == [body["orderHash"]]
    filled = {"trader": TRADERS[0], "market": MARKET, "status": "filled"}
    assert api.client.get("/v1/orders", params=filled, headers=api.as_trader(0)).json() == {
        "orders": []
    }


def test_crossing_order_fills_at_the_makers_price(api: Harness) -> None:
    maker = api.order(0, Side.SELL, PRICE, ONE)
    assert api.place(maker).json()["status"] == "open"
    taker = api.order(1, Side.BUY, PRICE + 10 * TICK, ONE // 2)
    r = api.place(taker)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "filled"
    assert body["filled"] == str(ONE // 2)
    [fill] = body["fills"]
    assert fill["price"] == str(PRICE)
    assert fill["amount"] == str(ONE // 2)
    assert fill["quoteAmount"] == str(PRICE // 2)
    assert fill["makerOrderHash"] == "0x" + digest(maker, DOMAIN).hex()
    assert api.book().asks == [(PRICE, ONE // 2)]

    api.flush()
    maker_state = api.client.get(
        f"/v1/orders/0x{digest(maker, DOMAIN).hex()}", headers=api.as_trader(0)
    ).json()
    assert maker_state["status"] == "partially_filled"
    assert maker_state["filled"] == str(ONE // 2)
    trades = api.client.get(f"/v1/markets/{MARKET}/trades").json()["trades"]
    assert [(t["price"], t["amount"], t["takerSide"]) for t in trades] == [
        (str(PRICE), str(ONE // 2), 0)
    ]
    fills = api.client.get(f"/v1/accounts/{TRADERS[1]}/fills", headers=api.as_trader(1)).json()[
        "fills"
    ]
    assert fills[0]["role"] == "taker"
    assert fills[0]["settlement"] == {
        "status": "matched", "batchId": None, "txHash": None, "block": None,
        "failureReason": None,
    }  # fmt: skip


def test_ioc_remainder_is_cancelled(api: Harness) -> None:
    api.place(api.order(0, Side.SELL, PRICE, ONE // 4))
    r = api.place(api.order(1, Side.BUY, PRICE, ONE, tif=TimeInForce.IOC))
    body = r.json()
    assert body["status"] == "cancelled"
    assert body["filled"] == str(ONE // 4)
    assert api.book().bids == []


def test_reposting_the_same_signed_order_is_idempotent(api: Harness) -> None:
    api.place(api.order(0, Side.SELL, PRICE, ONE))
    taker = api.order(1, Side.BUY, PRICE, ONE // 2)
    first = api.place(taker)
    before = api.state()
    again = api.place(taker)
    assert again.status_code == first.status_code == 200
    assert again.json() == first.json()
    assert api.state() == before
    resting = api.order(2, Side.BUY, PRICE - TICK, ONE)
    first = api.place(resting).json()
    assert api.place(resting).json() == first
    assert api.book().bids == [(PRICE - TICK, ONE)]


def test_cancel_by_signed_cancel_releases_the_reservation(api: Harness) -> None:
    order = api.order(0, Side.BUY, PRICE, ONE)
    api.place(order)
    locked = {(t, k): lk for t, k, _tot, lk in api.engine_balances()}
    assert locked[(TRADERS[0], USDC)] == PRICE
    r = api.cancel(order)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert api.book().bids == []
    locked = {(t, k): lk for t, k, _tot, lk in api.engine_balances()}
    assert locked[(TRADERS[0], USDC)] == 0
    again = api.cancel(order)
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "ORDER_NOT_FOUND"


def test_cancel_signed_by_another_trader_is_refused(api: Harness) -> None:
    order = api.order(0, Side.BUY)
    api.place(order)
    h = digest(order, DOMAIN)
    from backend.eip712.messages import Cancel
    from backend.eip712.parsing import message_to_json
    from tests.unit.api.harness import KEYS

    msg = Cancel(TRADERS[0], h)
    body = {"cancel": message_to_json(msg), "signature": api.signed(msg, KEYS[1])}
    r = api.client.request("DELETE", f"/v1/orders/0x{h.hex()}", json=body)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "INVALID_SIGNATURE"
    assert api.book().bids == [(PRICE, ONE)]


def test_cancel_path_hash_must_match_the_signed_hash(api: Harness) -> None:
    a, b = api.order(0, Side.BUY), api.order(0, Side.BUY, PRICE - TICK)
    api.place(a)
    api.place(b)
    r = api.cancel(a)
    assert r.status_code == 200
    from backend.eip712.messages import Cancel
    from backend.eip712.parsing import message_to_json
    from tests.unit.api.harness import KEYS

    msg = Cancel(TRADERS[0], digest(b, DOMAIN))
    body = {"cancel": message_to_json(msg), "signature": api.signed(msg, KEYS[0])}
    r = api.client.request("DELETE", f"/v1/orders/0x{digest(a, DOMAIN).hex()}", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "INVALID_REQUEST"


def test_cancel_all_in_one_market_and_in_every_market(api: Harness) -> None:
    orders = [api.order(0, Side.BUY, PRICE - i * TICK) for i in range(3)]
    for o in orders:
        api.place(o)
    bar = orders[2].nonce  # cancels the first two only
    r = api.cancel_all(0, bar)
    assert r.status_code == 200, r.text
    assert r.json()["cancelled"] == 2
    assert r.json()["market"] == MARKET
    assert api.book().bids == [(PRICE - 2 * TICK, ONE)]
    r = api.cancel_all(0, 10**12, every_market=True)
    assert r.json()["cancelled"] == 1
    assert r.json()["market"] is None
    assert api.book().bids == []
    # an order below the bar is refused afterwards: the trader cancelled it before it arrived
    late = api.place(api.order(0, Side.BUY, nonce=5))
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "ORDER_CANCELLED"


class SlowEngine:
    """The real engine behind a delay longer than the API's timeout."""

    def __init__(self, inner: Any, delay: float) -> None:
        self.inner = inner
        self.delay = delay

    async def submit(
        self, command: Command, *, timeout: float, intake: Intake | None = None
    ) -> Outcome:
        async def slow() -> Outcome:
            await asyncio.sleep(self.delay)
            return await self.inner.submit(command, timeout=5.0, intake=intake)

        task = asyncio.ensure_future(slow())
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            raise EngineOutcomeUnknownError("slow") from None

    async def book(self, market_id: str, depth: int) -> BookSnapshot:
        result: BookSnapshot = await self.inner.book(market_id, depth)
        return result

    async def close(self) -> None:
        return None


def test_a_stalled_engine_answers_the_book_503_not_500(api: Harness) -> None:
    class StalledBook(SlowEngine):
        async def book(self, market_id: str, depth: int) -> BookSnapshot:
            await asyncio.sleep(3_600)
            raise AssertionError("unreachable")

    api.ctx.engine = StalledBook(api.engine, delay=0)
    r = api.client.get(f"/v1/markets/{MARKET}/book")
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "ENGINE_UNAVAILABLE"


def test_slow_engine_answers_202_and_the_outcome_follows(api: Harness) -> None:
    api.ctx.engine = SlowEngine(api.engine, delay=0.3)
    api.ctx.settings = api.settings.model_copy(update={"api_engine_timeout_s": 0.05})
    order = api.order(0, Side.BUY)
    r = api.place(order)
    assert r.status_code == 202, r.text
    assert r.json() == {"orderHash": "0x" + digest(order, DOMAIN).hex(), "status": "pending"}
    api.run(asyncio.sleep, 0.5)
    api.flush()
    state = api.client.get(f"/v1/orders/{r.json()['orderHash']}", headers=api.as_trader(0))
    assert state.status_code == 200
    assert state.json()["status"] == "open"
    # posting it again once the engine is back gives the stored answer
    api.ctx.engine = api.engine
    again = api.place(order)
    assert again.status_code == 200
    assert again.json()["status"] == "open"


def test_unknown_order_is_404(api: Harness) -> None:
    r = api.client.get("/v1/orders/0x" + "ab" * 32)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "ORDER_NOT_FOUND"
    assert api.client.get("/v1/orders/0x12").json()["error"]["code"] == "INVALID_REQUEST"
    assert api.client.get("/v1/orders").status_code == 400
    assert (
        api.client.get(
            "/v1/orders", params={"trader": TRADERS[0], "status": "nope"}, headers=api.as_trader(0)
        ).status_code
        == 400
    )


def test_wrong_tokens_order_is_unknown_market(api: Harness) -> None:
    r = api.place(api.order(0, Side.BUY, base=USDC, quote=WETH))
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "UNKNOWN_MARKET"


class UnreachableEngine:
    """An engine that cannot take the command at all (down, restarting, shutting down)."""

    async def submit(
        self, command: Command, *, timeout: float, intake: Intake | None = None
    ) -> Outcome:
        raise EngineUnavailableError("cannot reach the engine")

    async def book(self, market_id: str, depth: int) -> BookSnapshot:
        raise EngineUnavailableError("cannot reach the engine")

    async def close(self) -> None:
        return None


def test_unreachable_engine_answers_503_and_a_retry_succeeds(api: Harness) -> None:
    order = api.order(0, Side.BUY)
    api.ctx.engine = UnreachableEngine()
    r = api.place(order)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "ENGINE_UNAVAILABLE"
    api.ctx.engine = api.engine
    assert api.book().bids == []  # nothing was sent, so nothing rests
    again = api.place(order)
    assert again.status_code == 200
    assert again.json()["status"] == "open"


def test_order_signing_a_fee_bound_below_the_markets_fees_is_refused(api: Harness) -> None:
    """The contract refuses any fill above an order's signed `maxFeeBps`: an order the market
    may charge more (taker fee 20 bps here) would trade and never settle, so intake refuses it."""
    low = replace(api.order(0, Side.BUY), maxFeeBps=19)
    r = api.place(low)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "FEE_BOUND_TOO_LOW"
    assert "maxFeeBps" in error["message"]
    assert "20" in error["message"]
    assert api.book().bids == []


def test_fee_bound_at_the_markets_fees_is_accepted(api: Harness) -> None:
    r = api.place(replace(api.order(0, Side.BUY), maxFeeBps=20))
    assert r.status_code == 200, r.text
    # A post-only order is always the maker: the maker fee (10 bps) is enough.
    post_only = replace(
        api.order(1, Side.SELL, PRICE + TICK, tif=TimeInForce.POST_ONLY), maxFeeBps=10
    )
    r = api.place(post_only)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "open"
