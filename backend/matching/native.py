"""The native engine: the state machine of `engine.py` in Rust (`backend/native`), behind the
same interface. `engine.py` stays the reference model; the two give the same events and the
same `state_hash()` for every command stream, and load each other's snapshots.

Commands and events cross the boundary as the dataclasses of `commands.py` and `events.py`.
A failure inside the core (a Rust panic, or arithmetic its invariants rule out) raises and
leaves the engine refusing every later command: its state may be half-applied, so the process
must stop and a restart replays the journal to the last good state.
"""

from __future__ import annotations

import hashlib

from backend import _native
from backend.domain.errors import ErrorCode
from backend.domain.types import MarketState, Side, TimeInForce
from backend.matching.commands import COMMAND_TYPES
from backend.matching.events import EVENT_TYPES, CancelReason
from backend.matching.invariants import InvariantError

_native.configure(
    list(COMMAND_TYPES),
    list(EVENT_TYPES),
    [Side.BUY, Side.SELL],
    [TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.POST_ONLY],
    [MarketState.ONLINE, MarketState.POST_ONLY, MarketState.CANCEL_ONLY, MarketState.HALTED],
    [
        CancelReason.USER,
        CancelReason.STP,
        CancelReason.EXPIRED,
        CancelReason.IOC_REMAINDER,
        CancelReason.FROZEN,
        CancelReason.CANCEL_ALL,
        CancelReason.FILL_REVERTED,
        CancelReason.SCHEDULED,
        CancelReason.DISCONNECT,
    ],
    [ErrorCode[name] for name in _native.CODE_NAMES],
    InvariantError,
)
configured = True


class NativeEngine(_native.Core):
    """All books, balances and order state of one engine shard, in the native core."""

    def state_hash(self) -> str:
        """Digest of the state, not of the journal position (see `snapshot.state_hash`)."""
        return hashlib.blake2b(self.canonical(True), digest_size=32).hexdigest()

    def to_snapshot(self) -> bytes:
        return self.canonical()

    @classmethod
    def from_snapshot(cls, data: bytes) -> NativeEngine:
        engine = cls()
        engine.load_snapshot(data)
        return engine
