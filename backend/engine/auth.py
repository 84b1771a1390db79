"""Who may talk to the engine port, and what each may send.

Every client holds the key of one role (HYBRIDEX_ENGINE_KEY_<ROLE>). A connection starts with a
challenge–response that proves both ends hold that key, then derives one key per direction;
every later frame carries `HMAC-SHA256(direction key, u64 frame counter ‖ header ‖ body)`, so a
frame cannot be forged, altered, replayed, reordered or moved to another connection. The same
handshake runs on the unix socket and on TCP: the role is what the allow-list needs.

    engine → client  CHALLENGE  server nonce (32)
    client → engine  HELLO      client nonce (32) ‖ HMAC(key, "hello" ‖ role ‖ sn ‖ cn) ‖ role
    engine → client  WELCOME    HMAC(key, "welcome" ‖ role ‖ cn ‖ sn)     (or ERROR, then close)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from collections.abc import Mapping, Sequence
from enum import StrEnum

from backend.matching.commands import (
    AddMarket,
    ArmCancelOnDisconnect,
    CancelAll,
    CancelOnDisconnect,
    CancelOrder,
    Command,
    Credit,
    Debit,
    FreezeTrader,
    PlaceOrder,
    ReleaseWithdrawal,
    ReserveWithdrawal,
    RevertFill,
    ScheduleCancel,
    SetMarketState,
)

NONCE = 32
TAG = 32
_U64 = struct.Struct("<Q")


class Role(StrEnum):
    API = "api"
    INDEXER = "indexer"
    SETTLEMENT = "settlement"
    OPERATOR = "operator"


# The commands each role may submit; every role may read (BOOK, STATE, FIND). `SweepExpired`
# comes only from the engine itself. The indexer also forwards the cancels traders make on
# chain (`cancelOrder`, `invalidateNonces`), and its in-doubt probe is a no-op CancelAll.
ALLOWED: Mapping[Role, frozenset[type[Command]]] = {
    Role.API: frozenset(
        {
            PlaceOrder,
            CancelOrder,
            CancelAll,
            ReserveWithdrawal,
            ScheduleCancel,
            ArmCancelOnDisconnect,
            CancelOnDisconnect,
        }
    ),
    Role.INDEXER: frozenset({Credit, Debit, FreezeTrader, CancelOrder, CancelAll}),
    Role.SETTLEMENT: frozenset({ReleaseWithdrawal, RevertFill}),
    Role.OPERATOR: frozenset({AddMarket, SetMarketState}),
}


def allowed(role: Role, command: Command) -> bool:
    return type(command) in ALLOWED[role]


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE)


def hello_proof(key: bytes, role: str, server_nonce: bytes, client_nonce: bytes) -> bytes:
    return _mac(key, b"hybridex-engine hello\0", role.encode(), server_nonce, client_nonce)


def welcome_proof(key: bytes, role: str, server_nonce: bytes, client_nonce: bytes) -> bytes:
    return _mac(key, b"hybridex-engine welcome\0", role.encode(), client_nonce, server_nonce)


def hello_body(key: bytes, role: Role, server_nonce: bytes, client_nonce: bytes) -> bytes:
    return client_nonce + hello_proof(key, role, server_nonce, client_nonce) + role.encode()


def parse_hello(body: bytes) -> tuple[bytes, bytes, str]:
    """(client nonce, proof, claimed role); raises ValueError when malformed."""
    if len(body) <= NONCE + TAG:
        raise ValueError("HELLO too short")
    return body[:NONCE], body[NONCE : NONCE + TAG], body[NONCE + TAG :].decode()


def match_key(
    keys: Sequence[bytes], role: str, server_nonce: bytes, client_nonce: bytes, proof: bytes
) -> bytes | None:
    """The key (of the role's current and previous ones) that made `proof`, if any."""
    for key in keys:
        if hmac.compare_digest(hello_proof(key, role, server_nonce, client_nonce), proof):
            return key
    return None


class FrameMac:
    """Tags of one direction of one connection: the counter makes a frame valid only at its
    place in the stream."""

    __slots__ = ("_base", "_counter")

    def __init__(self, key: bytes, direction: bytes, server_nonce: bytes, client_nonce: bytes):
        session_key = _mac(key, b"hybridex-engine " + direction + b"\0", server_nonce, client_nonce)
        self._base = hmac.new(session_key, digestmod=hashlib.sha256)
        self._counter = 0

    def tag(self, head: bytes, body: bytes | bytearray) -> bytes:
        h = self._base.copy()
        h.update(_U64.pack(self._counter))
        h.update(head)
        h.update(body)
        self._counter += 1
        return h.digest()


def session_macs(key: bytes, server_nonce: bytes, client_nonce: bytes) -> tuple[FrameMac, FrameMac]:
    """(client → engine, engine → client)."""
    return (
        FrameMac(key, b"c2s", server_nonce, client_nonce),
        FrameMac(key, b"s2c", server_nonce, client_nonce),
    )


def _mac(key: bytes, *parts: bytes) -> bytes:
    h = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        h.update(len(part).to_bytes(4, "little"))  # length-prefixed: no ambiguous joins
        h.update(part)
    return h.digest()
