"""Follow-up of the operator's transactions: receipts, confirmations, stuck, reverted, reorged.

Per nonce of the sender (a transaction and its fee-bumped replacements share one):
- a receipt → `mined` (block and hash kept); at depth ≥ `confirmations` → `confirmed` (the
  batch `settled`, its fills `settled`; the withdrawal `confirmed`) or, if it reverted,
  `reverted` (the batch back to `pending`: it is simulated again, so bisection finds the fill
  that made it revert; the withdrawal `failed`); the other transactions of the nonce `replaced`;
- a `mined` transaction whose receipt disappeared was reorged out → back to `broadcast`, and
  its stored bytes are sent again;
- a nonce the chain has consumed without any of our transactions → all `replaced`, and the
  target goes back to be sent again;
- `signed` (a crash between store and broadcast) → broadcast now;
- `broadcast` for `stuck_after_blocks` blocks → replaced with fees bumped by
  `fee_bump_percent`, within `max_fee_per_gas_wei`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import structlog
from sqlalchemy import select, update
from web3.logs import DISCARD

from backend.chain.exchange import SKIP_REASONS, exchange_contract
from backend.db.models import (
    Fill,
    FillSettlement,
    SettlementBatch,
    SettlementTransaction,
    WithdrawalSettlement,
)
from backend.db.session import unit_of_work
from backend.domain.errors import ErrorCode, HaltError
from backend.domain.types import BatchStatus, FillStatus, TxStatus, WithdrawalStatus
from backend.settlement import metrics, stream_events
from backend.settlement.context import SettlementContext
from backend.settlement.fees import Fees, bumped_fees
from backend.settlement.fill_feed import publish_fill_states
from backend.settlement.fill_reverts import owe_reverts
from backend.settlement.nonces import sender_lock
from backend.settlement.releases import owe_release
from backend.settlement.revert import rpc_guard
from backend.settlement.sender import (
    ACTIVE_TX,
    base_fee,
    broadcast,
    receipt_of,
    record_broadcast,
    resign_replacement,
    rowcount,
    sender_lock_name,
)

log = structlog.get_logger(__name__)


def _hex(value: bytes | None) -> str | None:
    return None if value is None else "0x" + bytes(value).hex()


def follow_up(ctx: SettlementContext) -> dict[str, int]:
    """One pass over every active transaction of the operator; returns counts by outcome."""
    counts: dict[str, int] = defaultdict(int)
    with sender_lock(ctx.factory, sender_lock_name(ctx)):
        with rpc_guard("eth_getTransactionCount"):
            mined_nonce = int(ctx.w3.eth.get_transaction_count(ctx.sender, "latest"))
        with rpc_guard("eth_blockNumber"):
            latest = int(ctx.w3.eth.block_number)
        with ctx.factory() as session:
            active = list(
                session.scalars(
                    select(SettlementTransaction)
                    .where(
                        SettlementTransaction.sender == ctx.sender,
                        SettlementTransaction.status.in_(ACTIVE_TX),
                    )
                    .order_by(SettlementTransaction.nonce, SettlementTransaction.id)
                )
            )
        groups: dict[int, list[SettlementTransaction]] = defaultdict(list)
        for tx in active:
            groups[tx.nonce].append(tx)
        for nonce, txs in sorted(groups.items()):
            outcome = _follow_nonce(ctx, nonce, txs, latest, mined_nonce)
            counts[outcome] += 1
            if outcome != "pending":  # mined, settled, reverted, replaced, dropped, reorged
                batches = [tx.batch_id for tx in txs if tx.batch_id is not None]
                publish_fill_states(ctx.fill_feed, ctx.factory, batch_ids=batches)
    metrics.HALTED.set(0)  # every transaction followed: no mismatch stands in the way
    return dict(counts)


def _follow_nonce(
    ctx: SettlementContext,
    nonce: int,
    txs: list[SettlementTransaction],
    latest: int,
    mined_nonce: int,
) -> str:
    for tx in txs:
        receipt = receipt_of(ctx, tx.tx_hash)
        if receipt is not None:
            return _mined(ctx, tx, txs, receipt, latest)
    if any(tx.status is TxStatus.MINED for tx in txs):
        ids = [tx.id for tx in txs if tx.status is TxStatus.MINED]
        with unit_of_work(ctx.factory) as session:
            session.execute(
                update(SettlementTransaction)
                .where(
                    SettlementTransaction.id.in_(ids),
                    SettlementTransaction.status == TxStatus.MINED,
                )
                .values(
                    status=TxStatus.BROADCAST,
                    block_number=None,
                    block_hash=None,
                    gas_used=None,
                    broadcast_block=latest,
                )
            )
        for tx in txs:
            metrics.REORGED.inc()
            log.warning(
                "tx_reorged_out", tx_hash=_hex(tx.tx_hash), batch_id=tx.batch_id, nonce=nonce
            )
            broadcast(ctx, tx.raw_tx, tx.tx_hash)
        return "reorged"
    if mined_nonce > nonce:
        _dropped(ctx, nonce, txs)
        return "dropped"
    newest = txs[-1]
    if newest.status is TxStatus.SIGNED:
        if broadcast(ctx, newest.raw_tx, newest.tx_hash):
            record_broadcast(ctx, newest.id)
        log.info("tx_rebroadcast", tx_hash=_hex(newest.tx_hash), batch_id=newest.batch_id)
        return "rebroadcast"
    sent_at = newest.broadcast_block
    if sent_at is not None and latest - sent_at >= ctx.settings.stuck_after_blocks:
        return _replace(ctx, newest)
    return "pending"


def _replace(ctx: SettlementContext, stuck: SettlementTransaction) -> str:
    old = Fees(int(stuck.max_fee_per_gas), int(stuck.max_priority_fee_per_gas))
    fees = bumped_fees(old, base_fee(ctx), ctx.settings)
    if fees is None:
        log.warning(
            "tx_stuck_at_fee_cap",
            tx_hash=_hex(stuck.tx_hash),
            batch_id=stuck.batch_id,
            max_fee_per_gas=old.max_fee_per_gas,
        )
        broadcast(ctx, stuck.raw_tx, stuck.tx_hash)
        return "stuck_capped"
    with unit_of_work(ctx.factory) as session:
        tx = resign_replacement(session, ctx, stuck, fees)
        tx_id, raw, tx_hash = tx.id, tx.raw_tx, tx.tx_hash
    metrics.TX_REPLACED.inc()
    log.warning(
        "tx_replaced",
        tx_hash=_hex(tx_hash),
        replaces_tx_hash=_hex(stuck.tx_hash),
        batch_id=stuck.batch_id,
        nonce=stuck.nonce,
        max_fee_per_gas=fees.max_fee_per_gas,
        max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
    )
    if broadcast(ctx, raw, tx_hash):
        record_broadcast(ctx, tx_id)
    return "replaced"


def _mined(
    ctx: SettlementContext,
    tx: SettlementTransaction,
    group: list[SettlementTransaction],
    receipt: Any,
    latest: int,
) -> str:
    block = int(receipt["blockNumber"])
    block_hash = bytes(receipt["blockHash"])
    gas_used = int(receipt["gasUsed"])
    if tx.status is not TxStatus.MINED or tx.block_hash != block_hash:
        with unit_of_work(ctx.factory) as session:
            session.execute(
                update(SettlementTransaction)
                .where(
                    SettlementTransaction.id == tx.id,
                    SettlementTransaction.status.in_(ACTIVE_TX),
                )
                .values(
                    status=TxStatus.MINED,
                    block_number=block,
                    block_hash=block_hash,
                    gas_used=gas_used,
                )
            )
        log.info("tx_mined", tx_hash=_hex(tx.tx_hash), batch_id=tx.batch_id, block_number=block)
    if latest - block + 1 < max(1, ctx.settings.confirmations):
        return "mined"
    success = int(receipt["status"]) == 1
    others = [o.id for o in group if o.id != tx.id]
    with unit_of_work(ctx.factory) as session:
        done = rowcount(
            session.execute(
                update(SettlementTransaction)
                .where(
                    SettlementTransaction.id == tx.id,
                    SettlementTransaction.status.in_(ACTIVE_TX),
                )
                .values(
                    status=TxStatus.CONFIRMED if success else TxStatus.REVERTED,
                    block_number=block,
                    block_hash=block_hash,
                    gas_used=gas_used,
                )
            )
        )
        if not done:
            return "raced"
        if others:
            session.execute(
                update(SettlementTransaction)
                .where(
                    SettlementTransaction.id.in_(others),
                    SettlementTransaction.status.in_(ACTIVE_TX),
                )
                .values(status=TxStatus.REPLACED)
            )
        if tx.kind == "batch":
            assert tx.batch_id is not None
            _finish_batch(ctx, session, tx, receipt, success)
        else:
            assert tx.withdrawal_id is not None
            changed = session.execute(
                update(WithdrawalSettlement)
                .where(
                    WithdrawalSettlement.withdrawal_id == tx.withdrawal_id,
                    WithdrawalSettlement.status == WithdrawalStatus.SUBMITTED,
                )
                .values(
                    status=WithdrawalStatus.CONFIRMED if success else WithdrawalStatus.FAILED,
                    tx_hash=tx.tx_hash,
                    block_number=block,
                    failure_reason=None if success else "withdraw reverted on chain",
                )
            )
            if not success and rowcount(changed):
                owe_release(session, tx.withdrawal_id)
            if rowcount(changed):
                stream_events.withdrawal_state(ctx, session, tx.withdrawal_id)
            log.info(
                "withdrawal_confirmed" if success else "withdrawal_reverted",
                withdrawal_id=tx.withdrawal_id,
                tx_hash=_hex(tx.tx_hash),
                block_number=block,
            )
    return "confirmed" if success else "reverted"


def _finish_batch(
    ctx: SettlementContext, session: Any, tx: SettlementTransaction, receipt: Any, success: bool
) -> None:
    batch_id = tx.batch_id
    block = int(receipt["blockNumber"])
    if not success:
        metrics.TX_REVERTED.inc()
        session.execute(
            update(SettlementBatch)
            .where(
                SettlementBatch.batch_id == batch_id,
                SettlementBatch.status == BatchStatus.SUBMITTED,
            )
            .values(status=BatchStatus.PENDING, failure_reason="reverted on chain; re-simulating")
        )
        session.execute(
            update(FillSettlement)
            .where(
                FillSettlement.batch_id == batch_id,
                FillSettlement.status == FillStatus.SUBMITTED,
            )
            .values(status=FillStatus.MATCHED)
        )
        stream_events.fill_states(
            ctx, session, FillStatus.MATCHED, batch_id=batch_id, attempt=tx.tx_hash
        )
        log.warning(
            "batch_tx_reverted", batch_id=batch_id, tx_hash=_hex(tx.tx_hash), block_number=block
        )
        return
    batch = session.get(SettlementBatch, batch_id)
    events = (
        exchange_contract(ctx.w3, ctx.exchange)
        .events.BatchSettled()
        .process_receipt(receipt, errors=DISCARD)
    )
    on_chain = [
        bytes(e["args"]["fillsHash"]) for e in events if int(e["args"]["batchId"]) == batch_id
    ]
    if batch is not None and batch.fills_hash is not None and on_chain != [batch.fills_hash]:
        # The chain applied other fills than the ones recorded for this batch: marking them
        # settled would be a guess. Stop the line (the unit of work rolls back, every later
        # tick stops here again) until an operator has looked.
        metrics.HALTED.set(1)
        log.critical(
            "batch_fills_hash_mismatch",
            batch_id=batch_id,
            expected=_hex(batch.fills_hash),
            on_chain=[_hex(h) for h in on_chain],
        )
        raise HaltError(
            ErrorCode.SETTLEMENT_INCONSISTENT,
            f"batch {batch_id} settled on chain with other fills than the ones recorded for it; "
            "settlement is halted (docs/runbook.md)",
            batch_id=batch_id,
            recorded_fills_hash=_hex(batch.fills_hash),
            on_chain_fills_hash=",".join(str(_hex(h)) for h in on_chain),
        )
    gas_used = int(receipt["gasUsed"])
    recorded = rowcount(
        session.execute(
            update(SettlementBatch)
            .where(
                SettlementBatch.batch_id == batch_id,
                SettlementBatch.status == BatchStatus.SUBMITTED,
            )
            .values(
                status=BatchStatus.SETTLED,
                settled_block=block,
                settled_tx_hash=tx.tx_hash,
                gas_used=gas_used,
                failure_reason=None,
            )
        )
    )
    if recorded:
        metrics.BATCH_GAS.observe(gas_used)
    _fail_skipped(ctx, session, batch_id, receipt)
    settled = rowcount(
        session.execute(
            update(FillSettlement)
            .where(
                FillSettlement.batch_id == batch_id, FillSettlement.status == FillStatus.SUBMITTED
            )
            .values(status=FillStatus.SETTLED)
        )
    )
    stream_events.fill_states(
        ctx, session, FillStatus.SETTLED, batch_id=batch_id, tx_hash=tx.tx_hash, block=block
    )
    metrics.BATCHES_SETTLED.inc()
    metrics.FILLS_SETTLED.inc(settled)
    log.info(
        "batch_settled",
        batch_id=batch_id,
        tx_hash=_hex(tx.tx_hash),
        block_number=block,
        fills=settled,
        gas_used=gas_used,
    )


def _fail_skipped(ctx: SettlementContext, session: Any, batch_id: int | None, receipt: Any) -> None:
    """The fills the contract left out of the mined batch (`FillSkipped`: an order of theirs
    could no longer settle) end `failed` and are owed their RevertFill, in the unit of work
    that settles the rest. `fillIndex` counts the batch as sent: its fills that had not failed
    before sending, in engine order (the order `load_batch` encodes them in)."""
    events = (
        exchange_contract(ctx.w3, ctx.exchange)
        .events.FillSkipped()
        .process_receipt(receipt, errors=DISCARD)
    )
    skips = {
        int(e["args"]["fillIndex"]): e["args"]
        for e in events
        if int(e["args"]["batchId"]) == batch_id
    }
    if not skips:
        return
    sent = session.scalars(
        select(FillSettlement.fill_id)
        .join(Fill, Fill.id == FillSettlement.fill_id)
        .where(
            FillSettlement.batch_id == batch_id,
            FillSettlement.status == FillStatus.SUBMITTED,
        )
        .order_by(Fill.seq, Fill.fill_index)
    ).all()
    failed: list[int] = []
    for index, args in sorted(skips.items()):
        if index >= len(sent):  # the fills hash matched, so this cannot happen
            raise HaltError(
                ErrorCode.SETTLEMENT_INCONSISTENT,
                f"batch {batch_id} skipped fill {index} of {len(sent)}",
                batch_id=batch_id,
            )
        code = int(args["reason"])
        name = SKIP_REASONS[code] if code < len(SKIP_REASONS) else f"reason {code}"
        reason = f"{name}(order 0x{bytes(args['orderHash']).hex()}, skipped on chain)"
        fill_id = int(sent[index])
        session.execute(
            update(FillSettlement)
            .where(FillSettlement.fill_id == fill_id, FillSettlement.status == FillStatus.SUBMITTED)
            .values(status=FillStatus.FAILED, failure_reason=reason, skipped_on_chain=True)
        )
        failed.append(fill_id)
        metrics.FILLS_FAILED.labels(reason=name).inc()
        log.warning("fill_skipped", batch_id=batch_id, fill_id=fill_id, reason=reason)
    # The engine's ledger is ahead of the chain by these fills: owe their undoing.
    owe_reverts(session, failed)
    stream_events.fill_states(
        ctx,
        session,
        FillStatus.FAILED,
        fill_ids=failed,
        tx_hash=bytes(receipt["transactionHash"]),
        block=int(receipt["blockNumber"]),
    )


def _dropped(ctx: SettlementContext, nonce: int, txs: list[SettlementTransaction]) -> None:
    """The chain consumed `nonce` with a transaction that is none of ours: send again."""
    with unit_of_work(ctx.factory) as session:
        session.execute(
            update(SettlementTransaction)
            .where(
                SettlementTransaction.id.in_([t.id for t in txs]),
                SettlementTransaction.status.in_(ACTIVE_TX),
            )
            .values(status=TxStatus.REPLACED)
        )
        target = txs[-1]
        if target.kind == "batch":
            session.execute(
                update(SettlementBatch)
                .where(
                    SettlementBatch.batch_id == target.batch_id,
                    SettlementBatch.status == BatchStatus.SUBMITTED,
                )
                .values(status=BatchStatus.PENDING)
            )
            session.execute(
                update(FillSettlement)
                .where(
                    FillSettlement.batch_id == target.batch_id,
                    FillSettlement.status == FillStatus.SUBMITTED,
                )
                .values(status=FillStatus.MATCHED)
            )
            stream_events.fill_states(
                ctx, session, FillStatus.MATCHED, batch_id=target.batch_id, attempt=target.tx_hash
            )
        else:
            changed = session.execute(
                update(WithdrawalSettlement)
                .where(
                    WithdrawalSettlement.withdrawal_id == target.withdrawal_id,
                    WithdrawalSettlement.status == WithdrawalStatus.SUBMITTED,
                )
                .values(
                    status=WithdrawalStatus.FAILED,
                    failure_reason="nonce consumed by another transaction of the operator key",
                )
            )
            if rowcount(changed) and target.withdrawal_id is not None:
                owe_release(session, target.withdrawal_id)
                stream_events.withdrawal_state(ctx, session, target.withdrawal_id)
    log.error(
        "tx_nonce_taken",
        nonce=nonce,
        batch_id=txs[-1].batch_id,
        withdrawal_id=txs[-1].withdrawal_id,
        tx_hash=_hex(txs[-1].tx_hash),
    )
