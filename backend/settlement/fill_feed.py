"""The `fills:{address}` channel: each fill's settlement state as the worker moves it.

`matched → submitted (batch, tx hash) → settled (tx, block) | failed (reason)`, and back to
`matched` when a transaction reverted or was reorged out. The settlement worker is the only
writer of these channels (the engine writes the others); a message is published *after* the
transition commits and carries the fill's state as re-read from the database, so a repeated
message is harmless. It is a notification: the REST fills endpoint is the record, and a client
that reconnects reloads it (docs/api.md).

Stores: Redis (production: the streams the API reads, seq assigned atomically by a script so
several workers can publish) and the in-process `MemoryFeedStore` (`hybridex dev`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Protocol

import structlog
from redis import Redis
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from backend.db.models import Fill, FillSettlement, SettlementBatch
from backend.domain.types import FillStatus
from backend.settlement.reads import latest_batch_transactions

log = structlog.get_logger(__name__)


class FillFeed(Protocol):
    def publish(self, channel: str, data: dict[str, Any]) -> int: ...


# KEYS: state hash, stream; ARGV: channel, payload, retention. The same layout as
# `RedisFeedStore`: the hash holds each channel's last seq, stream ids are `{seq}-0`.
_PUBLISH = """
local seq = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], seq .. '-0', 'd', ARGV[2])
return seq
"""


class RedisFillFeed:
    def __init__(self, url: str, *, prefix: str, retention: int) -> None:
        self.redis: Redis[bytes] = Redis.from_url(url)
        self.prefix = prefix
        self.retention = retention
        self._script = self.redis.register_script(_PUBLISH)

    def publish(self, channel: str, data: dict[str, Any]) -> int:
        keys = [f"{self.prefix}feed-state", f"{self.prefix}feed:{channel}"]
        payload = json.dumps(data, separators=(",", ":"))
        return int(self._script(keys=keys, args=[channel, payload, self.retention]))

    def close(self) -> None:
        self.redis.close()


def _hex(raw: bytes | None) -> str | None:
    return None if raw is None else "0x" + bytes(raw).hex()


def fill_messages(
    session: Session, *, batch_ids: Iterable[int] = (), fill_ids: Iterable[int] = ()
) -> list[tuple[str, dict[str, Any]]]:
    """(channel, payload) for both traders of every fill in those batches / with those ids."""
    batches, ids = list(set(batch_ids)), list(set(fill_ids))
    if not batches and not ids:
        return []
    rows = session.execute(
        select(Fill, FillSettlement, SettlementBatch)
        .join(FillSettlement, FillSettlement.fill_id == Fill.id)
        .outerjoin(SettlementBatch, SettlementBatch.batch_id == FillSettlement.batch_id)
        .where(or_(FillSettlement.batch_id.in_(batches), Fill.id.in_(ids)))
        .order_by(Fill.id)
    ).all()
    in_flight = {b.batch_id for _, _, b in rows if b is not None and b.settled_tx_hash is None}
    latest = latest_batch_transactions(session, in_flight)
    out = []
    for fill, state, batch in rows:
        if batch is not None and batch.settled_tx_hash is not None:
            tx: bytes | None = batch.settled_tx_hash
        else:
            tx = None if state.batch_id is None else latest.get(state.batch_id)
        common = {
            "fillId": fill.id,
            "market": fill.market_id,
            "status": state.status.value,
            "batchId": state.batch_id,
            "txHash": _hex(tx),
            "block": None if batch is None else batch.settled_block,
            "failureReason": state.failure_reason if state.status is FillStatus.FAILED else None,
        }
        for trader, role, order_hash in (
            (fill.maker_trader, "maker", fill.maker_order_hash),
            (fill.taker_trader, "taker", fill.taker_order_hash),
        ):
            out.append((f"fills:{trader}", {**common, "role": role, "orderHash": _hex(order_hash)}))
    return out


def publish_fill_states(
    feed: FillFeed | None,
    factory: sessionmaker[Session],
    *,
    batch_ids: Iterable[int] = (),
    fill_ids: Iterable[int] = (),
) -> None:
    """After a committed transition: tell both traders of each affected fill. A feed failure
    is logged and never fails settlement (the database already holds the truth)."""
    if feed is None:
        return
    try:
        with factory() as session:
            messages = fill_messages(session, batch_ids=batch_ids, fill_ids=fill_ids)
        for channel, data in messages:
            feed.publish(channel, data)
    except Exception as exc:
        log.warning("fill_feed_publish_failed", error=repr(exc))
