"""The REST client: reads, signed writes and the read Session for private data."""

from __future__ import annotations

import base64
import json
import time
from typing import Any, TypeVar

import httpx

from hybridex_client.errors import PendingError, error_from
from hybridex_client.models import (
    GTC,
    AccountFill,
    Balance,
    BookSnapshot,
    Cancelled,
    CancelledAll,
    Deposit,
    Info,
    ItemResult,
    Market,
    OrderRecord,
    Placed,
    WithdrawalPosted,
    WithdrawalRecord,
    decode,
)
from hybridex_client.signing import NonceSource, Signer

T = TypeVar("T")
SESSION_HEADER = "X-Hybridex-Session"
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


class Client:
    """One trader's connection to the API (or an anonymous one, without `private_key`).

    `/v1/info` is read on first use: the signing domain and types come from it."""

    def __init__(
        self,
        base_url: str,
        private_key: str | bytes | None = None,
        *,
        timeout: float = 10.0,
        nonces: NonceSource | None = None,
        session_lifetime_s: int = 3_600,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)
        self._key = private_key
        self.nonces = nonces or NonceSource()
        self.session_lifetime_s = session_lifetime_s
        self._info: Info | None = None
        self._signer: Signer | None = None
        self._markets: dict[str, Market] = {}
        self._session: tuple[str, int] | None = None  # (token, expiry)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        private: bool = False,
        accept_pending: bool = False,
    ) -> Any:
        """One call; an error answer raises its `ApiError`, a 202 `PendingError` unless
        `accept_pending`. `private`: with this trader's read Session."""
        headers = {SESSION_HEADER: self.session_token()} if private else None
        query = {k: v for k, v in (params or {}).items() if v is not None}
        r = self.http.request(method, path, json=json_body, params=query, headers=headers)
        body = _json(r)
        if r.status_code == 202 and not accept_pending:
            raise PendingError(str((body or {}).get("orderHash", "")))
        if r.status_code >= 400:
            raise error_from(r.status_code, body, dict(r.headers))
        return body

    def get(self, path: str, *, private: bool = False, **params: Any) -> Any:
        return self.request("GET", path, params=params, private=private)

    @property
    def signer(self) -> Signer:
        if self._signer is None:
            if self._key is None:
                raise ValueError("this client has no private key: it cannot sign")
            info = self.info()
            self._signer = Signer(self._key, info.eip712.domain, info.eip712.types)
        return self._signer

    @property
    def address(self) -> str:
        return self.signer.address

    def session_token(self) -> str:
        """The signed read Session (cached; a new one a minute before it expires)."""
        now = int(time.time())
        if self._session is None or self._session[1] - 60 <= now:
            expiry = now + self.session_lifetime_s
            session = {"trader": self.address, "scope": "read", "expiry": str(expiry)}
            signature = self.signer.sign("Session", session)
            raw = json.dumps({"session": session, "signature": signature}).encode()
            self._session = (base64.urlsafe_b64encode(raw).decode().rstrip("="), expiry)
        return self._session[0]

    def ws_url(self) -> str:
        scheme, _, rest = self.base_url.partition("://")
        return ("wss" if scheme == "https" else "ws") + "://" + rest + "/v1/ws"

    # ------------------------------------------------------------------ public reads

    def info(self) -> Info:
        if self._info is None:
            self._info = decode(self.get("/v1/info"), Info)
        return self._info

    def markets(self) -> list[Market]:
        return [decode(m, Market) for m in _list(self.get("/v1/markets"), "markets")]

    def market(self, market_id: str) -> Market:
        if market_id not in self._markets:
            self._markets[market_id] = decode(self.get(f"/v1/markets/{market_id}"), Market)
        return self._markets[market_id]

    def book(self, market_id: str, depth: int = 50) -> BookSnapshot:
        return decode(self.get(f"/v1/markets/{market_id}/book", depth=depth), BookSnapshot)

    # ------------------------------------------------------------------ private reads

    def balances(self) -> dict[str, Balance]:
        """Per token address (as the API spells it)."""
        body = self.get(f"/v1/accounts/{self.address}/balances", private=True)
        return {b["token"]: decode(b, Balance) for b in body["balances"]}

    def available(self, token: str) -> int:
        for address, balance in self.balances().items():
            if address.lower() == token.lower():
                return balance.available
        return 0

    def orders(
        self,
        market: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        before: int | None = None,
    ) -> list[OrderRecord]:
        body = self.get(
            "/v1/orders", private=True, trader=self.address, market=market,
            status=status, limit=limit, before=before,
        )  # fmt: skip
        return [decode(o, OrderRecord) for o in body["orders"]]

    def open_orders(self, market: str | None = None) -> list[OrderRecord]:
        """Orders still resting (open or partially filled), every page."""
        out: list[OrderRecord] = []
        for status in ("open", "partially_filled"):
            before: int | None = None
            while True:
                page = self.orders(market, status=status, limit=500, before=before)
                out.extend(page)
                if len(page) < 500 or page[-1].accepted_seq is None:
                    break
                before = page[-1].accepted_seq
        return out

    def order(self, order_hash: str) -> OrderRecord:
        return decode(self.get(f"/v1/orders/{order_hash}", private=True), OrderRecord)

    def fills(self, limit: int | None = None, before: int | None = None) -> list[AccountFill]:
        body = self.get(
            f"/v1/accounts/{self.address}/fills", private=True, limit=limit, before=before
        )
        return [decode(f, AccountFill) for f in body["fills"]]

    def withdrawals(self, limit: int | None = None) -> list[WithdrawalRecord]:
        body = self.get(f"/v1/accounts/{self.address}/withdrawals", private=True, limit=limit)
        return [decode(w, WithdrawalRecord) for w in body["withdrawals"]]

    def deposits(self) -> list[Deposit]:
        body = self.get(f"/v1/accounts/{self.address}/deposits", private=True)
        return [decode(d, Deposit) for d in body["deposits"]]

    # ------------------------------------------------------------------ signed writes

    def order_message(
        self,
        market: str | Market,
        side: int,
        price: int,
        amount: int,
        *,
        time_in_force: int = GTC,
        nonce: int | None = None,
        expiry: int = 0,
    ) -> dict[str, Any]:
        """The `Order` message (JSON form) for `market`, with a fresh nonce unless given."""
        m = self.market(market) if isinstance(market, str) else market
        return self.signer.to_json(
            "Order",
            {
                "trader": self.address, "baseToken": m.base.address,
                "quoteToken": m.quote.address, "side": side, "price": price, "amount": amount,
                "timeInForce": time_in_force,
                "nonce": self.nonces.next() if nonce is None else nonce, "expiry": expiry,
            },
        )  # fmt: skip

    def place(
        self,
        market: str | Market,
        side: int,
        price: int,
        amount: int,
        *,
        time_in_force: int = GTC,
        nonce: int | None = None,
        expiry: int = 0,
        client_order_id: str | None = None,
    ) -> Placed:
        """Signs and posts an order. A 202 answers `status` "pending" (not an exception):
        posting the same order again is safe and answers its outcome."""
        order = self.order_message(
            market, side, price, amount, time_in_force=time_in_force, nonce=nonce, expiry=expiry
        )
        return self.post_order(order, client_order_id=client_order_id)

    def order_body(
        self, order: dict[str, Any], *, client_order_id: str | None = None
    ) -> dict[str, Any]:
        """The signed body of `order`: what `POST /v1/orders`, a batch item and the
        WebSocket's `place` take."""
        body: dict[str, Any] = {"order": order, "signature": self.signer.sign("Order", order)}
        if client_order_id is not None:
            body["clientOrderId"] = client_order_id
        return body

    def cancel_body(self, order_hash: str) -> dict[str, Any]:
        """The signed body of a cancel (`DELETE /v1/orders/{hash}`, a batch item, `cancel`)."""
        cancel = {"trader": self.address, "orderHash": order_hash.lower()}
        return {"cancel": cancel, "signature": self.signer.sign("Cancel", cancel)}

    def post_order(self, order: dict[str, Any], *, client_order_id: str | None = None) -> Placed:
        body = self.order_body(order, client_order_id=client_order_id)
        answer = self.request("POST", "/v1/orders", json_body=body, accept_pending=True)
        return decode(answer, Placed)

    def batch(self, items: list[dict[str, Any]]) -> list[ItemResult]:
        """`POST /v1/orders/batch`: up to 50 `order_body` / `cancel_body` items, applied in
        order; each answered on its own (a refused item does not raise: see `ItemResult`)."""
        answer = self.request("POST", "/v1/orders/batch", json_body={"items": items})
        return [decode(r, ItemResult) for r in answer["results"]]

    def order_hash(self, order: dict[str, Any]) -> str:
        """The order's hash (its EIP-712 digest), known before it is posted."""
        return self.signer.digest("Order", order)

    def cancel(self, order_hash: str) -> Cancelled:
        body = self.cancel_body(order_hash)
        answer = self.request(
            "DELETE", f"/v1/orders/{order_hash}", json_body=body, accept_pending=True
        )
        return decode(answer, Cancelled)

    def cancel_all(
        self, market: str | Market | None = None, *, nonce_below: int | None = None
    ) -> CancelledAll:
        """Cancels every order of `market` (None: every market) with a nonce below
        `nonce_below` (default: a fresh nonce, so everything sent so far)."""
        if market is None:
            base = quote = ZERO_ADDRESS
        else:
            m = self.market(market) if isinstance(market, str) else market
            base, quote = m.base.address, m.quote.address
        message = self.signer.to_json(
            "CancelAll",
            {
                "trader": self.address, "baseToken": base, "quoteToken": quote,
                "nonceBelow": self.nonces.next() if nonce_below is None else nonce_below,
            },
        )  # fmt: skip
        body = {"cancelAll": message, "signature": self.signer.sign("CancelAll", message)}
        answer = self.request("POST", "/v1/orders/cancel-all", json_body=body, accept_pending=True)
        return decode(answer, CancelledAll)

    def withdraw(self, token: str, amount: int, *, nonce: int | None = None) -> WithdrawalPosted:
        message = self.signer.to_json(
            "Withdrawal",
            {
                "trader": self.address, "token": token, "amount": amount,
                "nonce": self.nonces.next() if nonce is None else nonce,
            },
        )  # fmt: skip
        body = {"withdrawal": message, "signature": self.signer.sign("Withdrawal", message)}
        answer = self.request("POST", "/v1/withdrawals", json_body=body, accept_pending=True)
        return decode(answer, WithdrawalPosted)


def _json(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return None


def _list(body: Any, key: str) -> list[Any]:
    if isinstance(body, list):
        return body
    return list(body[key])
