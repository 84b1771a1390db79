"""The engine port against a real `hybridex engine` process (production mode, PostgreSQL):
a frame without a role key, with a wrong key, replayed, or carrying a command outside the
role's allow-list is refused, counted in `hybridex_engine_refused_frames_total` and changes
nothing; every role's own commands still go through."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from backend.db.session import make_engine
from backend.domain.errors import ConfigurationError, DexError, ErrorCode
from backend.domain.types import MarketState, Side
from backend.engine import auth
from backend.engine import protocol as p
from backend.engine.auth import Role
from backend.engine.client import EngineUnavailableError
from backend.engine.records import encode_record
from backend.engine.tcp_client import Address, EngineAuthError, TcpEngineClient
from backend.matching.commands import (
    Credit,
    Debit,
    FreezeTrader,
    PlaceOrder,
    ReleaseWithdrawal,
    SetMarketState,
)
from backend.matching.events import CommandRejected, MarketAdded, OrderAccepted
from tests.integration.engine.test_crash import FEE_RECIPIENT, ROOT, free_port, start_engine
from tests.unit.engine.helpers import (
    KEYS,
    MARKET,
    MID,
    QUOTE,
    RoleClients,
    add_market,
    key_env,
    place,
    trader,
)

pytestmark = pytest.mark.integration

ATTACKER_TRADER = trader(666)
FORTUNE = 10**30


@dataclass
class Engine:
    proc: subprocess.Popen[bytes]
    address: Address
    metrics_port: int
    db_url: str
    log: Path

    def refused(self, reason: str, role: str) -> float:
        body = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        for family in text_string_to_metric_families(body):
            if family.name != "hybridex_engine_refused_frames":
                continue
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels == {
                    "reason": reason,
                    "role": role,
                }:
                    return sample.value
        return 0.0

    def balance(self, who: str, token: str) -> int | None:
        db = make_engine(self.db_url)
        try:
            with db.connect() as conn:
                total = conn.execute(
                    text("SELECT total FROM balances WHERE trader = :t AND token = :k"),
                    {"t": who, "k": token},
                ).scalar_one_or_none()
        finally:
            db.dispose()
        return None if total is None else int(total)

    def wait_balance(self, who: str, token: str, expected: int) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.balance(who, token) == expected:
                return
            time.sleep(0.1)
        raise AssertionError(f"balance of {who} never became {expected}")


def start(db_url: str, tmp_path: Path, transport: str = "unix") -> Engine:
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRIDEX_")}
    env |= {
        "HYBRIDEX_DATABASE_URL": db_url,
        "HYBRIDEX_ENGINE_TRANSPORT": transport,
        "HYBRIDEX_ENGINE_HOST": "127.0.0.1",
        "HYBRIDEX_ENGINE_PORT": str(port),
        "HYBRIDEX_ENGINE_JOURNAL_DIR": str(tmp_path / "journal"),
        "HYBRIDEX_ENGINE_METRICS_PORT": str(metrics_port),
        "HYBRIDEX_FEE_RECIPIENT": FEE_RECIPIENT,
        **key_env(),
    }
    log = tmp_path / "engine.log"
    proc = start_engine(env, log, "--feeds", "none")
    address: Address = (
        tmp_path / "journal" / "engine.sock" if transport == "unix" else ("127.0.0.1", port)
    )
    engine = Engine(proc, address, metrics_port, db_url, log)

    async def ready() -> None:
        client = TcpEngineClient(address, role=Role.OPERATOR, key=KEYS[Role.OPERATOR])
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()
                try:
                    await client.state(timeout=2)
                    return
                except EngineUnavailableError:
                    await asyncio.sleep(0.1)
        finally:
            await client.close()
        raise AssertionError(f"engine did not start:\n{log.read_text()}")

    asyncio.run(ready())
    return engine


@pytest.fixture
def engine(db_url: str, tmp_path: Path) -> Iterator[Engine]:
    e = start(db_url, tmp_path)
    try:
        yield e
    finally:
        e.proc.terminate()
        e.proc.wait(30)


async def open_raw(address: Address) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if isinstance(address, Path):
        return await asyncio.open_unix_connection(str(address))
    return await asyncio.open_connection(*address)


async def answers(reader: asyncio.StreamReader) -> list[tuple[int, int, bytes]]:
    """Every frame until the engine hangs up (or goes quiet)."""
    out = []
    try:
        async with asyncio.timeout(5):
            while True:
                out.append(await p.read_frame(reader))
    except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
        return out


def state(address: Address) -> tuple[int, str]:
    async def go() -> tuple[int, str]:
        client = TcpEngineClient(address, role=Role.API, key=KEYS[Role.API])
        try:
            return await client.state()
        finally:
            await client.close()

    return asyncio.run(go())


def credit_someone_else(engine: Engine) -> None:
    """An allowed credit, once the persister has stored it every earlier command is stored."""

    async def go() -> None:
        clients = RoleClients(engine.address)
        try:
            await clients.submit(Credit(0, 0, trader(1), QUOTE, 5), timeout=5)
        finally:
            await clients.close()

    asyncio.run(go())
    engine.wait_balance(trader(1), QUOTE, 5)


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_a_frame_without_a_key_is_refused_counted_and_changes_nothing(
    db_url: str, tmp_path: Path, transport: str
) -> None:
    engine = start(db_url, tmp_path, transport)
    try:
        before = state(engine.address)
        forged = encode_record(Credit(0, 0, ATTACKER_TRADER, QUOTE, FORTUNE))

        async def attack() -> list[tuple[int, int, bytes]]:
            # what a script that knows the wire format sends: no handshake, straight to SUBMIT
            reader, writer = await open_raw(engine.address)
            writer.write(p.frame(p.SUBMIT, 7, forged))
            try:
                return await answers(reader)
            finally:
                writer.close()

        got = asyncio.run(attack())
        kinds = [kind for kind, _, _ in got]
        assert p.SUBMITTED not in kinds
        kind, request_id, body = got[-1]
        assert (kind, request_id) == (p.ERROR, 7)
        assert p.U16.unpack_from(body)[0] == ErrorCode.ENGINE_UNAUTHENTICATED.value
        assert b"authenticate first" in body
        assert engine.refused("unauthenticated", "unknown") == 1
        assert state(engine.address) == before  # nothing journaled
        credit_someone_else(engine)
        assert engine.balance(ATTACKER_TRADER, QUOTE) is None
    finally:
        engine.proc.terminate()
        engine.proc.wait(30)


def test_a_wrong_key_or_another_roles_key_is_refused(engine: Engine) -> None:
    before = state(engine.address)

    async def attempts() -> list[BaseException]:
        out: list[BaseException] = []
        for role, key in (
            (Role.INDEXER, b"0" * 64),  # a guess
            (Role.INDEXER, KEYS[Role.API]),  # the API's key cannot act as the indexer
            (Role.OPERATOR, KEYS[Role.SETTLEMENT]),
        ):
            client = TcpEngineClient(engine.address, role=role, key=key)
            try:
                await client.submit(Credit(0, 0, ATTACKER_TRADER, QUOTE, FORTUNE), timeout=5)
            except EngineAuthError as exc:
                out.append(exc)
            finally:
                await client.close()
        return out

    refusals = asyncio.run(attempts())
    assert len(refusals) == 3
    assert all(isinstance(r, EngineUnavailableError) for r in refusals)  # nothing was sent
    assert all(r.code is ErrorCode.ENGINE_UNAUTHENTICATED for r in refusals)
    assert "wrong key for role indexer" in str(refusals[0])
    assert engine.refused("bad_key", "indexer") == 2
    assert engine.refused("bad_key", "operator") == 1
    assert state(engine.address) == before
    credit_someone_else(engine)
    assert engine.balance(ATTACKER_TRADER, QUOTE) is None


def test_a_command_outside_the_roles_allow_list_is_refused(engine: Engine) -> None:
    before = state(engine.address)
    forbidden = [
        (Role.API, Credit(0, 0, ATTACKER_TRADER, QUOTE, FORTUNE)),
        (Role.API, FreezeTrader(0, 0, trader(2))),
        (Role.API, SetMarketState(0, 0, MARKET, MarketState.HALTED)),
        (Role.INDEXER, add_market()[0]),
        (Role.INDEXER, ReleaseWithdrawal(0, 0, "w-1")),
        (Role.SETTLEMENT, Debit(0, 0, trader(2), QUOTE, 1, None)),
        (Role.OPERATOR, place(2, 1, Side.BUY, MID, 100)),
    ]

    async def attempts() -> list[tuple[ErrorCode, str]]:
        clients = RoleClients(engine.address)
        out = []
        try:
            for role, command in forbidden:
                with pytest.raises(DexError) as err:
                    await clients[role].submit(command, timeout=5)
                out.append((err.value.code, err.value.message))
            # the connection stays usable for what the role may do
            await clients[Role.API].state()
        finally:
            await clients.close()
        return out

    refusals = asyncio.run(attempts())
    assert {code for code, _ in refusals} == {ErrorCode.ENGINE_FORBIDDEN}
    assert refusals[0][1] == "Credit is not allowed for role api"
    assert refusals[3][1] == "AddMarket is not allowed for role indexer"
    assert engine.refused("forbidden", "api") == 3
    assert engine.refused("forbidden", "indexer") == 2
    assert engine.refused("forbidden", "settlement") == 1
    assert engine.refused("forbidden", "operator") == 1
    assert state(engine.address) == before  # none of them was journaled
    credit_someone_else(engine)
    assert engine.balance(ATTACKER_TRADER, QUOTE) is None


def test_every_role_still_sends_its_own_commands(engine: Engine) -> None:
    async def go() -> None:
        clients = RoleClients(engine.address)
        try:
            listing, intake = add_market()
            added = await clients[Role.OPERATOR].submit(listing, timeout=5, intake=intake)
            assert any(isinstance(e, MarketAdded) for e in added.events)
            credit = Credit(0, 0, trader(3), QUOTE, 10**24)
            await clients[Role.INDEXER].submit(credit, timeout=5)
            order: PlaceOrder = place(3, 1, Side.BUY, MID, 100)
            placed = await clients[Role.API].submit(order, timeout=5)
            assert any(isinstance(e, OrderAccepted) for e in placed.events)
            release = await clients[Role.SETTLEMENT].submit(
                ReleaseWithdrawal(0, 0, "never-reserved"), timeout=5
            )  # the engine's own answer (nothing to release), not a refusal of the role
            assert release.seq == placed.seq + 1
            state_change = SetMarketState(0, 0, MARKET, MarketState.POST_ONLY)
            changed = await clients[Role.OPERATOR].submit(state_change, timeout=5)
            assert not any(isinstance(e, CommandRejected) for e in changed.events)
            book = await clients[Role.API].book(MARKET, 5)
            assert book.bids == [(MID, 100)]
        finally:
            await clients.close()

    asyncio.run(go())
    engine.wait_balance(trader(3), QUOTE, 10**24)
    for reason in ("unauthenticated", "bad_key", "bad_tag", "forbidden"):
        for role in [*Role, "unknown"]:
            assert engine.refused(reason, str(role)) == 0


def test_a_replayed_frame_is_refused_on_its_connection_and_on_a_new_one(engine: Engine) -> None:
    """A recorded, correctly tagged frame is valid once, at its place on its connection."""
    key = KEYS[Role.INDEXER]
    credit = encode_record(Credit(0, 0, trader(4), QUOTE, 1_000))

    async def handshake() -> tuple[asyncio.StreamReader, asyncio.StreamWriter, auth.FrameMac]:
        reader, writer = await open_raw(engine.address)
        _, _, server_nonce = await p.read_frame(reader)
        client_nonce = auth.new_nonce()
        hello = auth.hello_body(key, Role.INDEXER, server_nonce, client_nonce)
        writer.write(p.frame(p.HELLO, 0, hello))
        kind, _, _ = await p.read_frame(reader)
        assert kind == p.WELCOME
        sealer, _ = auth.session_macs(key, server_nonce, client_nonce)
        return reader, writer, sealer

    async def go() -> tuple[list[tuple[int, int, bytes]], list[tuple[int, int, bytes]]]:
        reader, writer, sealer = await handshake()
        recorded = p.sealed_frame(sealer, p.SUBMIT, 1, credit)
        writer.write(recorded)
        first = await p.read_frame(reader)
        assert first[0] == p.SUBMITTED
        writer.write(recorded)  # the same bytes again, on the same connection
        same = await answers(reader)
        writer.close()
        reader, writer, _ = await handshake()
        writer.write(recorded)  # and on a new connection
        other = await answers(reader)
        writer.close()
        return same, other

    before, _ = state(engine.address)
    same, other = asyncio.run(go())
    for got in (same, other):
        assert [kind for kind, _, _ in got] == [p.ERROR]
        assert p.U16.unpack_from(got[0][2])[0] == ErrorCode.ENGINE_UNAUTHENTICATED.value
    assert engine.refused("bad_tag", "indexer") == 2
    assert state(engine.address)[0] == before + 1  # applied exactly once
    engine.wait_balance(trader(4), QUOTE, 1_000)


def test_the_processes_reach_the_engine_as_their_own_role(engine: Engine, tmp_path: Path) -> None:
    """The clients as the processes build them from their settings: `hybridex markets` (the
    operator role, its key only) and the settlement worker's submitter."""
    assert isinstance(engine.address, Path)
    base = {k: v for k, v in os.environ.items() if not k.startswith("HYBRIDEX_")}
    operator_env = base | {
        "HYBRIDEX_ENGINE_SOCKET": str(engine.address),
        "HYBRIDEX_ENGINE_KEY_OPERATOR": KEYS[Role.OPERATOR].decode(),
    }
    listing, _ = add_market()
    spec = listing.spec
    args = [
        "markets", "add", spec.market_id, "--base", spec.base_token, "--base-symbol", "BASE",
        "--base-decimals", "18", "--quote", spec.quote_token, "--quote-symbol", "QUOTE",
        "--quote-decimals", "6", "--tick-size", str(spec.tick_size), "--lot-size",
        str(spec.lot_size), "--min-amount", str(spec.min_amount),
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "backend.cli.main", *args],
        cwd=ROOT, env=operator_env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "MarketAdded" in done.stdout
    # the same command with the API's key in the operator's variable is refused
    wrong = operator_env | {"HYBRIDEX_ENGINE_KEY_OPERATOR": KEYS[Role.API].decode()}
    refused = subprocess.run(
        [sys.executable, "-m", "backend.cli.main", "markets", "halt", MARKET],
        cwd=ROOT, env=wrong, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "ENGINE_UNAUTHENTICATED" in refused.stderr or "refused role operator" in refused.stderr

    from backend.config import Mode, Settings
    from backend.settlement.releases import tcp_submitter

    settings = Settings(
        mode=Mode.PRODUCTION,
        engine_socket=engine.address,
        engine_key_settlement=KEYS[Role.SETTLEMENT].decode(),  # type: ignore[arg-type]
    )
    outcome = tcp_submitter(settings)(ReleaseWithdrawal(0, 0, "never-reserved"))
    assert outcome.seq > 0
    with pytest.raises(DexError) as err:
        tcp_submitter(settings)(Credit(0, 0, ATTACKER_TRADER, QUOTE, FORTUNE))
    assert err.value.code is ErrorCode.ENGINE_FORBIDDEN
    with pytest.raises(ConfigurationError, match="HYBRIDEX_ENGINE_KEY_SETTLEMENT is not set"):
        tcp_submitter(Settings(mode=Mode.PRODUCTION, engine_socket=engine.address))
