"""A loopback JSON-RPC proxy in front of a real node that injects faults on a seeded schedule.

Faults: a timeout (the answer comes after the client gave up), HTTP 429 / 500 / 502 / 503, a
JSON-RPC error, a truncated body (the call *was* forwarded: the node did the work, the answer
is cut). `eth_getLogs` over more than `max_log_range` blocks gets a provider-style range error.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("timeout", "429", "500", "502", "503", "rpc_error", "truncated")


class FaultyProxy:
    def __init__(
        self,
        upstream: str,
        *,
        fault_rate: float = 0.25,
        seed: int = 0,
        timeout_delay_s: float = 0.6,
        max_log_range: int | None = None,
    ) -> None:
        self.upstream = upstream
        self.fault_rate = fault_rate
        self.timeout_delay_s = timeout_delay_s
        self.max_log_range = max_log_range
        self.down = False
        """Every request fails with a refused-like 503 while set (a node that is gone)."""
        self.injected: Counter[str] = Counter()
        self._rnd = random.Random(seed)
        self._lock = threading.Lock()
        self._next = 0
        self._offset = self._rnd.randrange(len(FAULTS))
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, payload = proxy.handle(body)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and went away

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FaultyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _pick(self) -> str | None:
        with self._lock:
            if self._rnd.random() >= self.fault_rate:
                return None
            self._next += 1  # the kinds take turns, so a short run still sees each one
            return FAULTS[(self._next + self._offset) % len(FAULTS)]

    def _forward(self, body: bytes) -> bytes:
        req = urllib.request.Request(
            self.upstream, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            data: bytes = resp.read()
            return data

    def _range_refusal(self, body: bytes) -> bytes | None:
        if self.max_log_range is None:
            return None
        msg = json.loads(body)
        if isinstance(msg, list) or msg.get("method") != "eth_getLogs":
            return None
        flt = msg["params"][0]
        if "fromBlock" not in flt:
            return None
        width = int(flt["toBlock"], 16) - int(flt["fromBlock"], 16) + 1
        if width <= self.max_log_range:
            return None
        self.injected["range"] += 1
        err = {"code": -32005, "message": "query returned more than 10000 results"}
        return json.dumps({"jsonrpc": "2.0", "id": msg["id"], "error": err}).encode()

    def handle(self, body: bytes) -> tuple[int, bytes]:
        if self.down:
            self.injected["down"] += 1
            return 503, b"upstream unavailable"
        refusal = self._range_refusal(body)
        if refusal is not None:
            return 200, refusal
        fault = self._pick()
        if fault is not None:
            self.injected[fault] += 1
        if fault == "timeout":
            time.sleep(self.timeout_delay_s)
            return 200, self._forward(body)
        if fault in ("429", "500", "502", "503"):
            return int(fault), b'{"error": "injected"}'
        if fault == "rpc_error":
            msg = json.loads(body)
            err = {"code": -32603, "message": "injected internal error"}
            if isinstance(msg, list):
                reply: Any = [{"jsonrpc": "2.0", "id": m["id"], "error": err} for m in msg]
            else:
                reply = {"jsonrpc": "2.0", "id": msg["id"], "error": err}
            return 200, json.dumps(reply).encode()
        answer = self._forward(body)
        if fault == "truncated":
            return 200, answer[: max(1, len(answer) // 2)]
        return 200, answer
