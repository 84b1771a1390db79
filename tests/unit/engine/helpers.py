"""Engine-process test helpers: a listed market, funded traders and a mixed workload."""

from __future__ import annotations

import asyncio
import hashlib
import random
import secrets

from eth_utils.address import to_checksum_address

from backend.domain.types import Side, TimeInForce
from backend.engine import auth
from backend.engine import protocol as p
from backend.engine.auth import Role, allowed
from backend.engine.client import Intake, Outcome, TokenInfo
from backend.engine.tcp_client import Address, TcpEngineClient
from backend.matching.commands import (
    AddMarket,
    CancelOrder,
    Command,
    Credit,
    MarketSpec,
    PlaceOrder,
)

BASE = to_checksum_address("0x" + "ba" * 20)
QUOTE = to_checksum_address("0x" + "c0" * 20)
MARKET = "BASE-QUOTE"
TICK = 10**16
LOT = 100
MID = 1_000 * TICK
SIGNATURE = b"\x11" * 65


def trader(i: int) -> str:
    return to_checksum_address("0x" + f"{i + 1:040x}")


def spec() -> MarketSpec:
    return MarketSpec(MARKET, BASE, QUOTE, TICK, LOT, LOT, maker_fee_bps=5, taker_fee_bps=10)


def add_market() -> tuple[AddMarket, Intake]:
    tokens = (TokenInfo(BASE, "BASE", 18), TokenInfo(QUOTE, "QUOTE", 6))
    return AddMarket(0, 0, spec()), Intake(tokens=tokens)


def order_hash(*parts: object) -> bytes:
    return hashlib.blake2b(repr(parts).encode(), digest_size=32).digest()


def setup(n_traders: int) -> list[tuple[Command, Intake | None]]:
    out: list[tuple[Command, Intake | None]] = [add_market()]
    for i in range(n_traders):
        out.append((Credit(0, 0, trader(i), BASE, 10**12), None))
        out.append((Credit(0, 0, trader(i), QUOTE, 10**30), None))
    return out


def place(i: int, nonce: int, side: Side, price: int, amount: int) -> PlaceOrder:
    h = order_hash(i, nonce)
    return PlaceOrder(0, 0, h, trader(i), MARKET, side, price, amount, TimeInForce.GTC, nonce, 0)


def workload(n: int, n_traders: int, seed: int = 1) -> list[tuple[Command, Intake | None]]:
    """Orders near the mid (some crossing) and cancels of earlier ones."""
    rng = random.Random(seed)
    out: list[tuple[Command, Intake | None]] = []
    placed: list[tuple[int, bytes]] = []
    nonces = [0] * n_traders
    for _ in range(n):
        t = rng.randrange(n_traders)
        if placed and rng.random() < 0.25:
            who, h = placed.pop(rng.randrange(len(placed)))
            out.append((CancelOrder(0, 0, h, trader(who)), Intake(SIGNATURE, order_hash(h))))
            continue
        nonces[t] += 1
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        offset = rng.randint(-5, 20) * TICK
        price = MID - offset if side is Side.BUY else MID + offset
        cmd = place(t, nonces[t], side, price, rng.randint(1, 20) * LOT)
        placed.append((t, cmd.order_hash))
        out.append((cmd, Intake(signature=SIGNATURE)))
    return out


# ------------------------------------------------------------- the engine port's roles

# Random per test run: nothing may depend on a well-known key outside dev mode.
KEYS: dict[Role, bytes] = {role: secrets.token_hex(32).encode() for role in Role}
SERVER_KEYS: dict[Role, list[bytes]] = {role: [key] for role, key in KEYS.items()}


def key_env(keys: dict[Role, bytes] = KEYS) -> dict[str, str]:
    """The HYBRIDEX_ENGINE_KEY_* variables of an engine process that accepts `keys`."""
    return {f"HYBRIDEX_ENGINE_KEY_{role.name}": key.decode() for role, key in keys.items()}


def role_of(command: Command) -> Role:
    """The role allowed to send `command` (the API for the cancels both it and the indexer
    may send)."""
    for role in Role:
        if allowed(role, command):
            return role
    raise ValueError(f"no role may send {type(command).__name__}")


class RoleClients:
    """One `TcpEngineClient` per role on one engine address; `submit` picks the command's."""

    def __init__(self, address: Address, keys: dict[Role, bytes] = KEYS) -> None:
        self.clients = {r: TcpEngineClient(address, role=r, key=k) for r, k in keys.items()}

    def __getitem__(self, role: Role) -> TcpEngineClient:
        return self.clients[role]

    async def submit(
        self, command: Command, *, timeout: float, intake: Intake | None = None
    ) -> Outcome:
        return await self.clients[role_of(command)].submit(command, timeout=timeout, intake=intake)

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()


async def accept_handshake(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: bytes = KEYS[Role.API]
) -> None:
    """The engine's side of the handshake, for fake engines that then misbehave."""
    server_nonce = auth.new_nonce()
    writer.write(p.frame(p.CHALLENGE, 0, server_nonce))
    _, request_id, body = await p.read_frame(reader)
    client_nonce, _, role = auth.parse_hello(body)
    proof = auth.welcome_proof(key, role, server_nonce, client_nonce)
    writer.write(p.frame(p.WELCOME, request_id, proof))
