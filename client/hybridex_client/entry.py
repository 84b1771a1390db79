"""Order entry over the WebSocket (`place`, `cancel`, `cancelAll`, `batch`,
`cancelOnDisconnect`): one connection, requests answered in the order sent by `result`
messages that carry the REST answers (docs/api.md "Order entry").

Synchronous, like `Stream`. `send` writes a request and returns its id at once (pipelining is
safe: the server answers in order); `result(id)` waits for that id. `call` does both.
A lost connection raises `ConnectionClosed`: what was sent before it is applied all the same,
so reconnect, reload open orders over REST, and go on.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from websockets.sync.client import ClientConnection, connect

from hybridex_client.client import SESSION_HEADER
from hybridex_client.errors import error_from
from hybridex_client.models import ItemResult, decode


class OrderEntry:
    """`session`: the trader's signed read Session (`Client.session_token()`). With it,
    cancel-on-disconnect is journaled by the engine for the whole trader: the API renews a
    timer while the connection lives and fires it on disconnect, and if the API itself dies the
    engine fires it `cod_timeout_s` after the last renewal. Without it, only the orders placed
    on this connection are cancelled, by the API worker holding it."""

    def __init__(
        self,
        url: str,
        *,
        cancel_on_disconnect: bool = False,
        session: str | None = None,
        cod_timeout_s: int = 15,
    ) -> None:
        self.url = url
        self.cancel_on_disconnect = cancel_on_disconnect
        self.session = session
        self.cod_timeout_s = cod_timeout_s
        self.conn: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._answers: dict[int, ItemResult] = {}

    def connect(self) -> None:
        headers = {SESSION_HEADER: self.session} if self.session else None
        # Entered by hand: the connection outlives this call (websockets 17 wants a `with`).
        self.conn = connect(
            self.url, open_timeout=10, max_size=2**24, additional_headers=headers
        ).__enter__()
        self._answers.clear()
        if self.cancel_on_disconnect:
            self.call("cancelOnDisconnect", {"enabled": True, "timeoutS": self.cod_timeout_s})

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def send(self, op: str, body: dict[str, Any]) -> int:
        if self.conn is None:
            self.connect()
        assert self.conn is not None
        rid = next(self._ids)
        self.conn.send(json.dumps({"op": op, "id": rid, **body}))
        return rid

    def result(self, rid: int, timeout: float = 10.0) -> ItemResult:
        assert self.conn is not None
        deadline = time.monotonic() + timeout
        while rid not in self._answers:
            raw = self.conn.recv(timeout=max(0.0, deadline - time.monotonic()))
            msg: Any = json.loads(raw)
            if not isinstance(msg, dict):
                continue
            if msg.get("type") == "result" and isinstance(msg.get("id"), int):
                self._answers[msg["id"]] = decode(msg, ItemResult)
            elif msg.get("type") == "error":  # a request the server could not read at all
                raise error_from(400, {"error": msg})
        return self._answers.pop(rid)

    def call(self, op: str, body: dict[str, Any], timeout: float = 10.0) -> ItemResult:
        return self.result(self.send(op, body), timeout)

    def place(self, order_body: dict[str, Any]) -> ItemResult:
        """`Client.order_body(...)` over the socket."""
        return self.call("place", order_body)

    def cancel(self, cancel_body: dict[str, Any]) -> ItemResult:
        return self.call("cancel", cancel_body)

    def batch(self, items: list[dict[str, Any]]) -> list[ItemResult]:
        """Up to 50 order and cancel bodies in one message; one `ItemResult` each, in order.
        A batch refused whole (rate limit, too many items) raises its `ApiError`."""
        answer = self.call("batch", {"items": items})
        if not answer.ok:
            raise error_from(answer.status, answer.body)
        return [decode(r, ItemResult) for r in answer.body["results"]]
