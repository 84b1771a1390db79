"""The engine port's handshake against a real in-process `EngineServer`: key rotation, a
fake engine the client must not trust, and what an unauthenticated peer can make it read."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest

from backend.config import Mode, Settings, dev_engine_key
from backend.domain.errors import ConfigurationError, ErrorCode
from backend.engine import auth
from backend.engine import protocol as p
from backend.engine.auth import Role
from backend.engine.server import EngineServer
from backend.engine.service import EngineService
from backend.engine.tcp_client import EngineAuthError, TcpEngineClient
from tests.unit.engine.helpers import KEYS, SERVER_KEYS


def test_during_a_rotation_the_engine_accepts_the_new_and_the_old_key(tmp_path: Path) -> None:
    new = secrets.token_hex(32).encode()
    old = KEYS[Role.API]

    async def main() -> None:
        service = await EngineService.open(journal_dir=tmp_path)
        server = EngineServer(service, {**SERVER_KEYS, Role.API: [new, old]})
        port = await server.start("127.0.0.1", 0)
        try:
            for key in (new, old):
                client = TcpEngineClient(("127.0.0.1", port), role=Role.API, key=key)
                assert await client.state() == service.state()
                await client.close()
            retired = TcpEngineClient(("127.0.0.1", port), role=Role.INDEXER, key=old)
            with pytest.raises(EngineAuthError):
                await retired.state()
            await retired.close()
        finally:
            await server.stop()
            await service.close()

    asyncio.run(main())


def test_the_client_does_not_trust_an_engine_that_cannot_prove_the_key() -> None:
    """A fake engine (DNS, a stolen port) answers the handshake without the key."""

    async def main() -> None:
        async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(p.frame(p.CHALLENGE, 0, auth.new_nonce()))
            await p.read_frame(reader)
            writer.write(p.frame(p.WELCOME, 0, b"\0" * auth.TAG))
            await asyncio.sleep(2)

        server = await asyncio.start_server(impostor, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = TcpEngineClient(("127.0.0.1", port), role=Role.API, key=KEYS[Role.API])
        with pytest.raises(EngineAuthError, match="did not prove"):
            await client.state()
        await client.close()
        server.close()
        await server.wait_closed()

    asyncio.run(main())


def test_an_unauthenticated_peer_cannot_make_the_engine_read_a_large_frame(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        service = await EngineService.open(journal_dir=tmp_path)
        server = EngineServer(service, SERVER_KEYS)
        port = await server.start("127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await p.read_frame(reader)  # CHALLENGE
            writer.write(p.HEADER.pack(p.MAX_FRAME, p.SUBMIT, 1))  # announces 16 MiB
            kind, _, body = await p.read_frame(reader)
            assert kind == p.ERROR
            assert p.U16.unpack_from(body)[0] == ErrorCode.ENGINE_UNAUTHENTICATED.value
            assert await reader.read() == b""  # and hangs up
            writer.close()
        finally:
            await server.stop()
            await service.close()

    asyncio.run(main())


def test_unix_socket_is_private_to_owner_and_group(tmp_path: Path) -> None:
    async def main() -> None:
        service = await EngineService.open(journal_dir=tmp_path / "j")
        server = EngineServer(service, SERVER_KEYS)
        path = tmp_path / "run" / "engine.sock"
        path.parent.mkdir()
        path.write_bytes(b"")  # left over by an engine that died: replaced
        await server.start_unix(path)
        try:
            assert path.stat().st_mode & 0o777 == 0o660
            client = TcpEngineClient(path, role=Role.OPERATOR, key=KEYS[Role.OPERATOR])
            assert await client.state() == service.state()
            await client.close()
            with pytest.raises(ConfigurationError, match="another engine"):
                await EngineServer(service, SERVER_KEYS).start_unix(path)
        finally:
            await server.stop()
            await service.close()
        assert not path.exists()

    asyncio.run(main())


def test_dev_mode_derives_role_keys_and_production_requires_them() -> None:
    dev = Settings(mode=Mode.DEV)
    assert dev.engine_keys("api") == [dev_engine_key("api").encode()]
    assert dev.engine_keys("api") != dev.engine_keys("indexer")
    with pytest.raises(ConfigurationError, match="HYBRIDEX_ENGINE_KEY_SETTLEMENT is not set"):
        Settings(mode=Mode.PRODUCTION).engine_keys("settlement")
    new, old = secrets.token_hex(32), secrets.token_hex(32)
    rotating = Settings(mode=Mode.PRODUCTION, engine_key_api=f"{new}, {old}")  # type: ignore[arg-type]
    assert rotating.engine_keys("api") == [new.encode(), old.encode()]
    for bad in ("short", "CHANGE-ME", dev_engine_key("api"), f"{new},change-me"):
        with pytest.raises(ValueError, match="HYBRIDEX_ENGINE_KEY_API"):
            Settings(mode=Mode.PRODUCTION, engine_key_api=bad)  # type: ignore[arg-type]
