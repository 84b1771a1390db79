"""`hybridex dev --chain eth-tester`: an in-process py-evm chain behind a JSON-RPC endpoint.

eth-tester has no server of its own; this serves it on 127.0.0.1 so every part of the stack
(indexer, settlement, the demo, a wallet) talks to it exactly as to a node. Requests go through
web3's own eth-tester request formatting; results are turned back into JSON-RPC wire values
(quantities as hex, bytes as 0x-data). Reverts keep their data, so custom errors decode.
Development only: one lock serialises the chain, and `eth_estimateGas` is slow on py-evm.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from web3 import EthereumTesterProvider, Web3
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.types import RPCEndpoint, Wei

from backend.chain.anvil import free_port, rpc_call
from backend.config import DEV_PRIVATE_KEYS
from backend.devstack.chain import dev_accounts

DEV_ETHER = 10_000 * 10**18
"""Ether given to each dev account from eth-tester's own prefunded accounts (gas money)."""


def wire(value: Any) -> Any:
    """A web3-formatted result as JSON-RPC wire data."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [wire(v) for v in value]
    return value


class EthTesterNode:
    """A py-evm chain served over JSON-RPC on 127.0.0.1:`port`; a context manager."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.w3 = Web3(EthereumTesterProvider())
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """One JSON-RPC request object → its response object."""
        rid = request.get("id")
        method, params = request.get("method"), request.get("params") or []
        if not isinstance(method, str) or not isinstance(params, list):
            return _error(rid, -32600, "invalid request")
        if method == "eth_estimateGas" and params[1:] == ["pending"]:
            params = [params[0], "latest"]  # eth-tester mines every transaction at once
        try:
            with self._lock:
                if method == "eth_getLogs" and params and isinstance(params[0], dict):
                    result = self._get_logs(dict(params[0]))
                else:
                    result = self.w3.manager.request_blocking(RPCEndpoint(method), params)
        except ContractLogicError as exc:
            data = exc.data if isinstance(exc.data, str) else None
            return _error(rid, 3, str(exc.message or "execution reverted"), data)
        except Web3RPCError as exc:
            info = exc.rpc_response.get("error", {}) if exc.rpc_response else {}
            code = info.get("code", -32000) if isinstance(info, dict) else -32000
            return _error(rid, int(code), str(exc.message or exc))
        except Exception as exc:  # a bad call must answer, not kill the dev chain
            return _error(rid, -32000, f"{type(exc).__name__}: {exc}")
        return {"jsonrpc": "2.0", "id": rid, "result": wire(result)}

    def _get_logs(self, flt: dict[str, Any]) -> list[Any]:
        """eth-tester filters take neither OR-lists of topics nor `blockHash`, and web3's
        request formatting of an `address` filter fails (its ENS normaliser): expand the
        topics, resolve the block, filter the address here."""
        if "blockHash" in flt:
            block = self.w3.eth.get_block(flt.pop("blockHash"))
            flt["fromBlock"] = flt["toBlock"] = hex(int(block["number"]))
        address = flt.pop("address", None)
        wanted = {a.lower() for a in ([address] if isinstance(address, str) else address or [])}
        topics = list(flt.get("topics") or [])
        alternatives = topics[0] if topics and isinstance(topics[0], list) else [None]
        logs: list[Any] = []
        for topic in alternatives:
            one = {**flt, "topics": [topic, *topics[1:]]} if topic is not None else flt
            logs += self.w3.manager.request_blocking(RPCEndpoint("eth_getLogs"), [one])
        if wanted:
            logs = [lg for lg in logs if str(lg["address"]).lower() in wanted]
        return sorted(logs, key=lambda lg: (int(lg["blockNumber"]), int(lg["logIndex"])))

    async def _endpoint(self, request: Request) -> JSONResponse:
        body = await request.json()
        if isinstance(body, list):
            return JSONResponse([self.call(r) for r in body])
        return JSONResponse(self.call(body))

    def _fund_dev_accounts(self) -> None:
        source = self.w3.eth.accounts[0]
        for account in dev_accounts(len(DEV_PRIVATE_KEYS)):
            self.w3.eth.send_transaction(
                {"from": source, "to": account, "value": Wei(DEV_ETHER), "gas": 21_000}
            )

    def start(self) -> EthTesterNode:
        self._fund_dev_accounts()
        app = Starlette(routes=[Route("/", self._endpoint, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="eth-tester", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                rpc_call(self.url, "eth_chainId", timeout=0.5)
                return self
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"the eth-tester endpoint did not answer on {self.url}")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> EthTesterNode:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _error(rid: Any, code: int, message: str, data: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": rid, "error": error}
