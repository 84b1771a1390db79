"""Claim matched fills, in engine order, into batches with strictly sequential ids.

A fill without a `fill_settlements` row is `matched` and unclaimed. Under the batcher lock,
`form_batch` takes up to `batch_max_fills` of them ordered by `(seq, fill_index)` — when that
many are waiting or the oldest has waited `batch_max_age_s` — together with the signed cancels
not yet committed and the orders the engine closed itself (IOC / FOK remainder, self-trade
prevention, expiry, freeze) not yet committed dead, and inserts the batch (`pending`) and one
claim row per fill in ONE transaction. The id is the last assigned id + 1 (the database is the
truth; the chain's `lastBatchId` is the check). Only one batch is `pending` at a time: the tick
forms the next one as soon as that one is sent (several per tick, up to `max_in_flight_txs`
transactions), and while the sender is busy fills accumulate into the next (fuller) batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from backend.chain.exchange import (
    EncodedBatch,
    FillInput,
    Kill,
    SignedCancel,
    SignedCancelAll,
    SignedOrder,
    encode_batch,
)
from backend.db.models import (
    BatchCancel,
    BatchKill,
    Fill,
    FillSettlement,
    Market,
    Order,
    SettlementBatch,
)
from backend.db.models import SignedCancel as SignedCancelRow
from backend.db.session import insert_ignore, unit_of_work
from backend.domain.errors import ErrorCode, FatalError
from backend.domain.types import (
    ZERO_ADDRESS,
    BatchStatus,
    FillStatus,
    OrderStatus,
    Side,
    TimeInForce,
)
from backend.eip712.messages import CancelAll
from backend.eip712.messages import Order as OrderMessage
from backend.eip712.signing import Signature
from backend.settlement.context import SettlementContext
from backend.settlement.nonces import sender_lock
from backend.settlement.reads import claimed_floor, unclaimed
from backend.settlement.revert import rpc_guard

log = structlog.get_logger(__name__)

NO_SIGNATURE = b"\x00" * 65
MAX_CANCELS_PER_BATCH = 500
MAX_KILLS_PER_BATCH = 500
CLOSED_STATUSES = (OrderStatus.CANCELLED, OrderStatus.EXPIRED)


@dataclass(frozen=True, slots=True)
class BatchFill:
    fill_id: int
    seq: int
    fill_index: int
    input: FillInput


@dataclass(frozen=True, slots=True)
class BatchCancelItem:
    cancel_hash: bytes
    cancel: SignedCancel | None
    cancel_all: SignedCancelAll | None


@dataclass(frozen=True, slots=True)
class BatchContent:
    """What a batch id carries on chain: its live fills (engine order) and cancels."""

    batch_id: int
    fills: tuple[BatchFill, ...]
    cancels: tuple[BatchCancelItem, ...]
    kills: tuple[Kill, ...] = ()

    def encode(self) -> EncodedBatch:
        """A closed order that a fill of this batch uses is flagged on that order (it then keeps
        no remainder on chain, and costs nothing more); the others are sent as kills."""
        killed = {(k.trader, k.nonce) for k in self.kills}
        closed = {
            s.order
            for f in self.fills
            for s in (f.input.maker, f.input.taker)
            if (s.order.trader, s.order.nonce) in killed
        }
        flagged = {(o.trader, o.nonce) for o in closed}
        return encode_batch(
            [f.input for f in self.fills],
            [c.cancel for c in self.cancels if c.cancel is not None],
            [c.cancel_all for c in self.cancels if c.cancel_all is not None],
            [k for k in self.kills if (k.trader, k.nonce) not in flagged],
            closed,
        )

    def with_fills(self, fills: Sequence[BatchFill]) -> BatchContent:
        return replace(self, fills=tuple(fills))

    def with_cancels(self, cancels: Sequence[BatchCancelItem]) -> BatchContent:
        return replace(self, cancels=tuple(cancels))


def _signed_order(row: Order, market: Market) -> SignedOrder:
    order = OrderMessage(
        trader=row.trader,
        baseToken=market.base_token,
        quoteToken=market.quote_token,
        side=Side(row.side),
        price=int(row.price),
        amount=int(row.amount),
        timeInForce=TimeInForce(row.time_in_force),
        nonce=int(row.nonce),
        expiry=int(row.expiry),
        maxFeeBps=int(row.max_fee_bps),
    )
    return SignedOrder(order, Signature.from_bytes(bytes(row.signature)))


def load_batch(session: Session, batch_id: int) -> BatchContent:
    """The batch's fills that are not `failed`, in engine order, and its cancels."""
    maker, taker = aliased(Order), aliased(Order)
    rows = session.execute(
        select(Fill, maker, taker, Market)
        .join(FillSettlement, FillSettlement.fill_id == Fill.id)
        .join(maker, maker.order_hash == Fill.maker_order_hash)
        .join(taker, taker.order_hash == Fill.taker_order_hash)
        .join(Market, Market.id == Fill.market_id)
        .where(FillSettlement.batch_id == batch_id, FillSettlement.status != FillStatus.FAILED)
        .order_by(Fill.seq, Fill.fill_index)
    ).all()
    cache: dict[bytes, SignedOrder] = {}

    def signed(row: Order, market: Market) -> SignedOrder:
        found = cache.get(row.order_hash)
        if found is None:
            found = cache[row.order_hash] = _signed_order(row, market)
        return found

    fills = tuple(
        BatchFill(
            fill_id=f.id,
            seq=f.seq,
            fill_index=f.fill_index,
            input=FillInput(
                maker=signed(m, market),
                taker=signed(t, market),
                amount=int(f.amount),
                maker_fee=int(f.maker_fee),
                taker_fee=int(f.taker_fee),
            ),
        )
        for f, m, t, market in rows
    )
    cancel_rows = session.execute(
        select(SignedCancelRow, Order, Market)
        .join(BatchCancel, BatchCancel.cancel_hash == SignedCancelRow.cancel_hash)
        .outerjoin(Order, Order.order_hash == SignedCancelRow.order_hash)
        .outerjoin(Market, Market.id == Order.market_id)
        .where(BatchCancel.batch_id == batch_id, BatchCancel.refused_reason.is_(None))
        .order_by(SignedCancelRow.accepted_seq, SignedCancelRow.cancel_hash)
    ).all()
    cancels: list[BatchCancelItem] = []
    for c, order, market in cancel_rows:
        sig = Signature.from_bytes(bytes(c.signature))
        if c.kind == "cancel" and order is not None and market is not None:
            preimage = _signed_order(order, market).order
            cancels.append(BatchCancelItem(c.cancel_hash, SignedCancel(preimage, sig), None))
        elif c.kind == "cancel_all":
            assert c.base_token is not None
            assert c.quote_token is not None
            msg = CancelAll(
                trader=c.trader,
                baseToken=c.base_token,
                quoteToken=c.quote_token,
                nonceBelow=int(c.nonce_below or 0),
            )
            cancels.append(BatchCancelItem(c.cancel_hash, None, SignedCancelAll(msg, sig)))
    kill_rows = session.execute(
        select(Order.order_hash, Order.trader, Order.nonce)
        .join(BatchKill, BatchKill.order_hash == Order.order_hash)
        .where(BatchKill.batch_id == batch_id)
        .order_by(Order.updated_seq, Order.order_hash)
    ).all()
    kills = tuple(Kill(bytes(h), t, int(n)) for h, t, n in kill_rows)
    return BatchContent(batch_id=batch_id, fills=fills, cancels=tuple(cancels), kills=kills)


def _unclaimed_fills(session: Session, limit: int) -> list[tuple[int, datetime, int]]:
    """(id, created_at, seq) of the first `limit` unclaimed fills in engine order."""
    rows = session.execute(
        select(Fill.id, Fill.created_at, Fill.seq)
        .outerjoin(FillSettlement, FillSettlement.fill_id == Fill.id)
        .where(*unclaimed(claimed_floor(session)))
        .order_by(Fill.seq, Fill.fill_index)
        .limit(limit)
    ).all()
    return [(int(i), c, int(q)) for i, c, q in rows]


def cancel_floor(session: Session) -> int:
    """The `accepted_seq` below which no signed cancel is pending (0: look from the start).

    Each batch takes the pending cancels in `accepted_seq` order from the first one, so when
    the newest batch with cancels was formed, every effective cancel before its first one was
    committed (or refused) already; `effective` never changes after the engine wrote it, so it
    still is. Without it every tick walked every signed cancel ever accepted. A floor too low
    is only slower, never wrong.
    """
    newest = session.scalar(
        select(SettlementBatch.batch_id)
        .where(SettlementBatch.cancel_count > 0, SettlementBatch.status != BatchStatus.FAILED)
        .order_by(SettlementBatch.batch_id.desc())
        .limit(1)
    )
    if newest is None:
        return 0
    first = session.scalar(
        select(func.min(SignedCancelRow.accepted_seq))
        .join(BatchCancel, BatchCancel.cancel_hash == SignedCancelRow.cancel_hash)
        .where(BatchCancel.batch_id == newest)
    )
    return 0 if first is None else int(first)


def _pending_cancels(session: Session, before_seq: int | None) -> list[tuple[bytes, datetime]]:
    """Signed cancels the engine applied, never committed by a batch that has not failed nor
    refused by the contract, accepted before `before_seq` (None: no bound), from the floor.

    On chain a cancel voids its order's fills in every later batch, so committing one is only
    safe once the engine's own view agrees and its earlier fills are in this batch or before:
    - only `effective` cancels count. The engine refuses a cancel of an order it has not seen
      (or has closed), and the order may come (or have come) and trade: committing that signed
      cancel would make the chain refuse fills the engine applied — a trader could do so on
      purpose, by signing the cancel of an order before sending the order;
    - `before_seq` is the seq of the first unclaimed fill left out of this batch: a cancel
      that took effect after it waits for the batch that takes that fill.
    """
    committed = exists().where(
        and_(
            BatchCancel.cancel_hash == SignedCancelRow.cancel_hash,
            SettlementBatch.batch_id == BatchCancel.batch_id,
            or_(
                SettlementBatch.status != BatchStatus.FAILED,
                BatchCancel.refused_reason.is_not(None),
            ),
        )
    )
    terms: list[ColumnElement[bool]] = [
        SignedCancelRow.effective.is_(True),
        SignedCancelRow.signature != NO_SIGNATURE,
        SignedCancelRow.accepted_seq >= cancel_floor(session),
        ~committed,
    ]
    if before_seq is not None:
        terms.append(SignedCancelRow.accepted_seq < before_seq)
    rows = session.execute(
        select(SignedCancelRow.cancel_hash, SignedCancelRow.created_at)
        .where(*terms)
        .order_by(SignedCancelRow.accepted_seq)
        .limit(MAX_CANCELS_PER_BATCH)
    ).all()
    return [(bytes(h), c) for h, c in rows]


def kill_floor(session: Session) -> int:
    """The `updated_seq` below which no engine-closed order waits to be killed (as
    `cancel_floor`: each batch takes the pending ones in `updated_seq` order from the first,
    and a closed order's `updated_seq` never changes)."""
    newest = session.scalar(
        select(func.max(BatchKill.batch_id))
        .join(SettlementBatch, SettlementBatch.batch_id == BatchKill.batch_id)
        .where(SettlementBatch.status != BatchStatus.FAILED)
    )
    if newest is None:
        return 0
    first = session.scalar(
        select(func.min(Order.updated_seq))
        .join(BatchKill, BatchKill.order_hash == Order.order_hash)
        .where(BatchKill.batch_id == newest)
    )
    return 0 if first is None else int(first)


def _pending_kills(session: Session, before_seq: int | None) -> list[tuple[bytes, datetime]]:
    """Orders the engine closed itself, not yet committed dead by a batch that has not failed.

    Left out: orders closed by a trader-signed `Cancel` or `CancelAll` (committed as that
    cancel, which kills them too). An order closed by an on-chain cancel is dead on chain
    already; killing it again only costs its nonce bit. As for cancels, `before_seq` keeps a
    kill out while a fill matched before the order closed is still unclaimed: on chain the
    kill would void it.
    """
    committed = exists().where(
        and_(
            BatchKill.order_hash == Order.order_hash,
            SettlementBatch.batch_id == BatchKill.batch_id,
            SettlementBatch.status != BatchStatus.FAILED,
        )
    )
    signed_cancel = exists().where(
        and_(
            SignedCancelRow.order_hash == Order.order_hash,
            SignedCancelRow.effective.is_(True),
            SignedCancelRow.signature != NO_SIGNATURE,
        )
    )
    signed_cancel_all = exists().where(
        and_(
            SignedCancelRow.kind == "cancel_all",
            SignedCancelRow.effective.is_(True),
            SignedCancelRow.signature != NO_SIGNATURE,
            SignedCancelRow.trader == Order.trader,
            SignedCancelRow.nonce_below > Order.nonce,
            Market.id == Order.market_id,
            or_(
                SignedCancelRow.base_token == ZERO_ADDRESS,
                and_(
                    SignedCancelRow.base_token == Market.base_token,
                    SignedCancelRow.quote_token == Market.quote_token,
                ),
            ),
        )
    )
    terms: list[ColumnElement[bool]] = [
        Order.status.in_(CLOSED_STATUSES),
        Order.updated_seq >= kill_floor(session),
        ~committed,
        ~signed_cancel,
        ~signed_cancel_all,
    ]
    if before_seq is not None:
        terms.append(Order.updated_seq < before_seq)
    rows = session.execute(
        select(Order.order_hash, Order.updated_at)
        .where(*terms)
        .order_by(Order.updated_seq, Order.order_hash)
        .limit(MAX_KILLS_PER_BATCH)
    ).all()
    return [(bytes(h), u) for h, u in rows]


def next_batch_id(session: Session, ctx: SettlementContext) -> int:
    last_db = session.scalar(select(func.max(SettlementBatch.batch_id)))
    with rpc_guard("lastBatchId"):
        last_chain = ctx.reader.last_batch_id()
    if last_db is None:
        return last_chain + 1
    if last_chain > last_db:
        # Batches the database never assigned were applied: another settler uses the key.
        raise FatalError(
            ErrorCode.SETTLEMENT_INCONSISTENT,
            "the chain applied batches this database never assigned",
            last_db=last_db,
            last_chain=last_chain,
        )
    return int(last_db) + 1


def form_batch(
    ctx: SettlementContext, *, now: datetime | None = None, force: bool = False
) -> int | None:
    """Claims the next batch if one is due; returns its id (None: nothing due)."""
    settings = ctx.settings
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=settings.batch_max_age_s)
    with sender_lock(ctx.factory, "batcher"), unit_of_work(ctx.factory) as session:
        pending = session.scalar(
            select(func.count()).where(SettlementBatch.status == BatchStatus.PENDING)
        )
        if pending:
            return None
        found = _unclaimed_fills(session, settings.batch_max_fills + 1)
        fills = found[: settings.batch_max_fills]
        left_out = found[settings.batch_max_fills :]
        before_seq = left_out[0][2] if left_out else None
        cancels = _pending_cancels(session, before_seq)
        kills = _pending_kills(session, before_seq)
        if not fills and not cancels and not kills:
            return None
        oldest = min([c for _, c, _ in fills] + [c for _, c in cancels] + [u for _, u in kills])
        if len(fills) < settings.batch_max_fills and oldest > cutoff and not force:
            return None
        batch_id = next_batch_id(session, ctx)
        session.add(
            SettlementBatch(
                batch_id=batch_id,
                status=BatchStatus.PENDING,
                fill_count=len(fills),
                cancel_count=len(cancels),
            )
        )
        session.flush()
        claims = [
            {"fill_id": fid, "status": FillStatus.MATCHED, "batch_id": batch_id}
            for fid, _, _ in fills
        ]
        claimed = insert_ignore(
            session=session, target=FillSettlement, rows=claims, conflict=["fill_id"]
        )
        if claimed != len(claims):
            raise FatalError(
                ErrorCode.SETTLEMENT_INCONSISTENT,
                "a fill was claimed twice",
                batch_id=batch_id,
                claimed=claimed,
                expected=len(claims),
            )
        if cancels:
            insert_ignore(
                session=session,
                target=BatchCancel,
                rows=[{"batch_id": batch_id, "cancel_hash": h} for h, _ in cancels],
                conflict=["batch_id", "cancel_hash"],
            )
        if kills:
            insert_ignore(
                session=session,
                target=BatchKill,
                rows=[{"batch_id": batch_id, "order_hash": h} for h, _ in kills],
                conflict=["batch_id", "order_hash"],
            )
    log.info(
        "batch_formed",
        batch_id=batch_id,
        fills=len(fills),
        cancels=len(cancels),
        kills=len(kills),
    )
    return batch_id
