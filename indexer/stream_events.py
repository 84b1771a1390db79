"""The indexer's events of the stream (docs/events.md): deposits and on-chain withdrawals as
they are seen, as they reach the configured confirmations, and when a reorg takes their block
away; written to the outbox in the sync step's transaction, only when the stream is configured
(`IndexerConfig.stream`).

`Deposited`, `Withdrawn` and `ExitWithdrawn` are read either as decoded `ChainLog`s (args as
Python values) or as stored rows (args in their JSON form); both carry `tx_hash`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.models.indexer import ChainEvent
from backend.stream import events, outbox
from backend.stream.outbox import StreamEvent

KINDS = ("Deposited", "Withdrawn", "ExitWithdrawn")


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else bytes.fromhex(str(value).removeprefix("0x"))


def _event(e: Any, name: str, status: str, confirmations: int) -> StreamEvent:
    a = e.args
    common: dict[str, Any] = {
        "tx_hash": _bytes(e.tx_hash),
        "log_index": int(e.log_index),
        "block_hash": _bytes(e.block_hash),
        "trader": str(a["trader"]),
        "token": str(a["token"]),
        "amount": int(a["amount"]),
        "block": int(e.block_number),
        "confirmations": confirmations,
        "status": status,
    }
    if name == "Deposited":
        return events.deposit(**common)
    from indexer.projection import withdrawal_id_for  # projection imports this module

    wid = withdrawal_id_for(str(a["trader"]), int(a["nonce"])) if name == "Withdrawn" else None
    return events.withdrawal_chain(**common, withdrawal_id=wid, exit=name == "ExitWithdrawn")


def add_chain(
    session: Session, logs: Iterable[Any], *, status: str, head: int, tokens: set[str]
) -> None:
    """Events for the deposits and withdrawals among `logs` (`status`: `seen` as the block is
    indexed, `confirmed` once `head` makes it final); confirmations = head - block + 1."""
    out: list[StreamEvent] = []
    for e in logs:
        name = getattr(e, "name", None) or e.event
        if name in KINDS and str(e.args["token"]) in tokens:
            out.append(_event(e, name, status, max(head - int(e.block_number) + 1, 0)))
    outbox.add(session, out)


def add_reorged(session: Session, *, above: int, tokens: set[str]) -> None:
    """`reorged` events for the deposits and withdrawals of blocks above `above` (called before
    the reorg forgets them)."""
    rows = session.execute(
        select(
            ChainEvent.tx_hash,
            ChainEvent.log_index,
            ChainEvent.block_hash,
            ChainEvent.block_number,
            ChainEvent.event,
            ChainEvent.args,
        )
        .where(ChainEvent.block_number > above, ChainEvent.event.in_(KINDS))
        .order_by(ChainEvent.block_number, ChainEvent.log_index)
    ).all()
    out = [_event(r, r.event, "reorged", 0) for r in rows if str(r.args["token"]) in tokens]
    outbox.add(session, out)
