"""The OpenAPI document tells the truth: named operations, a schema for every answer, the
error body per status each route can really give, request schemas and security; and the real
answers of every route, success and errors, validate against it (tests/unit/api/contract.py,
which the harness also applies to every answer of every API test)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from backend.api.openapi import ADMIN_SCHEME, SESSION_SCHEME
from backend.api.sessions import HEADER
from backend.db.models import ReconciliationRun
from backend.domain.types import Side, TimeInForce
from backend.eip712.hashing import digest
from backend.eip712.messages import Cancel, Withdrawal
from backend.eip712.parsing import message_to_json
from tests.unit.api.contract import Contract, ContractError
from tests.unit.api.harness import (
    DOMAIN,
    KEYS,
    LOT,
    PRICE,
    TRADERS,
    USDC,
    WETH,
    Harness,
    running_api,
)

ADMIN_TOKEN = "contract-test-admin-token"
WRITE_ONLY_CODES = {"NONCE_REUSED", "PAYLOAD_TOO_LARGE", "INSUFFICIENT_BALANCE",
                    "RATE_LIMITER_UNAVAILABLE", "DUPLICATE_CLIENT_ORDER_ID"}  # fmt: skip


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Harness]:
    with running_api(tmp_path, admin_token=ADMIN_TOKEN) as harness:
        yield harness


def _doc(api: Harness) -> dict[str, Any]:
    doc: dict[str, Any] = api.client.get("/openapi.json").json()
    return doc


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield method.upper(), path, op


def test_the_document_names_operations_and_describes_every_answer(api: Harness) -> None:
    doc = _doc(api)
    assert "HTTPValidationError" not in json.dumps(doc)
    ids = [op["operationId"] for _m, _p, op in _operations(doc)]
    assert len(ids) == len(set(ids))
    assert {"place_order", "cancel_order", "request_withdrawal"} <= set(ids)
    for method, path, op in _operations(doc):
        where = f"{method} {path}"
        assert "_v1_" not in op["operationId"], where
        assert not op["operationId"].endswith(("_get", "_post", "_delete")), where
        for status, response in op["responses"].items():
            content = response.get("content", {})
            assert content, f"{where} {status}: no content"
            for media in content.values():
                assert media.get("schema"), f"{where} {status}: empty schema"
            if int(status) >= 400 and path != "/ready":  # /ready's 503 is its own report
                assert content["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/ErrorBody"
                }, where
                assert content["application/json"]["examples"], where
        if method in ("POST", "DELETE"):
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            body = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
            assert body["required"], where
        else:
            assert "requestBody" not in op, where
            codes = {
                code
                for status, response in op["responses"].items()
                for code in response.get("content", {}).get("application/json", {})
                .get("examples", {})
            }  # fmt: skip
            assert not codes & WRITE_ONLY_CODES, f"{where} advertises write errors"
        private = path.startswith("/v1/accounts/") or (method == "GET" and "/orders" in path)
        if private:
            assert op["security"] == [{SESSION_SCHEME: []}, {ADMIN_SCHEME: []}], where
        elif path.startswith("/v1/admin/"):
            assert op["security"] == [{ADMIN_SCHEME: []}], where
        else:
            assert "security" not in op, where
    schemes = doc["components"]["securitySchemes"]
    assert schemes[SESSION_SCHEME] == {**schemes[SESSION_SCHEME], "type": "apiKey",
                                       "in": "header", "name": "X-Hybridex-Session"}  # fmt: skip
    assert schemes[ADMIN_SCHEME]["scheme"] == "bearer"
    assert doc["components"]["schemas"]["OrderOutcome"]["examples"]


def test_the_checker_refuses_what_the_document_does_not_say(api: Harness) -> None:
    contract = Contract(_doc(api))
    with pytest.raises(ContractError, match="status not in the document"):
        contract.check("GET", "/v1/markets", 409, "application/json", b"{}")
    with pytest.raises(ContractError, match="Additional properties"):
        contract.check("GET", "/health", 200, "application/json", b'{"status":"ok","x":1}')
    err = b'{"error":{"code":"NONCE_REUSED","message":"m"}}'
    with pytest.raises(ContractError, match="not declared for this status"):
        contract.check("GET", "/v1/markets/X", 404, "application/json", err)


def _withdrawal(
    who: int, amount: int, nonce: int, key: str | None = None, expiry: int | None = None
) -> dict[str, Any]:
    expiry = int(time.time()) + 3_600 if expiry is None else expiry
    msg = Withdrawal(TRADERS[who], USDC, amount, nonce, expiry)
    return {"withdrawal": message_to_json(msg), "signature": Harness.signed(msg, key or KEYS[who])}


def test_every_route_answers_as_documented(api: Harness) -> None:
    c = api.client
    t0, t1 = TRADERS[0], TRADERS[1]
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    # readiness, liveness, metrics, info
    assert c.get("/health").status_code == 200
    assert c.get("/ready").status_code == 200
    assert c.get("/metrics").status_code == 200
    assert c.get("/v1/info").status_code == 200

    async def down() -> None:
        raise ConnectionError("down")

    api.ctx.readiness["database"] = down
    assert c.get("/ready").status_code == 503
    # market data
    for path, status in [
        ("/v1/markets", 200), ("/v1/markets/WETH-USDC", 200), ("/v1/markets/NOPE", 404),
        ("/v1/markets/WETH-USDC/book", 200), ("/v1/markets/WETH-USDC/book?depth=0", 400),
        ("/v1/markets/NOPE/book", 404), ("/v1/markets/WETH-USDC/trades", 200),
        ("/v1/markets/WETH-USDC/trades?limit=0", 400), ("/v1/markets/NOPE/trades", 404),
        ("/v1/markets/WETH-USDC/ticker", 200), ("/v1/markets/NOPE/ticker", 404),
        ("/v1/tickers", 200), ("/v1/markets/WETH-USDC/candles", 200),
        ("/v1/markets/WETH-USDC/candles?from=100&to=50", 400), ("/v1/markets/NOPE/candles", 404),
    ]:  # fmt: skip
        assert c.get(path).status_code == status, path
    # placing orders: accepted, matched, and each kind of refusal
    maker = api.order(0, Side.SELL)
    assert api.place(maker).status_code == 200
    taker = api.order(1, Side.BUY, amount=LOT * 10)
    assert api.place(taker).json()["status"] == "filled"
    assert api.place(api.order(1, Side.BUY, price=PRICE + 1)).json()["error"]["code"] == (
        "INVALID_TICK"
    )
    posted = api.order(1, Side.BUY, tif=TimeInForce.POST_ONLY)
    assert api.place(posted).status_code == 422
    assert c.post("/v1/orders", json={"order": {}}).status_code == 400
    forged = api.order(0, Side.BUY, price=PRICE - 100 * 10**4)
    assert c.post("/v1/orders", json=api.order_body(forged, key=KEYS[1])).status_code == 401
    assert api.place(api.order(0, Side.BUY, base=USDC, quote=WETH)).status_code == 404
    reused = api.order(0, Side.BUY, price=PRICE - 10**4, nonce=maker.nonce)
    assert api.place(reused).status_code == 409
    assert api.place(api.order(5, Side.BUY, price=PRICE - 10**4)).status_code == 422
    assert c.post("/v1/orders", content=b"x" * 10**6).status_code == 413
    # reading orders: the owner's session, none, another's session, unknown ones
    h_maker = api.place(maker).json()["orderHash"]
    assert c.get(f"/v1/orders/{h_maker}", headers=api.as_trader(0)).status_code == 200
    assert c.get(f"/v1/orders/{h_maker}", headers=admin).status_code == 200
    assert c.get(f"/v1/orders/{h_maker}").status_code == 401
    assert c.get(f"/v1/orders/{h_maker}", headers=api.as_trader(1)).status_code == 404
    assert c.get(f"/v1/orders/{h_maker}", headers={HEADER: "garbage"}).status_code == 401
    assert c.get("/v1/orders/0x12", headers=api.as_trader(0)).status_code == 400
    assert c.get(f"/v1/orders?trader={t0}", headers=api.as_trader(0)).status_code == 200
    assert c.get("/v1/orders", headers=api.as_trader(0)).status_code == 400
    assert c.get(f"/v1/orders?trader={t0}", headers=api.as_trader(1)).status_code == 403
    assert c.get(f"/v1/orders?trader={t0}&market=NOPE", headers=api.as_trader(0)).status_code == (
        404
    )
    # cancelling
    resting = api.order(0, Side.BUY, price=PRICE - 10**6)
    assert api.place(resting).status_code == 200
    assert api.cancel(resting, who=1).status_code == 404  # another's order: not found
    h_resting = "0x" + digest(resting, DOMAIN).hex()
    bad = Cancel(t0, digest(resting, DOMAIN))
    forged_cancel = {"cancel": message_to_json(bad), "signature": api.signed(bad, KEYS[1])}
    assert c.request("DELETE", f"/v1/orders/{h_resting}", json=forged_cancel).status_code == 401
    assert api.cancel(resting).json()["status"] == "cancelled"
    assert api.cancel(api.order(0, Side.BUY)).status_code == 404
    assert c.request("DELETE", f"/v1/orders/{h_maker}", json={}).status_code == 400
    assert api.cancel_all(0, 1).json()["status"] == "applied"
    assert api.cancel_all(0, 1, every_market=True).status_code == 200
    assert c.post("/v1/orders/cancel-all", json={"cancelAll": 1}).status_code == 400
    # the dead-man's switch: set, cleared, too soon, a stale nonce, signed by another key
    soon = int(time.time()) + 60
    assert api.schedule_cancel(0, soon, 1).json()["status"] == "scheduled"
    assert api.schedule_cancel(0, 0, 2).json()["status"] == "cleared"
    assert api.schedule_cancel(0, int(time.time()), 3).status_code == 400
    assert api.schedule_cancel(0, soon, 2).status_code == 409
    assert api.schedule_cancel(0, soon, 4, key=KEYS[1]).status_code == 401
    # batches: each item's answer (success and errors) against the document's union
    batch = api.batch(
        api.order_body(api.order(0, Side.BUY, price=PRICE - 2 * 10**6)),
        api.order_body(api.order(0, Side.BUY, base=USDC, quote=WETH)),
        api.cancel_body(api.order(0, Side.BUY, price=PRICE - 2 * 10**6, nonce=maker.nonce)),
    )
    assert [r["status"] for r in batch.json()["results"]] == [200, 404, 404]
    assert c.post("/v1/orders/batch", json={"items": []}).status_code == 400
    # private account reads
    for kind in ("balances", "fills", "deposits", "withdrawals"):
        base = f"/v1/accounts/{t0}/{kind}"
        assert c.get(base, headers=api.as_trader(0)).status_code == 200, kind
        assert c.get(base).status_code == 401, kind
        assert c.get(base, headers=api.as_trader(1)).status_code == 403, kind
        assert c.get(f"/v1/accounts/0x12/{kind}", headers=admin).status_code == 400, kind
    assert c.get(f"/v1/accounts/{t1}/fills", headers=api.as_trader(1)).json()["fills"]
    # withdrawals
    assert c.post("/v1/withdrawals", json=_withdrawal(0, 10**6, 7)).status_code == 200
    assert c.post("/v1/withdrawals", json=_withdrawal(0, 2 * 10**6, 7)).status_code == 409
    assert c.post("/v1/withdrawals", json=_withdrawal(0, 10**20, 8)).status_code == 422
    assert c.post("/v1/withdrawals", json=_withdrawal(0, 10**6, 9, KEYS[1])).status_code == 401
    assert c.post("/v1/withdrawals", json={"withdrawal": {}}).status_code == 400
    expired = _withdrawal(0, 10**6, 10, expiry=int(time.time()) + 5)
    refused = c.post("/v1/withdrawals", json=expired)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "EXPIRED"
    assert c.get(f"/v1/accounts/{t0}/withdrawals", headers=api.as_trader(0)).json()["withdrawals"]
    # the operator's report
    assert c.get("/v1/admin/reconciliation").status_code == 401
    assert c.get("/v1/admin/reconciliation", headers=admin).status_code == 404
    with api.sessions.begin() as s:
        s.execute(insert(ReconciliationRun).values(
            block_number=12, accounts=4, discrepancies=0, clean=True, duration_ms=3,
            report=json.dumps({"block": 12, "accounts": 4, "discrepancies": []}),
        ))  # fmt: skip
    assert c.get("/v1/admin/reconciliation", headers=admin).status_code == 200

    assert api.contract is not None
    seen = api.contract.seen
    answered = {(m, p) for m, p, status, _ in seen if status < 300}
    documented = {(m, p) for m, p, _ in _operations(_doc(api))}
    assert documented - answered == set()
    expected_errors = {
        ("GET", "/ready", 503, None),
        ("POST", "/v1/orders", 400, "INVALID_TICK"),
        ("POST", "/v1/orders", 400, "INVALID_REQUEST"),
        ("POST", "/v1/orders", 401, "INVALID_SIGNATURE"),
        ("POST", "/v1/orders", 404, "UNKNOWN_MARKET"),
        ("POST", "/v1/orders", 409, "NONCE_REUSED"),
        ("POST", "/v1/orders", 413, "PAYLOAD_TOO_LARGE"),
        ("POST", "/v1/orders", 422, "INSUFFICIENT_BALANCE"),
        ("POST", "/v1/orders", 422, "POST_ONLY_WOULD_TAKE"),
        ("GET", "/v1/orders/{order_hash}", 401, "SESSION_REQUIRED"),
        ("GET", "/v1/orders/{order_hash}", 401, "SESSION_INVALID"),
        ("GET", "/v1/orders/{order_hash}", 404, "ORDER_NOT_FOUND"),
        ("GET", "/v1/orders", 403, "SESSION_FORBIDDEN"),
        ("GET", "/v1/orders", 404, "UNKNOWN_MARKET"),
        ("DELETE", "/v1/orders/{order_hash}", 401, "INVALID_SIGNATURE"),
        ("DELETE", "/v1/orders/{order_hash}", 404, "ORDER_NOT_FOUND"),
        ("POST", "/v1/orders/cancel-all", 400, "INVALID_REQUEST"),
        ("POST", "/v1/orders/schedule-cancel", 400, "SCHEDULE_TOO_SOON"),
        ("POST", "/v1/orders/schedule-cancel", 409, "NONCE_REUSED"),
        ("POST", "/v1/orders/schedule-cancel", 401, "INVALID_SIGNATURE"),
        ("GET", "/v1/accounts/{address}/balances", 401, "SESSION_REQUIRED"),
        ("GET", "/v1/accounts/{address}/withdrawals", 403, "SESSION_FORBIDDEN"),
        ("POST", "/v1/withdrawals", 409, "NONCE_REUSED"),
        ("POST", "/v1/withdrawals", 422, "INSUFFICIENT_BALANCE"),
        ("POST", "/v1/withdrawals", 401, "INVALID_SIGNATURE"),
        ("GET", "/v1/admin/reconciliation", 401, "ADMIN_UNAUTHORIZED"),
        ("GET", "/v1/admin/reconciliation", 404, "RECONCILIATION_NOT_RUN"),
    }
    assert expected_errors - seen == set()


def test_edge_refusals_are_documented(tmp_path: Path) -> None:
    """The per-IP bucket answers 429 on every /v1 route; a limiter that is down refuses
    orders with 503 (reads pass)."""
    with running_api(tmp_path, api_rate_ip_burst=1, api_rate_ip_per_s=0.001) as api:
        api.client.get("/v1/info")
        assert api.client.get("/v1/info").status_code == 429
        assert api.client.get("/v1/markets").status_code == 429
        assert api.contract is not None
        assert ("GET", "/v1/markets", 429, "RATE_LIMITED") in api.contract.seen
