"""Simulate, sign, store, broadcast: the operator's transactions, crash-safe.

Order of a send (under the sender lock, so nonces and batch order never interleave):
1. re-read the target and refuse unless it is still due (`pending` batch with no lower pending
   batch; `reserved` withdrawal without a settlement row) and fewer than `max_in_flight_txs`
   nonces are in flight;
2. simulate on the pending state with ONE call that also yields the gas limit (`prepare`):
   an `eth_call` at a gas budget learnt from the recent settled batches (on a fresh start,
   from this process's last estimate; success proves the limit), or `eth_estimateGas` when
   there is no model or the call fails at the budget; a revert bisects the batch
   (`bisect.py`, `eth_call`s) and fails the guilty fills with their decoded reason;
3. price (`fees.py`), take the nonce (`nonces.py`), sign, and store the raw transaction while
   moving the batch `pending → submitted` (compare-and-set) — one commit;
4. broadcast those stored bytes, then record `signed → broadcast`.
A crash before 3 leaves the batch `pending` (sent again from 1); after 3 the monitor
re-broadcasts the same bytes (same nonce, same hash) — and the contract's sequential batch id
is the last guard.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from hexbytes import HexBytes
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from web3.exceptions import TransactionNotFound, Web3RPCError

from backend.chain.exchange import EncodedBatch, exchange_contract, fills_hash, settle_calldata
from backend.db.models import (
    BatchCancel,
    FillSettlement,
    SettlementBatch,
    SettlementTransaction,
    Withdrawal,
    WithdrawalSettlement,
)
from backend.db.session import unit_of_work
from backend.domain.errors import ErrorCode, FatalError, RetryableError
from backend.domain.types import BatchStatus, FillStatus, TxStatus, WithdrawalStatus
from backend.settlement import metrics, stream_events
from backend.settlement.batcher import BatchContent, BatchFill, load_batch
from backend.settlement.bisect import isolate_failures
from backend.settlement.context import SettlementContext
from backend.settlement.crashpoints import crash_point
from backend.settlement.fees import Fees, initial_fees
from backend.settlement.fill_feed import publish_fill_states
from backend.settlement.fill_reverts import owe_reverts
from backend.settlement.nonces import next_nonce, sender_lock
from backend.settlement.releases import owe_release
from backend.settlement.revert import Revert, estimate, rpc_guard, simulate

log = structlog.get_logger(__name__)

ACTIVE_TX = (TxStatus.SIGNED, TxStatus.BROADCAST, TxStatus.MINED)
GAS_MARGIN_PERCENT = 25
GAS_MARGIN_FIXED = 20_000
GAS_MODEL_BATCHES = 8
"""Recent settled batches the gas budget learns its gas per item (fill or cancel) from."""
GAS_MODEL_MIN_ITEMS = 10
"""Smaller batches are left out of the model: their fixed cost would inflate the per-item gas."""
GAS_BUDGET_FIXED = 100_000


def rowcount(result: Any) -> int:
    """Rows an UPDATE matched (a `CursorResult`; typed loosely by SQLAlchemy's stubs)."""
    return int(result.rowcount)


def sender_lock_name(ctx: SettlementContext) -> str:
    return f"sender:{ctx.sender}"


def in_flight(session: Session, sender: str) -> int:
    """Nonces of `sender` with a transaction not yet confirmed (replacements count once)."""
    count = session.scalar(
        select(func.count(func.distinct(SettlementTransaction.nonce))).where(
            SettlementTransaction.sender == sender, SettlementTransaction.status.in_(ACTIVE_TX)
        )
    )
    return int(count or 0)


@dataclass(frozen=True, slots=True)
class Head:
    base_fee: int
    gas_limit: int


def latest_head(ctx: SettlementContext) -> Head:
    with rpc_guard("eth_getBlockByNumber"):
        block = ctx.w3.eth.get_block("latest")
    return Head(int(block.get("baseFeePerGas", 0) or 0), int(block.get("gasLimit", 0) or 0))


def base_fee(ctx: SettlementContext) -> int:
    return latest_head(ctx).base_fee


def with_margin(gas: int) -> int:
    return gas * (100 + GAS_MARGIN_PERCENT) // 100 + GAS_MARGIN_FIXED


def gas_per_item(session: Session) -> int | None:
    """The highest gas per item (fill or cancel) of the recent settled batches; None without
    history."""
    items = SettlementBatch.fill_count + SettlementBatch.cancel_count
    rows = session.execute(
        select(SettlementBatch.gas_used, items)
        .where(
            SettlementBatch.status == BatchStatus.SETTLED,
            SettlementBatch.gas_used.is_not(None),
            items >= GAS_MODEL_MIN_ITEMS,
        )
        .order_by(SettlementBatch.batch_id.desc())
        .limit(GAS_MODEL_BATCHES)
    ).all()
    if not rows:
        return None
    return max(-(-int(gas or 0) // int(n)) for gas, n in rows)


def gas_budget(items: int, per_item: int | None, block_gas_limit: int) -> int | None:
    """A gas limit for `items` from the model (with the usual margin), or None: no history, or
    it would not fit in a block."""
    if per_item is None:
        return None
    budget = GAS_BUDGET_FIXED + items * per_item * (100 + GAS_MARGIN_PERCENT) // 100
    return budget if block_gas_limit <= 0 or budget <= block_gas_limit else None


def simulate_with_gas(
    ctx: SettlementContext, data: bytes, budget: int | None, *, items: int = 0
) -> Revert | int:
    """ONE simulation on the pending state that also yields the gas limit to sign with.

    With a budget: `eth_call` at that limit; success proves the limit suffices on this state (a
    node runs the call exactly as it would run the transaction). Without one, or when the call
    fails at the budget: `eth_estimateGas` (plus the margin), which reverts exactly as an
    `eth_call` does. A failure at the budget is never trusted as the batch's revert: a tight
    limit can starve an inner call (`ecrecover`) into a misleading error, so the estimate —
    run by the node with its own gas cap — decides.
    """
    if budget is not None:
        try:
            revert = simulate(ctx.w3, sender=ctx.sender, to=ctx.exchange, data=data, gas=budget)
        except RetryableError as exc:
            if not isinstance(exc.__cause__, Web3RPCError):
                raise  # the node is unreachable: not the budget's fault
            revert = Revert("OutOfGas", (str(exc.__cause__),), b"")
        if revert is None:
            return budget
        log.info("gas_budget_failed", budget=budget, reason=revert.reason)
    outcome = estimate(ctx.w3, sender=ctx.sender, to=ctx.exchange, data=data)
    if isinstance(outcome, Revert):
        return outcome
    if items >= GAS_MODEL_MIN_ITEMS:
        ctx.estimated_gas_per_item = -(-outcome // items)
    return with_margin(outcome)


def sign_and_store(
    session: Session,
    ctx: SettlementContext,
    *,
    kind: str,
    target_id: int,
    data: bytes,
    gas: int,
    fees: Fees,
    nonce: int,
    replaces: bytes | None = None,
) -> SettlementTransaction:
    """Signs with the operator key and adds the `signed` row (the caller commits)."""
    tx: dict[str, Any] = {
        "type": 2,
        "chainId": ctx.chain_id,
        "nonce": nonce,
        "to": ctx.exchange,
        "value": 0,
        "data": data,
        "gas": gas,
        "maxFeePerGas": fees.max_fee_per_gas,
        "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
    }
    signed = ctx.account.sign_transaction(tx)
    row = SettlementTransaction(
        kind=kind,
        batch_id=target_id if kind == "batch" else None,
        withdrawal_id=target_id if kind == "withdrawal" else None,
        sender=ctx.sender,
        nonce=nonce,
        tx_hash=bytes(signed.hash),
        raw_tx=bytes(signed.raw_transaction),
        max_fee_per_gas=fees.max_fee_per_gas,
        max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
        status=TxStatus.SIGNED,
        replaces_tx_hash=replaces,
    )
    session.add(row)
    session.flush()
    return row


def broadcast(ctx: SettlementContext, raw_tx: bytes, tx_hash: bytes) -> bool:
    """Sends stored bytes; False if the node refused them (already known, mined, underpriced…)
    — the monitor decides from receipts, never from this answer."""
    try:
        with rpc_guard("eth_sendRawTransaction"):
            ctx.w3.eth.send_raw_transaction(raw_tx)
    except RetryableError as exc:
        log.warning("tx_broadcast_refused", tx_hash="0x" + tx_hash.hex(), error=str(exc.__cause__))
        return False
    return True


def record_broadcast(ctx: SettlementContext, tx_id: int) -> None:
    with rpc_guard("eth_blockNumber"):
        block = int(ctx.w3.eth.block_number)
    with unit_of_work(ctx.factory) as session:
        session.execute(
            update(SettlementTransaction)
            .where(
                SettlementTransaction.id == tx_id, SettlementTransaction.status == TxStatus.SIGNED
            )
            .values(status=TxStatus.BROADCAST, broadcast_block=block)
        )


def resign_replacement(
    session: Session, ctx: SettlementContext, stuck: SettlementTransaction, fees: Fees
) -> SettlementTransaction:
    """Same nonce, same call, higher fees: a new row that `replaces_tx_hash` the stuck one."""
    old = TypedTransaction.from_bytes(HexBytes(stuck.raw_tx)).as_dict()
    return sign_and_store(
        session,
        ctx,
        kind=stuck.kind,
        target_id=int((stuck.batch_id if stuck.kind == "batch" else stuck.withdrawal_id) or 0),
        data=bytes(old["data"]),
        gas=int(old["gas"]),
        fees=fees,
        nonce=stuck.nonce,
        replaces=stuck.tx_hash,
    )


def receipt_of(ctx: SettlementContext, tx_hash: bytes) -> Any:
    try:
        with rpc_guard("eth_getTransactionReceipt"):
            return ctx.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
    except RetryableError as exc:
        if isinstance(exc.__cause__, TransactionNotFound):
            return None
        raise


# ----------------------------------------------------------------------------------------------
# Batches
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prepared:
    """A batch as it will be signed: simulated on the pending state, encoded once."""

    content: BatchContent
    encoded: EncodedBatch
    data: bytes
    gas: int


def _simulate_content(ctx: SettlementContext, content: BatchContent) -> Revert | None:
    data = settle_calldata(content.batch_id, content.encode())
    return simulate(ctx.w3, sender=ctx.sender, to=ctx.exchange, data=data)


def prepare(
    ctx: SettlementContext, content: BatchContent, per_item: int | None, block_gas_limit: int
) -> Prepared | Revert:
    encoded = content.encode()
    data = settle_calldata(content.batch_id, encoded)
    items = len(content.fills) + len(content.cancels)
    if per_item is None:  # no settled history yet: this process's last estimate, if any
        per_item = ctx.estimated_gas_per_item
    budget = gas_budget(items, per_item, block_gas_limit)
    outcome = simulate_with_gas(ctx, data, budget, items=items)
    if isinstance(outcome, Revert):
        return outcome
    return Prepared(content, encoded, data, outcome)


def _check_global(content: BatchContent, revert: Revert) -> None:
    if revert.name == "BatchIdMismatch" and revert.args and int(revert.args[0]) > content.batch_id:
        raise FatalError(
            ErrorCode.SETTLEMENT_INCONSISTENT,
            "the chain already applied this batch id",
            batch_id=content.batch_id,
            expected=int(revert.args[0]),
        )
    raise RetryableError(
        ErrorCode.SETTLEMENT_REVERTED,
        f"batch simulation reverted with {revert.reason}",
        batch_id=content.batch_id,
        reason=revert.reason,
    )


def _fail_fills(
    ctx: SettlementContext, batch_id: int, failed: list[tuple[BatchFill, Revert]]
) -> None:
    with unit_of_work(ctx.factory) as session:
        newly_failed: list[int] = []
        for fill, revert in failed:
            changed = session.execute(
                update(FillSettlement)
                .where(
                    FillSettlement.fill_id == fill.fill_id,
                    FillSettlement.status == FillStatus.MATCHED,
                )
                .values(status=FillStatus.FAILED, failure_reason=revert.reason)
            )
            if rowcount(changed):
                newly_failed.append(fill.fill_id)
        # The engine's ledger is ahead of the chain by these fills: owe their undoing.
        owe_reverts(session, newly_failed)
        stream_events.fill_states(ctx, session, FillStatus.FAILED, fill_ids=newly_failed)
    publish_fill_states(ctx.fill_feed, ctx.factory, fill_ids=[fill.fill_id for fill, _ in failed])
    for fill, revert in failed:
        metrics.FILLS_FAILED.labels(reason=revert.name).inc()
        log.warning(
            "fill_failed",
            batch_id=batch_id,
            fill_id=fill.fill_id,
            seq=fill.seq,
            fill_index=fill.fill_index,
            reason=revert.reason,
        )


def _refuse_cancels(ctx: SettlementContext, content: BatchContent, first: Revert) -> BatchContent:
    """The batch without the cancels the contract refuses (found by bisection, as fills are).
    Each keeps its row, marked refused, so no later batch picks it (and is refused) again."""
    no_fills = content.with_fills([])
    result = isolate_failures(
        content.cancels,
        lambda cancels: _simulate_content(ctx, no_fills.with_cancels(cancels)),
        first_revert=first,
    )
    with unit_of_work(ctx.factory) as session:
        for cancel, revert in result.failed:
            session.execute(
                update(BatchCancel)
                .where(
                    BatchCancel.batch_id == content.batch_id,
                    BatchCancel.cancel_hash == cancel.cancel_hash,
                )
                .values(refused_reason=revert.reason)
            )
    for cancel, revert in result.failed:
        metrics.CANCELS_REFUSED.inc()
        log.error(
            "batch_cancel_refused",
            batch_id=content.batch_id,
            cancel_hash="0x" + cancel.cancel_hash.hex(),
            reason=revert.reason,
        )
    return content.with_cancels(result.good)


def _prepared_after_bisection(
    ctx: SettlementContext, content: BatchContent, per_item: int | None, block_gas_limit: int
) -> Prepared:
    outcome = prepare(ctx, content, per_item, block_gas_limit)
    if isinstance(outcome, Prepared):
        return outcome
    if outcome.is_global:
        _check_global(content, outcome)
    raise RetryableError(  # the pending state moved between the simulations: start again
        ErrorCode.SETTLEMENT_REVERTED,
        f"batch still reverts after bisection with {outcome.reason}",
        batch_id=content.batch_id,
        reason=outcome.reason,
    )


def simulate_and_bisect(
    ctx: SettlementContext,
    content: BatchContent,
    *,
    per_item: int | None = None,
    block_gas_limit: int = 0,
) -> Prepared:
    """The batch as it will be sent: fills that revert are failed (and recorded) first. One
    node call when nothing reverts (`prepare`); `eth_call`s to bisect when something does."""
    first = prepare(ctx, content, per_item, block_gas_limit)
    if isinstance(first, Prepared):
        return first
    revert = first
    if revert.is_global:
        _check_global(content, revert)
    if content.cancels:
        cancels_only = _simulate_content(ctx, content.with_fills([]))
        if cancels_only is not None and not cancels_only.is_global:
            content = _refuse_cancels(ctx, content, cancels_only)
            fills_revert = _simulate_content(ctx, content)
            if fills_revert is None:
                return _prepared_after_bisection(ctx, content, per_item, block_gas_limit)
            revert = fills_revert
    result = isolate_failures(
        content.fills,
        lambda fills: _simulate_content(ctx, content.with_fills(fills)),
        first_revert=revert,
    )
    log.info(
        "batch_bisected",
        batch_id=content.batch_id,
        failed=len(result.failed),
        kept=len(result.good),
        simulations=result.simulations,
    )
    _fail_fills(ctx, content.batch_id, result.failed)
    return _prepared_after_bisection(
        ctx, content.with_fills(result.good), per_item, block_gas_limit
    )


def send_batch(ctx: SettlementContext, batch_id: int) -> str:
    """Advances batch `batch_id` from `pending` to `submitted` (signed, stored, broadcast)."""
    with sender_lock(ctx.factory, sender_lock_name(ctx)):
        with ctx.factory() as session:
            batch = session.get(SettlementBatch, batch_id)
            if batch is None:
                return "unknown"
            if batch.status is not BatchStatus.PENDING:
                return str(batch.status.value)
            lower = session.scalar(
                select(func.count()).where(
                    SettlementBatch.batch_id < batch_id,
                    SettlementBatch.status == BatchStatus.PENDING,
                )
            )
            if lower:
                return "deferred"
            if in_flight(session, ctx.sender) >= ctx.settings.max_in_flight_txs:
                return "in_flight_full"
            content = load_batch(session, batch_id)
            per_item = gas_per_item(session)
        head = latest_head(ctx)
        prepared = simulate_and_bisect(
            ctx, content, per_item=per_item, block_gas_limit=head.gas_limit
        )
        crash_point("after_simulation")
        content, encoded, data, gas = (
            prepared.content,
            prepared.encoded,
            prepared.data,
            prepared.gas,
        )
        fees = initial_fees(head.base_fee, ctx.settings)
        with unit_of_work(ctx.factory) as session:
            nonce = next_nonce(session, ctx.w3, ctx.sender)
            moved = rowcount(
                session.execute(
                    update(SettlementBatch)
                    .where(
                        SettlementBatch.batch_id == batch_id,
                        SettlementBatch.status == BatchStatus.PENDING,
                    )
                    .values(
                        status=BatchStatus.SUBMITTED,
                        submitted_at=datetime.now(UTC),
                        fill_count=len(content.fills),
                        cancel_count=len(content.cancels),
                        fills_hash=fills_hash(encoded),
                    )
                )
            )
            if moved != 1:
                session.rollback()
                return "raced"
            tx = sign_and_store(
                session,
                ctx,
                kind="batch",
                target_id=batch_id,
                data=data,
                gas=gas,
                fees=fees,
                nonce=nonce,
            )
            session.execute(
                update(FillSettlement)
                .where(
                    FillSettlement.batch_id == batch_id,
                    FillSettlement.status == FillStatus.MATCHED,
                )
                .values(status=FillStatus.SUBMITTED)
            )
            stream_events.fill_states(
                ctx,
                session,
                FillStatus.SUBMITTED,
                batch_id=batch_id,
                tx_hash=tx.tx_hash,
                attempt=tx.tx_hash,
            )
            tx_id, raw, tx_hash = tx.id, tx.raw_tx, tx.tx_hash
        metrics.BATCHES_SENT.inc()
        publish_fill_states(ctx.fill_feed, ctx.factory, batch_ids=[batch_id])
        log.info(
            "batch_signed",
            batch_id=batch_id,
            tx_hash="0x" + tx_hash.hex(),
            nonce=nonce,
            fills=len(content.fills),
            cancels=len(content.cancels),
            gas=gas,
            max_fee_per_gas=fees.max_fee_per_gas,
        )
        crash_point("after_store")
        sent = broadcast(ctx, raw, tx_hash)
        crash_point("after_broadcast")
        if sent:
            record_broadcast(ctx, tx_id)
        return "submitted"


# ----------------------------------------------------------------------------------------------
# Withdrawals
# ----------------------------------------------------------------------------------------------


def withdraw_calldata(ctx: SettlementContext, w: Withdrawal) -> bytes:
    contract = exchange_contract(ctx.w3, ctx.exchange)
    encoded = contract.encode_abi(
        "withdraw",
        args=[
            (w.trader, w.token, int(w.amount), int(w.nonce), int(w.expiry)),
            bytes(w.signature),
        ],
    )
    return bytes.fromhex(encoded[2:])


def send_withdrawal(ctx: SettlementContext, withdrawal_id: int) -> str:
    """Submits `withdraw(w, signature)` for a withdrawal the engine reserved."""
    with sender_lock(ctx.factory, sender_lock_name(ctx)):
        with ctx.factory() as session:
            w = session.get(Withdrawal, withdrawal_id)
            if w is None or w.status is not WithdrawalStatus.RESERVED:
                return "not_reserved"
            if session.get(WithdrawalSettlement, withdrawal_id) is not None:
                return "already_sent"
            if in_flight(session, ctx.sender) >= ctx.settings.max_in_flight_txs:
                return "in_flight_full"
        data = withdraw_calldata(ctx, w)
        outcome = estimate(ctx.w3, sender=ctx.sender, to=ctx.exchange, data=data)
        if isinstance(outcome, Revert):
            revert = outcome
            if revert.is_global:
                raise RetryableError(
                    ErrorCode.SETTLEMENT_REVERTED,
                    f"withdrawal simulation reverted with {revert.reason}",
                    withdrawal_id=withdrawal_id,
                )
            with unit_of_work(ctx.factory) as session:
                session.add(
                    WithdrawalSettlement(
                        withdrawal_id=withdrawal_id,
                        status=WithdrawalStatus.FAILED,
                        failure_reason=revert.reason,
                    )
                )
                session.flush()
                owe_release(session, withdrawal_id)
                stream_events.withdrawal_state(ctx, session, withdrawal_id)
            log.warning("withdrawal_failed", withdrawal_id=withdrawal_id, reason=revert.reason)
            return "failed"
        gas = with_margin(outcome)
        fees = initial_fees(base_fee(ctx), ctx.settings)
        with unit_of_work(ctx.factory) as session:
            nonce = next_nonce(session, ctx.w3, ctx.sender)
            tx = sign_and_store(
                session,
                ctx,
                kind="withdrawal",
                target_id=withdrawal_id,
                data=data,
                gas=gas,
                fees=fees,
                nonce=nonce,
            )
            session.add(
                WithdrawalSettlement(
                    withdrawal_id=withdrawal_id,
                    status=WithdrawalStatus.SUBMITTED,
                    tx_hash=tx.tx_hash,
                )
            )
            stream_events.withdrawal_state(ctx, session, withdrawal_id)
            tx_id, raw, tx_hash = tx.id, tx.raw_tx, tx.tx_hash
        log.info("withdrawal_signed", withdrawal_id=withdrawal_id, tx_hash="0x" + tx_hash.hex())
        if broadcast(ctx, raw, tx_hash):
            record_broadcast(ctx, tx_id)
        return "submitted"
