"""One error taxonomy for every layer (CONVENTIONS "Errors and outcomes").

Codes are stable public identifiers (SPEC §9); the numeric ranges group them by layer:
1xxx validation/auth, 2xxx risk, 3xxx matching, 4xxx settlement, 5xxx indexer, 9xxx system.
The API maps codes to HTTP statuses in one handler.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class ErrorCode(Enum):
    # 1xxx validation / auth
    INVALID_REQUEST = 1000
    INVALID_ORDER = 1001
    INVALID_SIGNATURE = 1002
    UNKNOWN_MARKET = 1003
    INVALID_TICK = 1004
    INVALID_LOT = 1005
    EXPIRED = 1006
    NONCE_REUSED = 1007
    ORDER_NOT_FOUND = 1008
    PAYLOAD_TOO_LARGE = 1009
    ORDER_CANCELLED = 1010  # nonce below the trader's CancelAll bar: cancelled before it arrived
    ADMIN_UNAUTHORIZED = 1011  # an operator endpoint without the operator's bearer token
    RECONCILIATION_NOT_RUN = 1012  # no reconciliation has been stored yet
    SESSION_REQUIRED = 1013  # a private read without the trader's signed Session
    SESSION_INVALID = 1014  # a Session that is malformed, badly signed, expired or too long
    SESSION_FORBIDDEN = 1015  # a valid Session of another trader than the one asked about
    FEE_BOUND_TOO_LOW = 1016  # an order's signed maxFeeBps is below what its market charges
    SCHEDULE_TOO_SOON = 1017  # a ScheduleCancel time in the past or nearer than the minimum delay
    # 2xxx risk
    INSUFFICIENT_BALANCE = 2000
    PRICE_OUT_OF_BAND = 2001
    ORDER_TOO_LARGE = 2002
    ACCOUNT_EXITING = 2003
    RATE_LIMITED = 2004
    TOO_MANY_CONNECTIONS = 2010  # open WebSockets per client address
    # 3xxx matching
    POST_ONLY_WOULD_TAKE = 3000
    FOK_NOT_FILLABLE = 3001
    MARKET_NOT_ACCEPTING = 3002
    DUPLICATE_CLIENT_ORDER_ID = 3003
    # 4xxx settlement
    SETTLEMENT_REVERTED = 4000
    SETTLEMENT_BUSY = 4001  # another worker holds the sender / batcher lock: retry
    SETTLEMENT_INCONSISTENT = 4002  # database and chain disagree on batches: stop, do not guess
    FILL_ALREADY_REVERTED = 4003  # a RevertFill for a fill the engine already undid
    # 5xxx indexer
    REORG_TOO_DEEP = 5000
    CHAIN_MISMATCH = 5001
    RPC_UNAVAILABLE = 5002  # the node did not answer usably after every retry
    ENGINE_IN_DOUBT = 5003  # a submitted command's fate cannot be established: stop, do not guess
    # 9xxx system
    CONFIGURATION = 9000
    ENGINE_UNAVAILABLE = 9001
    INVARIANT_VIOLATION = 9002  # engine state broke a must-hold rule: stop, do not guess
    PERSISTENCE_LAGGING = 9010  # the database is behind the engine: new orders wait, cancels pass
    RATE_LIMITER_UNAVAILABLE = 9020  # the limiter's store did not answer: writes are refused
    ENGINE_UNAUTHENTICATED = 9003  # engine port: no, a wrong or a forged role key
    ENGINE_FORBIDDEN = 9004  # engine port: a command outside the client role's allow-list

    @property
    def range(self) -> str:
        return {
            1: "validation",
            2: "risk",
            3: "matching",
            4: "settlement",
            5: "indexer",
            9: "system",
        }[self.value // 1000]


class DexError(Exception):
    """A failure with a stable code and the context a person needs to act on it."""

    def __init__(self, code: ErrorCode, message: str, **context: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.context = context

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.name}, {self.message!r}, {self.context!r})"


class RetryableError(DexError):
    """Transient: the same operation may succeed later (RPC timeout, lock contention)."""


class FatalError(DexError):
    """Stop the process: continuing would guess (reorg deeper than the window, wrong chain)."""


class HaltError(FatalError):
    """Stop the line: what this process recorded disagrees with what the chain did. The
    process stays up (metrics, probes) but does no more of its work until an operator has
    looked (docs/runbook.md "Settlement or the indexer halted on a mismatch")."""


class ConfigurationError(FatalError):
    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(ErrorCode.CONFIGURATION, message, **context)
