"""Info, markets, book, trades, tickers, candles, balances, fills, deposits, health, metrics."""

from __future__ import annotations

import time

from backend.domain.types import Side
from backend.eip712.messages import EIP712_TYPES
from tests.unit.api.harness import (
    CHAIN_ID,
    EXCHANGE,
    FUNDS,
    LOT,
    MARKET,
    ONE,
    PRICE,
    TICK,
    TRADERS,
    USDC,
    WETH,
    Harness,
)  # fmt: skip


def test_info_publishes_the_signing_domain_and_types(api: Harness) -> None:
    body = api.client.get("/v1/info").json()
    assert body["chainId"] == CHAIN_ID
    assert body["exchangeAddress"] == EXCHANGE
    assert body["eip712"]["domain"] == {
        "name": "Hybridex", "version": "1", "chainId": CHAIN_ID, "verifyingContract": EXCHANGE,
    }  # fmt: skip
    assert body["eip712"]["types"] == EIP712_TYPES
    assert abs(body["serverTime"] - time.time()) < 5
    assert body["feeCaps"]["maxTakerFeeBps"] > 0
    assert body["cancelDelaySeconds"] == 3_600  # the default HYBRIDEX_CANCEL_DELAY_S


def test_markets_list_sizes_fees_and_state(api: Harness) -> None:
    [m] = api.client.get("/v1/markets").json()["markets"]
    assert m["id"] == MARKET
    assert m["base"] == {"address": WETH, "symbol": "WETH", "decimals": 18}
    assert m["quote"] == {"address": USDC, "symbol": "USDC", "decimals": 6}
    assert (m["tickSize"], m["lotSize"], m["minAmount"]) == (str(TICK), str(LOT), str(LOT))
    assert (m["makerFeeBps"], m["takerFeeBps"], m["state"]) == (10, 20, "ONLINE")


def test_book_ticker_candles_after_trades(api: Harness) -> None:
    api.place(api.order(0, Side.SELL, PRICE, ONE))
    api.place(api.order(0, Side.SELL, PRICE + TICK, ONE))
    api.place(api.order(2, Side.BUY, PRICE - TICK, ONE))
    api.place(api.order(1, Side.BUY, PRICE + TICK, ONE + ONE // 2))
    book = api.client.get(f"/v1/markets/{MARKET}/book", params={"depth": 5}).json()
    assert book["bids"] == [[str(PRICE - TICK), str(ONE)]]
    assert book["asks"] == [[str(PRICE + TICK), str(ONE // 2)]]
    assert book["seq"] > 0
    assert book["feedSeq"] > 0
    api.flush()
    t = api.client.get(f"/v1/markets/{MARKET}/ticker").json()
    assert t["lastPrice"] == str(PRICE + TICK)
    assert (t["bestBid"], t["bestAsk"]) == (str(PRICE - TICK), str(PRICE + TICK))
    assert (t["open24h"], t["high24h"], t["low24h"]) == (str(PRICE), str(PRICE + TICK), str(PRICE))
    assert t["volume24h"] == str(ONE + ONE // 2)
    assert t["change24h"] == str(TICK)
    assert api.client.get("/v1/tickers").json()["tickers"] == [t]
    candles = api.client.get(f"/v1/markets/{MARKET}/candles", params={"interval": "1h"}).json()
    [c] = candles["candles"]
    assert (c["open"], c["high"], c["low"], c["close"]) == (
        str(PRICE), str(PRICE + TICK), str(PRICE), str(PRICE + TICK),
    )  # fmt: skip
    assert c["volume"] == str(ONE + ONE // 2)
    assert c["trades"] == 2
    assert c["time"] % 3600 == 0
    bad = api.client.get(f"/v1/markets/{MARKET}/candles", params={"from": 0, "interval": "1m"})
    assert bad.status_code == 400


def test_balances_show_available_locked_and_pending_settlement(api: Harness) -> None:
    api.place(api.order(0, Side.SELL, PRICE, ONE))
    api.place(api.order(1, Side.BUY, PRICE, ONE // 2))
    api.place(api.order(1, Side.BUY, PRICE - TICK, ONE))
    api.flush()
    rows = api.client.get(
        f"/v1/accounts/{TRADERS[1].lower()}/balances", headers=api.as_trader(1)
    ).json()
    assert rows["address"] == TRADERS[1]
    by_token = {b["token"]: b for b in rows["balances"]}
    usdc, weth = by_token[USDC], by_token[WETH]
    locked_quote = (PRICE - TICK) * ONE // 10**18
    paid = PRICE // 2
    assert usdc["locked"] == str(locked_quote)
    assert usdc["available"] == str(FUNDS[USDC] - paid - locked_quote)
    assert usdc["onChain"] == "0"
    assert usdc["pendingSettlement"] == str(-paid)
    fee = (ONE // 2) * 20 // 10_000  # taker fee in the base received
    assert weth["pendingSettlement"] == str(ONE // 2 - fee)
    assert weth["total"] == str(FUNDS[WETH] + ONE // 2 - fee)
    fills = api.client.get(f"/v1/accounts/{TRADERS[0]}/fills", headers=api.as_trader(0)).json()[
        "fills"
    ]
    assert [(f["role"], f["side"], f["settlement"]["status"]) for f in fills] == [
        ("maker", 1, "matched")
    ]
    assert (
        api.client.get(f"/v1/accounts/{TRADERS[0]}/deposits", headers=api.as_trader(0)).json()[
            "deposits"
        ]
        == []
    )


def test_health_ready_metrics_and_openapi(api: Harness) -> None:
    assert api.client.get("/health").json() == {"status": "ok"}
    assert api.client.get("/ready").json()["status"] == "ok"
    api.place(api.order(0, Side.BUY))
    api.place(api.order(0, Side.BUY, PRICE + 1))
    text = api.client.get("/metrics").text
    assert 'hybridex_api_orders_total{status="open"} 1.0' in text
    assert 'hybridex_api_rejections_total{code="INVALID_TICK"} 1.0' in text
    assert "hybridex_api_request_seconds_bucket" in text
    spec = api.client.get("/openapi.json").json()
    post = spec["paths"]["/v1/orders"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/PlaceOrderBody"}
    components = spec["components"]["schemas"]
    body = components["PlaceOrderBody"]
    assert set(body["properties"]) == {"order", "signature", "clientOrderId"}
    assert body["properties"]["order"] == {"$ref": "#/components/schemas/OrderMessage"}
    assert "price" in components["OrderMessage"]["properties"]
    assert "/v1/ws" not in spec["paths"]
