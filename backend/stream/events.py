"""Builders of the stream's events (docs/events.md): what each writer already holds, turned into
`StreamEvent`s with stable ids and partition keys.

Ids are made from what an event describes, never from a row id or a clock, so a writer that
retries its transaction (or re-runs a task) makes the same ids and `outbox.add` drops the
repeats:

- engine events: `eng-<seq>-<index>` (the command's seq, the event's position in its list),
  with a suffix when one engine event makes several stream events (`-maker`, `-taker`);
- fill settlement states: `fill-<seq>-<fill_index>-<side>-<state>` (`matched` comes from the
  engine persister, `submitted`/`settled`/`failed` from the settlement worker);
- chain events: `dep-<tx>-<log>-<status>-<confirmations>` and the like, from the indexer;
- reconciliation: `recon-<run id>`.

Keys: the market id for `trade` and `risk`, the trader's checksummed address for `order`,
`fill`, `balance`, `deposit` and `withdrawal` (order is kept per key), `reconciliation` for the
reconciliation results. Amounts are decimal strings; hashes and addresses 0x-hex.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backend.domain.errors import ErrorCode
from backend.matching import events as ev
from backend.stream.outbox import StreamEvent

RECONCILIATION_KEY = "reconciliation"
_SIDES = ("buy", "sell")
_TIF = ("gtc", "ioc", "fok", "post_only")


def hex0x(value: bytes) -> str:
    return "0x" + value.hex()


def fill_id(seq: int, fill_index: int) -> str:
    """The stream's name of a fill (the engine's natural key, the same in every process)."""
    return f"{seq}-{fill_index}"


# ---------------------------------------------------------------- the engine (persister)


def _order(
    event_id: str,
    *,
    seq: int,
    order_hash: bytes,
    trader: str,
    market_id: str,
    status: str,
    remaining: int | None,
    reason: str | None = None,
) -> StreamEvent:
    return StreamEvent(
        event_id,
        "order",
        trader,
        {
            "seq": seq,
            "order_hash": hex0x(order_hash),
            "trader": trader,
            "market_id": market_id,
            "status": status,
            "remaining": None if remaining is None else str(remaining),
            "reason": reason,
        },
    )


def _accepted(eid: str, e: ev.OrderAccepted, out: list[StreamEvent]) -> None:
    order = _order(
        eid,
        seq=e.seq,
        order_hash=e.order_hash,
        trader=e.trader,
        market_id=e.market_id,
        status="open",
        remaining=e.amount,
    )
    order.payload.update(
        side=_SIDES[e.side],
        price=str(e.price),
        amount=str(e.amount),
        time_in_force=_TIF[e.time_in_force],
        nonce=str(e.nonce),
        expiry=str(e.expiry),
        client_order_id=e.client_order_id,
    )
    out.append(order)


def _fill(eid: str, e: ev.Fill, out: list[StreamEvent]) -> None:
    fid = fill_id(e.seq, e.fill_index)
    trade = {
        "seq": e.seq,
        "fill_index": e.fill_index,
        "fill_id": fid,
        "market_id": e.market_id,
        "taker_side": _SIDES[e.taker_side],
        "price": str(e.price),
        "amount": str(e.amount),
        "quote_amount": str(e.quote_amount),
        "maker_order_hash": hex0x(e.maker_hash),
        "taker_order_hash": hex0x(e.taker_hash),
        "maker_trader": e.maker_trader,
        "taker_trader": e.taker_trader,
        "maker_fee": str(e.maker_fee),
        "taker_fee": str(e.taker_fee),
    }
    out.append(StreamEvent(eid, "trade", e.market_id, trade))
    for side, trader, remaining, h in (
        ("maker", e.maker_trader, e.maker_remaining, e.maker_hash),
        ("taker", e.taker_trader, e.taker_remaining, e.taker_hash),
    ):
        out.append(
            StreamEvent(
                f"fill-{fid}-{side}-matched",
                "fill",
                trader,
                {**trade, "trader": trader, "side": side, "state": "matched"},
            )
        )
        status = "partially_filled" if remaining else "filled"
        out.append(
            _order(
                f"{eid}-{side}",
                seq=e.seq,
                order_hash=h,
                trader=trader,
                market_id=e.market_id,
                status=status,
                remaining=remaining,
            )
        )


def _cancelled(eid: str, e: ev.OrderCancelled, out: list[StreamEvent]) -> None:
    status = "expired" if e.reason is ev.CancelReason.EXPIRED else "cancelled"
    out.append(
        _order(
            eid,
            seq=e.seq,
            order_hash=e.order_hash,
            trader=e.trader,
            market_id=e.market_id,
            status=status,
            remaining=e.remaining,
            reason=str(e.reason),
        )
    )


def _reverted(eid: str, e: ev.FillReverted, out: list[StreamEvent]) -> None:
    for side, trader, left, h in (
        ("maker", e.maker_trader, e.maker_remaining, e.maker_hash),
        ("taker", e.taker_trader, e.taker_remaining, e.taker_hash),
    ):
        # An open order is live again for `left`; a closed one stays closed (remaining null).
        status = "partially_filled" if left is not None else "closed"
        out.append(
            _order(
                f"{eid}-{side}",
                seq=e.seq,
                order_hash=h,
                trader=trader,
                market_id=e.market_id,
                status=status,
                remaining=left,
                reason="fill_reverted",
            )
        )


def _balance(eid: str, e: ev.BalanceChanged, out: list[StreamEvent]) -> None:
    out.append(
        StreamEvent(
            eid,
            "balance",
            e.trader,
            {
                "seq": e.seq,
                "trader": e.trader,
                "token": e.token,
                "total": str(e.total),
                "locked": str(e.locked),
            },
        )
    )


def _withdrawal(status: str) -> Callable[[str, Any, list[StreamEvent]], None]:
    def build(eid: str, e: Any, out: list[StreamEvent]) -> None:
        out.append(
            StreamEvent(
                eid,
                "withdrawal",
                e.trader,
                {
                    "source": "engine",
                    "seq": e.seq,
                    "status": status,
                    "withdrawal_id": e.withdrawal_id,
                    "trader": e.trader,
                    "token": e.token,
                    "amount": str(e.amount),
                },
            )
        )

    return build


def _risk(
    eid: str, seq: int, market_id: str, *, kind: str, message: str, extra: dict[str, Any]
) -> StreamEvent:
    return StreamEvent(
        eid,
        "risk",
        market_id,
        {"seq": seq, "market_id": market_id, "kind": kind, "message": message, **extra},
    )


def _market_state(eid: str, e: ev.MarketStateChanged, out: list[StreamEvent]) -> None:
    extra = {"old_state": str(e.old), "new_state": str(e.new)}
    out.append(_risk(eid, e.seq, e.market_id, kind="market_state", message=e.reason, extra=extra))


def _risk_event(eid: str, e: ev.RiskEvent, out: list[StreamEvent]) -> None:
    extra = {"reference_price": str(e.reference_price), "price": str(e.price)}
    out.append(_risk(eid, e.seq, e.market_id, kind=e.kind, message=e.message, extra=extra))


def _rejected(eid: str, e: ev.OrderRejected, out: list[StreamEvent]) -> None:
    if e.code is ErrorCode.PRICE_OUT_OF_BAND:  # other refusals are the trader's own business
        extra = {"order_hash": hex0x(e.order_hash), "trader": e.trader}
        risk = _risk(eid, e.seq, e.market_id, kind="price_band", message=e.message, extra=extra)
        out.append(risk)


_ENGINE: dict[type, Callable[[str, Any, list[StreamEvent]], None]] = {
    ev.OrderAccepted: _accepted,
    ev.Fill: _fill,
    ev.OrderCancelled: _cancelled,
    ev.FillReverted: _reverted,
    ev.BalanceChanged: _balance,
    ev.WithdrawalReserved: _withdrawal("reserved"),
    ev.WithdrawalReleased: _withdrawal("released"),
    ev.MarketStateChanged: _market_state,
    ev.RiskEvent: _risk_event,
    ev.OrderRejected: _rejected,
}


def engine_events(seq: int, events: list[Any], out: list[StreamEvent]) -> None:
    """Append the stream events of one applied command's engine events to `out`."""
    builders = _ENGINE
    for index, e in enumerate(events):
        build = builders.get(type(e))
        if build is not None:
            build(f"eng-{seq}-{index}", e, out)


# ---------------------------------------------------------------- settlement


def fill_state(
    *,
    seq: int,
    fill_index: int,
    market_id: str,
    maker_trader: str,
    taker_trader: str,
    state: str,
    batch_id: int | None = None,
    tx_hash: bytes | None = None,
    block: int | None = None,
    reason: str | None = None,
    attempt: bytes | None = None,
) -> list[StreamEvent]:
    """One settlement state change of a fill (`submitted`, `settled`, `failed`, or `matched`
    again when its transaction reverted or was dropped): an event for each of its two traders,
    keyed by that trader. A fill can be submitted more than once, so `submitted` and the return
    to `matched` name the transaction (`attempt`) in their ids; `settled` and `failed` are final."""
    fid = fill_id(seq, fill_index)
    tail = state if attempt is None else f"{state}-{attempt.hex()}"
    base = {
        "seq": seq,
        "fill_index": fill_index,
        "fill_id": fid,
        "market_id": market_id,
        "maker_trader": maker_trader,
        "taker_trader": taker_trader,
        "state": state,
        "batch_id": batch_id,
        "tx_hash": None if tx_hash is None else hex0x(tx_hash),
        "block": block,
        "reason": reason,
    }
    return [
        StreamEvent(
            f"fill-{fid}-{side}-{tail}", "fill", trader, {**base, "trader": trader, "side": side}
        )
        for side, trader in (("maker", maker_trader), ("taker", taker_trader))
    ]


# ---------------------------------------------------------------- the indexer


def _chain_id(prefix: str, tx_hash: bytes, log_index: int, block_hash: bytes, status: str) -> str:
    # The block hash too: a transaction a reorg took away can come back in another block, and
    # its `seen` there is a new event.
    return f"{prefix}-{tx_hash.hex()}-{log_index}-{block_hash[:8].hex()}-{status}"


def _chain_payload(
    *,
    tx_hash: bytes,
    log_index: int,
    block_hash: bytes,
    trader: str,
    token: str,
    amount: int,
    block: int,
    confirmations: int,
    status: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "trader": trader,
        "token": token,
        "amount": str(amount),
        "tx_hash": hex0x(tx_hash),
        "log_index": log_index,
        "block_hash": hex0x(block_hash),
        "block": block,
        "confirmations": confirmations,
    }


def deposit(**chain: Any) -> StreamEvent:
    """A deposit as the indexer sees it: `seen` (in an indexed block, not final), `confirmed`
    (final: the engine is credited), `reorged` (its block left the chain). `chain`: the
    arguments of `_chain_payload`."""
    payload = _chain_payload(**chain)
    eid = _chain_id(
        "dep", chain["tx_hash"], chain["log_index"], chain["block_hash"], chain["status"]
    )
    return StreamEvent(eid, "deposit", chain["trader"], payload)


def withdrawal_chain(*, withdrawal_id: str | None, exit: bool, **chain: Any) -> StreamEvent:
    """A withdrawal seen on chain (`seen`, `confirmed`, `reorged`, as deposits): a `Withdrawn`
    (`withdrawal_id` names the engine's reservation) or an `ExitWithdrawn` (`exit`)."""
    payload = _chain_payload(**chain)
    payload.update(source="chain", withdrawal_id=withdrawal_id, exit=exit)
    eid = _chain_id(
        "wd", chain["tx_hash"], chain["log_index"], chain["block_hash"], chain["status"]
    )
    return StreamEvent(eid, "withdrawal", chain["trader"], payload)


def withdrawal_settlement(
    *,
    withdrawal_id: str,
    trader: str,
    token: str,
    amount: int,
    status: str,
    tx_hash: bytes | None,
    block: int | None,
    reason: str | None,
) -> StreamEvent:
    """The settlement worker's withdraw transaction: `submitted` (per transaction),
    `confirmed` or `failed`."""
    attempt = f"-{tx_hash.hex()}" if status == "submitted" and tx_hash is not None else ""
    return StreamEvent(
        f"wds-{withdrawal_id}-{status}{attempt}",
        "withdrawal",
        trader,
        {
            "source": "settlement",
            "status": status,
            "withdrawal_id": withdrawal_id,
            "trader": trader,
            "token": token,
            "amount": str(amount),
            "tx_hash": None if tx_hash is None else hex0x(tx_hash),
            "block": block,
            "reason": reason,
        },
    )


# ---------------------------------------------------------------- reconciliation


def reconciliation(run_id: str, payload: dict[str, Any]) -> StreamEvent:
    return StreamEvent(f"recon-{run_id}", "reconciliation", RECONCILIATION_KEY, payload)
