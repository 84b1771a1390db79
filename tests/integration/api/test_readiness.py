"""`/ready`'s checks against real dependencies, up and down (DB, Redis, RPC, engine)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import OperationalError

from backend.api.readiness import database_check, engine_check, redis_check, rpc_check
from backend.chain.anvil import ANVIL_CHAIN_ID, Anvil, free_port
from backend.db.session import make_engine
from backend.domain.errors import DexError
from backend.engine.auth import Role
from backend.engine.tcp_client import TcpEngineClient

pytestmark = pytest.mark.integration


def test_rpc_check_needs_the_configured_chain() -> None:
    with Anvil() as node:
        asyncio.run(rpc_check(node.url, ANVIL_CHAIN_ID)())
        asyncio.run(rpc_check(node.url, None)())
        with pytest.raises(DexError, match="serves chain 31337, not 1"):
            asyncio.run(rpc_check(node.url, 1)())
        url = node.url
    with pytest.raises(httpx.ConnectError):  # the node is gone
        asyncio.run(rpc_check(url, ANVIL_CHAIN_ID)())


def test_database_check_fails_when_the_server_is_down(pg_url: str, tmp_path: Path) -> None:
    up = make_engine(pg_url)
    asyncio.run(database_check(up)())
    up.dispose()
    down = make_engine(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none")
    with pytest.raises(OperationalError, match=r"refused|connect"):
        asyncio.run(database_check(down)())
    down.dispose()


def test_redis_check_fails_when_the_server_is_down(redis_prefix: tuple[str, str]) -> None:
    url, _ = redis_prefix

    async def run(target: str) -> None:
        client = aioredis.Redis.from_url(target, socket_connect_timeout=1)
        try:
            await redis_check(client)()
        finally:
            await client.aclose()  # type: ignore[attr-defined]

    asyncio.run(run(url))
    with pytest.raises(RedisConnectionError):
        asyncio.run(run(f"redis://127.0.0.1:{free_port()}/0"))


def test_engine_check_fails_without_an_engine() -> None:
    async def run() -> None:
        client = TcpEngineClient(("127.0.0.1", free_port()), role=Role.API, key=b"k" * 32)
        try:
            await engine_check(client)()
        finally:
            await client.close()

    with pytest.raises(DexError):
        asyncio.run(run())
