"""The operator's nonce, whose truth is the database plus the chain, and the sender lock.

`next_nonce` = max(`eth_getTransactionCount(sender, "pending")`, highest stored nonce + 1):
a transaction stored but never broadcast (crash) keeps its nonce — it is re-broadcast as is —
and a nonce the key spent outside the worker is never reused. Nonce allocation, signing and
storing happen under `sender_lock`, so two workers never sign the same nonce for different
transactions.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3

from backend.db.models import SettlementTransaction
from backend.domain.errors import ErrorCode, RetryableError
from backend.settlement.revert import rpc_guard

_local_locks: dict[str, threading.Lock] = {}
_local_guard = threading.Lock()


def next_nonce(session: Session, w3: Web3, sender: str) -> int:
    with rpc_guard("eth_getTransactionCount"):
        chain = int(w3.eth.get_transaction_count(w3.to_checksum_address(sender), "pending"))
    stored = session.scalar(
        select(func.max(SettlementTransaction.nonce)).where(SettlementTransaction.sender == sender)
    )
    return max(chain, 0 if stored is None else int(stored) + 1)


def _lock_key(name: str) -> int:
    return zlib.crc32(f"hybridex:settlement:{name}".encode())


@contextmanager
def sender_lock(
    factory: sessionmaker[Session], name: str, timeout_s: float = 30.0
) -> Iterator[None]:
    """A cluster-wide mutex: a PostgreSQL session advisory lock on its own connection (a killed
    worker's lock dies with its connection); a process-local lock on SQLite (`hybridex dev`
    runs one process)."""
    bind = factory.kw["bind"]
    if bind.dialect.name != "postgresql":
        with _local_guard:
            lock = _local_locks.setdefault(name, threading.Lock())
        if not lock.acquire(timeout=timeout_s):
            raise RetryableError(ErrorCode.SETTLEMENT_BUSY, f"lock {name} is busy", lock=name)
        try:
            yield
        finally:
            lock.release()
        return
    key = _lock_key(name)
    with bind.connect() as conn:
        deadline = time.monotonic() + timeout_s
        while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
            conn.rollback()
            if time.monotonic() > deadline:
                raise RetryableError(ErrorCode.SETTLEMENT_BUSY, f"lock {name} is busy", lock=name)
            time.sleep(0.05)
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()
