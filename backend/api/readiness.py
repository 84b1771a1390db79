"""`/ready` checks: each raises when its dependency cannot serve (SPEC §9: DB, Redis, RPC)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import Engine, text

from backend.api.deps import ReadinessCheck
from backend.domain.errors import ConfigurationError, DexError, ErrorCode
from backend.engine.client import EngineClient


def database_check(db: Engine) -> ReadinessCheck:
    def ping() -> None:
        with db.connect() as conn:
            conn.execute(text("SELECT 1"))

    async def check() -> None:
        await asyncio.to_thread(ping)

    return check


def redis_check(client: Any) -> ReadinessCheck:
    async def check() -> None:
        await client.ping()

    return check


def engine_check(engine: EngineClient) -> ReadinessCheck:
    async def check() -> None:
        try:  # any answer, even "unknown market", proves the engine serves requests
            await engine.book("-ready-", 1)
        except DexError as exc:
            if exc.code in (ErrorCode.ENGINE_UNAVAILABLE, ErrorCode.ENGINE_UNAUTHENTICATED):
                raise  # a refused key: not ready, whatever else works

    return check


def rpc_check(rpc_url: str, chain_id: int | None) -> ReadinessCheck:
    """The node answers `eth_chainId`, with the configured chain when one is set."""

    async def check() -> None:
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        async with httpx.AsyncClient(timeout=3.0) as http:
            reply = (await http.post(rpc_url, json=body)).json()
        served = int(reply["result"], 16)
        if chain_id is not None and served != chain_id:
            raise ConfigurationError(f"the node serves chain {served}, not {chain_id}")

    return check
