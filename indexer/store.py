"""The indexer's writes (ponder's database actions): blocks, events, deposits, cursors.

Every function takes `*, session` and never commits: the daemon wraps one sync step (a
backfill chunk, or a realtime poll) with its projection and cursor in one `unit_of_work`.
Writes are idempotent per `(block_hash, log_index)` (`INSERT … ON CONFLICT DO NOTHING`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from backend.db.models.indexer import ChainBlock, ChainEvent, Deposit, IndexerCursor
from backend.db.models.reference import Token
from backend.db.session import insert_ignore, upsert
from backend.domain.types import DepositStatus
from indexer.events import ChainLog, args_to_json
from indexer.rpc import BlockHeader

HEAD_CURSOR = "exchange"
CONFIRMED_CURSOR = "exchange:confirmed"


@dataclass(frozen=True, slots=True)
class Cursor:
    number: int
    hash: bytes


def load_cursor(*, session: Session, name: str) -> Cursor | None:
    row = session.get(IndexerCursor, name)
    return None if row is None else Cursor(row.block_number, row.block_hash)


def cursor_chain_id(*, session: Session) -> int | None:
    row = session.get(IndexerCursor, HEAD_CURSOR)
    return None if row is None else row.chain_id


def set_cursor(*, session: Session, name: str, chain_id: int, number: int, hash_: bytes) -> None:
    upsert(
        session=session,
        target=IndexerCursor,
        rows=[{"name": name, "chain_id": chain_id, "block_number": number, "block_hash": hash_}],
        conflict=["name"],
    )


def known_tokens(*, session: Session) -> set[str]:
    return set(session.scalars(select(Token.address)))


def save_blocks(*, session: Session, headers: Sequence[BlockHeader]) -> None:
    if not headers:
        return
    numbers = [h.number for h in headers]
    session.execute(delete(ChainBlock).where(ChainBlock.number.in_(numbers)))
    session.execute(
        insert(ChainBlock),
        [
            {
                "number": h.number,
                "hash": h.hash,
                "parent_hash": h.parent_hash,
                "timestamp": h.timestamp,
            }
            for h in headers
        ],
    )


def load_window(*, session: Session, top: int, size: int) -> list[BlockHeader]:
    """The stored headers linked by parent hash that end at `top` (newest last)."""
    rows = session.scalars(
        select(ChainBlock)
        .where(ChainBlock.number <= top, ChainBlock.number > top - size - 1)
        .order_by(ChainBlock.number.desc())
    ).all()
    out: list[BlockHeader] = []
    for row in rows:
        header = BlockHeader(row.number, row.hash, row.parent_hash, row.timestamp)
        if out and not (header.number == out[-1].number - 1 and header.hash == out[-1].parent_hash):
            break
        if not out and header.number != top:
            break
        out.append(header)
    out.reverse()
    return out


def prune_blocks(*, session: Session, below: int) -> None:
    session.execute(delete(ChainBlock).where(ChainBlock.number < below))


def save_events(*, session: Session, logs: Sequence[ChainLog], tokens: set[str]) -> int:
    """Stores the events and the deposits among them; returns how many events were new."""
    if not logs:
        return 0
    new = insert_ignore(
        session=session,
        target=ChainEvent,
        rows=[
            {
                "block_hash": e.block_hash,
                "log_index": e.log_index,
                "block_number": e.block_number,
                "tx_hash": e.tx_hash,
                "event": e.name,
                "address": e.address,
                "args": args_to_json(e.args),
            }
            for e in logs
        ],
        conflict=["block_hash", "log_index"],
    )
    deposits = [
        {
            "block_hash": e.block_hash,
            "log_index": e.log_index,
            "tx_hash": e.tx_hash,
            "block_number": e.block_number,
            "trader": e.args["trader"],
            "token": e.args["token"],
            "amount": e.args["amount"],
            "status": DepositStatus.SEEN,
        }
        for e in logs
        if e.name == "Deposited" and e.args["token"] in tokens
    ]
    insert_ignore(
        session=session, target=Deposit, rows=deposits, conflict=["block_hash", "log_index"]
    )
    return new


def delete_above(*, session: Session, number: int, orphan: bool = True) -> None:
    """Forgets what blocks above `number` wrote (a reorg, or a re-sync from `number + 1`).

    On a reorg (`orphan`) deposits are kept as history, marked `orphaned`; the projection has
    already decided what the engine must undo. On a re-sync the blocks are the same chain:
    `seen` deposits are dropped (they come back) and credited ones kept as they are.
    """
    session.execute(delete(ChainEvent).where(ChainEvent.block_number > number))
    session.execute(delete(ChainBlock).where(ChainBlock.number > number))
    if not orphan:
        session.execute(
            delete(Deposit).where(
                Deposit.block_number > number, Deposit.status == DepositStatus.SEEN
            )
        )
        return
    session.execute(
        update(Deposit)
        .where(Deposit.block_number > number, Deposit.status != DepositStatus.ORPHANED)
        .values(status=DepositStatus.ORPHANED)
    )


def events_between(
    *, session: Session, after: int, upto: int, names: Sequence[str]
) -> list[ChainEvent]:
    return list(
        session.scalars(
            select(ChainEvent)
            .where(
                ChainEvent.block_number > after,
                ChainEvent.block_number <= upto,
                ChainEvent.event.in_(list(names)),
            )
            .order_by(ChainEvent.block_number, ChainEvent.log_index)
        )
    )
