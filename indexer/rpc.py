"""JSON-RPC over HTTP for the indexer: per-call timeouts, backoff with jitter, typed results.

Raw RPC dicts never leave this module: blocks become `BlockHeader`, logs become `Log` (frozen
dataclasses with `bytes` hashes and `int` numbers). Transient failures — timeouts, connection
errors, HTTP 429 / 5xx, JSON-RPC errors, truncated or malformed bodies — are retried with
exponential backoff and full jitter; after `max_attempts` they surface as `RpcError`
(a `RetryableError`: the daemon's loop backs off and tries the step again).

Range errors of `eth_getLogs` ("too many results", "block range too large", …) are *not*
retried here: they raise `LogRangeError` at once so the historical sync can shrink its range.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from backend.domain.errors import ErrorCode, RetryableError
from backend.redact import redact_text, redact_url
from indexer import metrics

log = structlog.get_logger("indexer.rpc")

# Substrings providers use when an eth_getLogs range is too wide (geth, erigon, alchemy, infura,
# quicknode, anvil). Matched case-insensitively against the JSON-RPC error message.
RANGE_ERROR_MARKERS = (
    "too many",
    "range",
    "limit exceeded",
    "response size",
    "query timeout",
    "query returned more than",
    "exceed",
)


class RpcError(RetryableError):
    """The node did not give a usable answer after every retry."""

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(ErrorCode.RPC_UNAVAILABLE, message, **context)


class LogRangeError(RpcError):
    """`eth_getLogs` refused the block range (too many results / range too wide / timed out)."""


class JsonRpcError(Exception):
    """An `error` member in a JSON-RPC answer."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class BlockHeader:
    number: int
    hash: bytes
    parent_hash: bytes
    timestamp: int


@dataclass(frozen=True, slots=True)
class Log:
    block_number: int
    block_hash: bytes
    tx_hash: bytes
    log_index: int
    address: str
    topics: tuple[bytes, ...]
    data: bytes
    removed: bool = False


def _hex_bytes(value: str) -> bytes:
    return bytes.fromhex(value[2:] if value[:2] == "0x" else value)


def _hex_int(value: str) -> int:
    return int(value, 16)


def parse_header(raw: dict[str, Any]) -> BlockHeader:
    return BlockHeader(
        number=_hex_int(raw["number"]),
        hash=_hex_bytes(raw["hash"]),
        parent_hash=_hex_bytes(raw["parentHash"]),
        timestamp=_hex_int(raw["timestamp"]),
    )


def parse_log(raw: dict[str, Any]) -> Log:
    # Positional, helpers inlined: a dense chunk parses thousands of these (≈ 30% faster).
    hexb = _hex_bytes
    return Log(
        int(raw["blockNumber"], 16),
        hexb(raw["blockHash"]),
        hexb(raw["transactionHash"]),
        int(raw["logIndex"], 16),
        raw["address"],
        tuple([hexb(t) for t in raw["topics"]]),
        hexb(raw["data"]),
        bool(raw.get("removed", False)),
    )


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: sleep U(0, min(cap, base * 2**attempt))."""

    base_s: float = 0.05
    cap_s: float = 5.0
    max_attempts: int = 8

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap_s, self.base_s * (2**attempt)))


def _is_range_error(err: JsonRpcError) -> bool:
    text = err.message.lower()
    return any(marker in text for marker in RANGE_ERROR_MARKERS)


class RpcClient:
    """A synchronous JSON-RPC client over one keep-alive HTTP connection pool."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self.display_url = redact_url(url)
        """`url` without its credentials: the only form that is logged."""
        self.timeout_s = timeout_s
        self.backoff = backoff or Backoff()
        self._sleep = sleep
        self._http = httpx.Client(
            timeout=timeout_s, headers={"Content-Type": "application/json"}, transport=transport
        )
        self._id = 0
        self.failures = 0
        """Transient failures seen so far (a metric; the daemon logs it)."""

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ transport

    def _post(self, body: Any) -> Any:
        resp = self._http.post(self.url, content=json.dumps(body).encode())
        if resp.status_code == 429 or resp.status_code >= 500:
            raise httpx.HTTPStatusError(
                f"HTTP {resp.status_code}", request=resp.request, response=resp
            )
        resp.raise_for_status()
        return json.loads(resp.content)  # a truncated body raises JSONDecodeError

    def _with_retries(self, method: str, attempt_fn: Callable[[], Any]) -> Any:
        last: Exception | None = None
        for attempt in range(self.backoff.max_attempts):
            try:
                return attempt_fn()
            except LogRangeError:
                raise
            except (
                httpx.TransportError,
                httpx.HTTPStatusError,
                json.JSONDecodeError,
                JsonRpcError,
                KeyError,
                TypeError,
                ValueError,
            ) as exc:
                last = exc
                self.failures += 1
                metrics.RPC_RETRIES.inc()
                delay = self.backoff.delay(attempt)
                log.warning(
                    "rpc call failed, retrying",
                    method=method,
                    attempt=attempt + 1,
                    error=redact_text(f"{type(exc).__name__}: {exc}"),
                    retry_in_ms=round(delay * 1000),
                    rpc_url=self.display_url,
                )
                self._sleep(delay)
        log.error(
            "rpc node unreachable",
            method=method,
            attempts=self.backoff.max_attempts,
            error=redact_text(f"{type(last).__name__}: {last}"),
            rpc_url=self.display_url,
        )
        raise RpcError(
            redact_text(f"{method} failed after {self.backoff.max_attempts} attempts: {last}")
        )

    def call(self, method: str, params: Sequence[Any] = (), *, range_errors: bool = False) -> Any:
        """One JSON-RPC call; `range_errors` turns range-limit errors into `LogRangeError`."""

        def attempt() -> Any:
            self._id += 1
            body = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)}
            try:
                reply = self._post(body)
            except httpx.TimeoutException as exc:
                if range_errors:  # a slow eth_getLogs: a narrower range is the remedy
                    raise LogRangeError(f"timed out: {exc}", method=method) from exc
                raise
            if not isinstance(reply, dict):
                raise ValueError(f"not a JSON-RPC answer: {str(reply)[:200]}")
            if "error" in reply:
                err = reply["error"]
                rpc_err = JsonRpcError(int(err.get("code", 0)), str(err.get("message", "")))
                if range_errors and _is_range_error(rpc_err):
                    raise LogRangeError(rpc_err.message, method=method)
                raise rpc_err
            if "result" not in reply:
                raise ValueError("JSON-RPC answer without result")
            return reply["result"]

        return self._with_retries(method, attempt)

    def batch(self, method: str, params_list: Sequence[Sequence[Any]]) -> list[Any]:
        """The same method with many parameter lists in one HTTP request (results in order)."""
        if not params_list:
            return []

        def attempt() -> list[Any]:
            base = self._id
            self._id += len(params_list)
            body = [
                {"jsonrpc": "2.0", "id": base + i, "method": method, "params": list(p)}
                for i, p in enumerate(params_list)
            ]
            reply = self._post(body)
            if not isinstance(reply, list) or len(reply) != len(params_list):
                raise ValueError("batch answer of the wrong shape")
            by_id = {item["id"]: item for item in reply}
            results: list[Any] = []
            for i in range(len(params_list)):
                item = by_id[base + i]
                if "error" in item:
                    err = item["error"]
                    raise JsonRpcError(int(err.get("code", 0)), str(err.get("message", "")))
                results.append(item["result"])
            return results

        result: list[Any] = self._with_retries(method, attempt)
        return result

    # ------------------------------------------------------------------ typed calls

    def chain_id(self) -> int:
        return _hex_int(self.call("eth_chainId"))

    def block_number(self) -> int:
        return _hex_int(self.call("eth_blockNumber"))

    def get_code(self, address: str) -> bytes:
        return _hex_bytes(self.call("eth_getCode", [address, "latest"]))

    def header(self, number: int) -> BlockHeader | None:
        raw = self.call("eth_getBlockByNumber", [hex(number), False])
        return None if raw is None else parse_header(raw)

    def headers(self, numbers: Sequence[int]) -> list[BlockHeader | None]:
        raws = self.batch("eth_getBlockByNumber", [[hex(n), False] for n in numbers])
        return [None if raw is None else parse_header(raw) for raw in raws]

    def get_logs(
        self,
        *,
        address: str,
        topics: Sequence[bytes],
        from_block: int | None = None,
        to_block: int | None = None,
        block_hash: bytes | None = None,
        shrinkable: bool = False,
    ) -> list[Log]:
        """Logs of `address` whose first topic is one of `topics`; with `shrinkable`, range
        errors and timeouts raise `LogRangeError` at once (the caller narrows the range)."""
        flt: dict[str, Any] = {"address": address, "topics": [["0x" + t.hex() for t in topics]]}
        if block_hash is not None:
            flt["blockHash"] = "0x" + block_hash.hex()
        else:
            if from_block is None or to_block is None:
                raise ValueError("from_block and to_block, or block_hash")
            flt["fromBlock"] = hex(from_block)
            flt["toBlock"] = hex(to_block)
        raws = self.call("eth_getLogs", [flt], range_errors=shrinkable)
        return [parse_log(r) for r in raws]
