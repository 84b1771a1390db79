"""POST /v1/orders/batch: items in the order sent, each answered as its single endpoint
answers, a bad item never failing the others, duplicates one order, limits counting items."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backend.api.ratelimit import RedisRateLimiter
from backend.chain.anvil import free_port
from backend.domain.types import Side
from tests.unit.api.harness import MARKET, ONE, PRICE, TICK, TRADERS, Harness, running_api


def _book(h: Harness) -> dict[str, list[list[str]]]:
    book: dict[str, list[list[str]]] = h.client.get(f"/v1/markets/{MARKET}/book").json()
    return book


def _codes(answer: Any) -> list[tuple[int, str]]:
    return [
        (r["status"], r["body"]["error"]["code"] if "error" in r["body"] else r["body"]["status"])
        for r in answer.json()["results"]
    ]


def test_items_apply_in_order_and_a_bad_item_fails_alone(api: Harness) -> None:
    ask = api.order(0, Side.SELL, PRICE, ONE)
    bid = api.order(1, Side.BUY, PRICE, ONE // 4)  # crosses the ask placed just before it
    forged = api.order_body(api.order(2, Side.BUY, PRICE - TICK), key=None)
    forged["signature"] = api.order_body(api.order(3, Side.BUY, PRICE - TICK))["signature"]
    unknown = api.order(0, Side.BUY, PRICE - TICK, quote=TRADERS[3])  # no such market
    rest = api.order(2, Side.BUY, PRICE - 2 * TICK)
    answer = api.batch(
        api.order_body(ask), api.order_body(bid), forged, api.order_body(unknown),
        {"cancel": "not an object", "signature": "0x"}, api.order_body(rest),
        api.cancel_body(rest), 17,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert _codes(answer) == [
        (200, "open"),
        (200, "filled"),
        (401, "INVALID_SIGNATURE"),
        (404, "UNKNOWN_MARKET"),
        (400, "INVALID_ORDER"),  # what DELETE /v1/orders/{hash} answers this body
        (200, "open"),
        (200, "cancelled"),
        (400, "INVALID_REQUEST"),
    ]
    results = answer.json()["results"]
    assert results[1]["body"]["fills"][0]["makerOrderHash"] == results[0]["body"]["orderHash"]
    # The book is what the good items made, in their order: 3/4 of the ask left, no bid.
    assert _book(api) == {**_book(api), "asks": [[str(PRICE), str(ONE - ONE // 4)]], "bids": []}
    # Each item's answer is the single endpoint's: the same order posted alone answers alike.
    again = api.place(rest)
    assert again.status_code == results[6]["status"]
    assert again.json()["status"] == "cancelled"
    assert again.json()["orderHash"] == results[6]["body"]["orderHash"]


def test_the_same_signed_order_twice_is_one_order(api: Harness) -> None:
    order = api.order(0, Side.BUY, PRICE - TICK, ONE)
    body = api.order_body(order)
    answer = api.batch(body, body)
    assert _codes(answer) == [(200, "open"), (200, "open")]
    hashes = {r["body"]["orderHash"] for r in answer.json()["results"]}
    assert len(hashes) == 1
    assert _codes(api.batch(body)) == [(200, "open")]  # across batches too
    assert _book(api)["bids"] == [[str(PRICE - TICK), str(ONE)]]


def test_empty_oversize_and_malformed_batches_are_refused_whole(api: Harness) -> None:
    body = api.order_body(api.order(0, Side.BUY, PRICE - TICK))
    for bad in ({"items": []}, {"items": [body] * 51}, {"items": body}, {"orders": [body]},
                {"items": [body], "extra": 1}):  # fmt: skip
        answer = api.client.post("/v1/orders/batch", json=bad)
        assert answer.status_code == 400, bad
        assert answer.json()["error"]["code"] == "INVALID_REQUEST"
    assert _book(api)["bids"] == []  # nothing applied


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Harness]:
    with running_api(tmp_path, api_rate_trader_per_s=0.01, api_rate_trader_burst=3,
                     api_rate_ip_per_s=0.01, api_rate_ip_burst=9) as h:  # fmt: skip
        yield h


def test_limits_count_items_and_a_batch_over_them_is_refused_whole(limited: Harness) -> None:
    h = limited
    four = [h.order_body(h.order(0, Side.BUY, PRICE - i * TICK)) for i in range(1, 5)]
    over = h.batch(*four)  # 4 orders, the trader's bucket holds 3
    assert over.status_code == 429
    assert over.json()["error"]["code"] == "RATE_LIMITED"
    assert "4 orders" in over.json()["error"]["message"]
    assert int(over.headers["retry-after"]) >= 1
    assert _book(h)["bids"] == []  # nothing applied
    # The address paid 4 (one per item, refused or not) + 1 (the book): 4 of 9 left. Another
    # trader's 3 orders fit their own bucket.
    three = [h.order_body(h.order(1, Side.BUY, PRICE - i * TICK)) for i in range(1, 4)]
    ok = h.batch(*three)
    assert _codes(ok) == [(200, "open")] * 3
    # 8 of 9 spent: a batch of 2 more items is refused whole.
    cancels = [h.cancel_body(h.order(1, Side.BUY, PRICE - i * TICK)) for i in range(1, 3)]
    assert h.batch(*cancels).status_code == 429


def test_limiter_down_refuses_orders_whole_and_lets_a_batch_of_cancels_pass(api: Harness) -> None:
    orders = [api.order(0, Side.BUY, PRICE - i * TICK) for i in range(1, 3)]
    assert _codes(api.batch(*(api.order_body(o) for o in orders))) == [(200, "open")] * 2
    api.ctx.limiter = RedisRateLimiter.from_url(f"redis://127.0.0.1:{free_port()}/0", "t:")
    refused = api.batch(api.order_body(api.order(0, Side.BUY, PRICE - 5 * TICK)),
                        api.order_body(api.order(0, Side.BUY, PRICE - 6 * TICK)))  # fmt: skip
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "RATE_LIMITER_UNAVAILABLE"
    cancelled = api.batch(*(api.cancel_body(o) for o in orders))
    assert _codes(cancelled) == [(200, "cancelled")] * 2
    assert _book(api)["bids"] == []
