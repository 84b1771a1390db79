"""How other processes talk to the engine (the single writer of books, reservations and fills).

The API submits commands and reads the live book through an `EngineClient`. The engine
assigns `seq` and `now` to every command (the values a submitter puts there are ignored),
appends it to the durable journal, and only then applies it and answers with its events —
so an `Outcome` is an acknowledgement: the command survives any crash after it.

Implementations: `TcpEngineClient` (the `hybridex engine` process, production) and
`InProcessEngineClient` (the same service inside one process, for `hybridex dev` and tests).
Both are also `BatchEngineClient`s: `submit_many` puts a whole batch in flight with one
timeout (the indexer's outbox window) instead of a task, a future and a timer per command.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from backend.domain.errors import ErrorCode, RetryableError
from backend.matching.commands import Command
from backend.matching.events import Event


class EngineUnavailableError(RetryableError):
    """The engine could not take the command (unreachable, shutting down): nothing was sent,
    unless it is the subclass `EngineOutcomeUnknownError`."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.ENGINE_UNAVAILABLE, message)


class EngineOutcomeUnknownError(EngineUnavailableError):
    """The command was sent but no answer came (timeout, connection lost mid-request): it may
    be journaled. Only a re-post (idempotent) or the feeds tell; never report it as refused."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The journaled command's sequence number and every event it caused, in order;
    `answer`, when the engine wrote it, is the engine port's SUBMITTED body for it: the seq as
    a little-endian u64, then `codec.encode_events(events)`'s bytes (sent as it is)."""

    seq: int
    events: list[Event]
    answer: bytes | bytearray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """Aggregated levels, best first, as of command `seq` (SPEC §9 book endpoint)."""

    market_id: str
    seq: int
    feed_seq: int
    """Sequence number of the `book:{market_id}` feed this snapshot is consistent with."""
    bids: list[tuple[int, int]]
    """(price, total amount) per level."""
    asks: list[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A listed token's reference data (carried by `AddMarket` so the DB row can be written)."""

    address: str
    symbol: str
    decimals: int


@dataclass(frozen=True, slots=True)
class Intake:
    """What the submitter knows that the pure engine ignores but the database needs.

    Journaled beside the command (so a replay rebuilds every row from the journal alone):
    the trader's signature (PlaceOrder, CancelOrder, CancelAll, ReserveWithdrawal), the signed
    message's hash for cancels / withdrawals, a CancelAll's token pair as signed (zero
    addresses = every market), a withdrawal's nonce and signed expiry, an order's signed
    `maxFeeBps`, an AddMarket's tokens, and the block at which a FreezeTrader's on-chain exit
    takes effect.
    """

    signature: bytes | None = None
    signed_hash: bytes | None = None
    base_token: str | None = None
    quote_token: str | None = None
    nonce: int | None = None
    tokens: tuple[TokenInfo, ...] = ()
    effective_block: int | None = None
    max_fee_bps: int | None = None
    expiry: int | None = None


class EngineClient(Protocol):
    async def submit(
        self, command: Command, *, timeout: float, intake: Intake | None = None
    ) -> Outcome:
        """Sequence, journal durably, apply. Raises EngineOutcomeUnknownError when the command
        went out but no answer came back in `timeout`, EngineUnavailableError when it could
        not be sent at all."""
        ...

    async def book(self, market_id: str, depth: int) -> BookSnapshot:
        """The live book of `market_id`, aggregated to `depth` levels a side."""
        ...

    async def close(self) -> None: ...


class BatchEngineClient(EngineClient, Protocol):
    async def submit_many(
        self, commands: Sequence[tuple[Command, Intake | None]], *, timeout: float
    ) -> list[Outcome | BaseException]:
        """`submit` of every command, handed to the engine at once and **in list order** (so
        their seqs follow the list and the engine group-commits them), awaited with one
        `timeout` for all. One result per command, in order: its `Outcome`, or the exception
        `submit` would have raised — `EngineOutcomeUnknownError` for a command that went out
        but got no answer in time (it may be journaled), `EngineUnavailableError` for one
        that was never sent, a `DexError` for one the engine refused to take."""
        ...
