"""From stored chain events to engine commands and the on-chain ledger (ponder's indexing).

Two halves, so that a crash anywhere neither loses nor repeats an effect:

1. Inside the sync step's transaction (with the events and the cursor), the projection writes
   what the engine is owed as `indexer_commands` rows (the outbox) and updates
   `chain_balances`:
   - at once, whatever the confirmations: `ExitRequested` → `FreezeTrader`,
     `OrderCancelled` → `CancelOrder`, `NoncesInvalidated` → `CancelAll` (only ever
     protective, and harmless to repeat);
   - once `confirmations` deep: `Deposited` → `Credit`, `Withdrawn` / `ExitWithdrawn` → `Debit`,
     with the `chain_balances` delta;
   - on a reorg, for blocks above the common ancestor: owed-but-unsent commands are cancelled,
     sent credits / debits get a compensating command (`reverse_credit` / `reverse_debit`),
     confirmed balance deltas are reversed, deposits become `orphaned`.
2. After commit, `drain` sends the pending rows in order: mark `submitted` (commit), submit,
   record the engine's seq and outcome (commit; a deposit becomes `credited`). A `submitted`
   row left by a crash or an engine timeout is in doubt: `resolve_in_doubt` sends a no-op probe,
   then looks the row's ref up in the engine's journal below the probe's seq — found: the
   command was applied (record it); absent: it never will be (send it again). See
   docs/indexer.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import structlog
from eth_utils.crypto import keccak
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from backend.db.models.indexer import ChainBalance, Deposit, IndexerCommand
from backend.db.models.reference import Market
from backend.db.session import insert_ignore, unit_of_work
from backend.domain.errors import ErrorCode, FatalError
from backend.domain.types import ZERO_ADDRESS, DepositStatus
from backend.engine.client import EngineUnavailableError, Outcome
from backend.matching.commands import (
    CancelAll,
    CancelOrder,
    Command,
    Credit,
    Debit,
    FreezeTrader,
)
from backend.matching.events import CancelRejected, CommandRejected
from indexer import store
from indexer.engine_sink import CommandSink, JournalLookup, probe_command
from indexer.events import ChainLog

log = structlog.get_logger("indexer.projection")

IMMEDIATE = ("ExitRequested", "OrderCancelled", "NoncesInvalidated")
CONFIRMED = ("Deposited", "Withdrawn", "ExitWithdrawn")
# kind → sign of its on-chain balance delta, for the confirmed kinds.
BALANCE_SIGN = {"credit": 1, "debit": -1, "exit_debit": -1}
REVERSE = {"credit": "reverse_credit", "debit": "reverse_debit", "exit_debit": "reverse_debit"}
PENDING, SUBMITTED, DONE, CANCELLED = "pending", "submitted", "done", "cancelled"


def withdrawal_id_for(trader: str, nonce: int) -> str:
    """The engine reservation id of trader's signed withdrawal `nonce` (unique per trader)."""
    return f"{trader}:{nonce}"


def command_ref(kind: str, block_hash: bytes, log_index: int) -> bytes:
    return keccak(kind.encode() + b"\x00" + block_hash + log_index.to_bytes(4, "big"))


class InDoubtError(FatalError):
    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(ErrorCode.ENGINE_IN_DOUBT, message, **context)


def _row(kind: str, e: ChainLog | Any, command: dict[str, Any]) -> dict[str, Any]:
    return {
        "ref": command_ref(kind, e.block_hash, e.log_index),
        "kind": kind,
        "block_hash": e.block_hash,
        "log_index": e.log_index,
        "block_number": e.block_number,
        "command": command,
        "status": PENDING,
    }


def _market_id(session: Session, base: str, quote: str) -> str | bool | None:
    """None for every market (zero tokens), the market id, or False if no such market."""
    if base == ZERO_ADDRESS and quote == ZERO_ADDRESS:
        return None
    found = session.scalar(
        select(Market.id).where(Market.base_token == base, Market.quote_token == quote)
    )
    return False if found is None else found


def on_events(*, session: Session, logs: Iterable[ChainLog]) -> None:
    """Outbox rows for the protective effects, applied without waiting for confirmations."""
    rows: list[dict[str, Any]] = []
    for e in logs:
        a = e.args
        if e.name == "ExitRequested":
            rows.append(_row("freeze", e, {"trader": a["trader"]}))
        elif e.name == "OrderCancelled":
            cmd = {"trader": a["trader"], "order_hash": "0x" + a["orderHash"].hex()}
            rows.append(_row("cancel_order", e, cmd))
        elif e.name == "NoncesInvalidated":
            market = _market_id(session, a["baseToken"], a["quoteToken"])
            if market is False:
                log.info("nonces invalidated in an unlisted market", trader=a["trader"])
                continue
            cmd = {"trader": a["trader"], "market_id": market, "nonce_below": a["below"]}
            rows.append(_row("cancel_all", e, cmd))
    insert_ignore(session=session, target=IndexerCommand, rows=rows, conflict=["ref"])


def _apply_balance(
    session: Session, tokens: set[str], *, trader: str, token: str, delta: int, block: int
) -> None:
    if token not in tokens:
        log.warning("balance of an unlisted token not kept", trader=trader, token=token)
        return
    row = session.get(ChainBalance, (trader, token))
    if row is None:
        row = ChainBalance(trader=trader, token=token, amount=0, block_number=block)
        session.add(row)
    amount = row.amount + delta
    if amount < 0:
        log.error(
            "on-chain balance would go negative; clamped (indexing started after a deposit?)",
            trader=trader,
            token=token,
            amount=amount,
        )
        amount = 0
    row.amount = amount
    row.block_number = max(row.block_number, block)
    session.flush()


def confirm(*, session: Session, chain_id: int, upto: int, tokens: set[str]) -> None:
    """Owes the engine the confirmed effects of blocks (confirmed cursor, upto]."""
    cursor = store.load_cursor(session=session, name=store.CONFIRMED_CURSOR)
    after = cursor.number if cursor is not None else -1
    if upto <= after:
        return
    for ev in store.events_between(session=session, after=after, upto=upto, names=CONFIRMED):
        a = ev.args
        trader, token, amount = a["trader"], a["token"], int(a["amount"])
        command: dict[str, Any] = {"trader": trader, "token": token, "amount": str(amount)}
        if ev.event == "Deposited":
            kind = "credit"
        elif ev.event == "Withdrawn":
            kind = "debit"
            command["withdrawal_id"] = withdrawal_id_for(trader, int(a["nonce"]))
        else:
            kind = "exit_debit"
        new = insert_ignore(
            session=session,
            target=IndexerCommand,
            rows=[_row(kind, ev, command)],
            conflict=["ref"],
        )
        if new:
            delta = BALANCE_SIGN[kind] * amount
            _apply_balance(
                session, tokens, trader=trader, token=token, delta=delta, block=ev.block_number
            )
    store.set_cursor(
        session=session,
        name=store.CONFIRMED_CURSOR,
        chain_id=chain_id,
        number=upto,
        hash_=b"\x00" * 32,
    )


def on_reorg(*, session: Session, chain_id: int, ancestor: int, tokens: set[str]) -> None:
    """Undo what blocks above `ancestor` owed or did, then forget them (store.delete_above)."""
    rows = session.scalars(
        select(IndexerCommand)
        .where(IndexerCommand.block_number > ancestor, IndexerCommand.status != CANCELLED)
        .order_by(IndexerCommand.id)
    ).all()
    for row in rows:
        if row.kind.startswith("reverse_") or (row.outcome or "").startswith("orphaned"):
            continue  # a compensation, or already undone by an earlier reorg
        sign = BALANCE_SIGN.get(row.kind)
        c = row.command
        if sign is not None:
            delta = -sign * int(c["amount"])
            _apply_balance(
                session, tokens, trader=c["trader"], token=c["token"], delta=delta, block=ancestor
            )
        if row.status == PENDING:
            row.status = CANCELLED
            row.outcome = "orphaned"
        elif row.status == DONE and row.kind in REVERSE:
            kind = REVERSE[row.kind]
            reverse = _row(kind, row, {k: c[k] for k in ("trader", "token", "amount")})
            insert_ignore(session=session, target=IndexerCommand, rows=[reverse], conflict=["ref"])
            row.outcome = f"orphaned:{row.outcome}"[:64]
        elif row.status == DONE:
            row.outcome = f"orphaned:{row.outcome}"[:64]
            log.warning(
                "protective effect of an orphaned event stays applied",
                kind=row.kind,
                trader=c.get("trader"),
                block_number=row.block_number,
            )
        else:
            raise InDoubtError("a submitted command must be resolved before a reorg", id=row.id)
    session.flush()
    store.delete_above(session=session, number=ancestor)
    cursor = store.load_cursor(session=session, name=store.CONFIRMED_CURSOR)
    if cursor is not None and cursor.number > ancestor:
        store.set_cursor(
            session=session,
            name=store.CONFIRMED_CURSOR,
            chain_id=chain_id,
            number=ancestor,
            hash_=b"\x00" * 32,
        )


# ---------------------------------------------------------------------- sending


def build_command(kind: str, c: dict[str, Any]) -> Command:
    if kind in ("credit", "reverse_debit"):
        return Credit(seq=0, now=0, trader=c["trader"], token=c["token"], amount=int(c["amount"]))
    if kind in ("debit", "exit_debit", "reverse_credit"):
        return Debit(
            seq=0,
            now=0,
            trader=c["trader"],
            token=c["token"],
            amount=int(c["amount"]),
            withdrawal_id=c.get("withdrawal_id"),
        )
    if kind == "freeze":
        return FreezeTrader(seq=0, now=0, trader=c["trader"])
    if kind == "cancel_order":
        order_hash = bytes.fromhex(c["order_hash"][2:])
        return CancelOrder(seq=0, now=0, order_hash=order_hash, trader=c["trader"])
    if kind == "cancel_all":
        return CancelAll(
            seq=0,
            now=0,
            trader=c["trader"],
            market_id=c["market_id"],
            nonce_below=int(c["nonce_below"]),
        )
    raise ValueError(f"unknown command kind {kind!r}")


def outcome_code(outcome: Outcome) -> str:
    for ev in outcome.events:
        if isinstance(ev, CommandRejected | CancelRejected):
            return ev.code.name
    return "applied"


def _record(session: Session, row_id: int, seq: int, outcome: str) -> None:
    row = session.get(IndexerCommand, row_id)
    assert row is not None
    row.status, row.engine_seq, row.outcome = DONE, seq, outcome
    if row.kind == "credit" and outcome == "applied":
        session.execute(
            update(Deposit)
            .where(
                Deposit.block_hash == row.block_hash,
                Deposit.log_index == row.log_index,
                Deposit.status == DepositStatus.SEEN,
            )
            .values(status=DepositStatus.CREDITED, credited_seq=seq)
        )
    if outcome != "applied":
        level = log.info if row.kind in ("cancel_order", "cancel_all") else log.error
        level(
            "engine refused an indexer command",
            kind=row.kind,
            outcome=outcome,
            engine_seq=seq,
            block_number=row.block_number,
            command=row.command,
        )


class Outbox:
    """Sends `indexer_commands` rows to the engine exactly once (see the module docstring)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        sink: CommandSink,
        lookup: JournalLookup | None,
        *,
        on_sent: Callable[[str, Outcome], None] | None = None,
    ) -> None:
        self.factory = factory
        self.sink = sink
        self.lookup = lookup
        self.on_sent = on_sent

    def drain(self) -> int:
        """Sends every pending row in order; returns how many were sent."""
        sent = 0
        while True:
            with unit_of_work(self.factory) as session:
                rows: Sequence[IndexerCommand] = session.scalars(
                    select(IndexerCommand)
                    .where(IndexerCommand.status == PENDING)
                    .order_by(IndexerCommand.id)
                    .limit(500)
                ).all()
                for row in rows:
                    row.status = SUBMITTED
                batch = [(r.id, r.kind, r.ref, dict(r.command)) for r in rows]
            if not batch:
                return sent
            for i, (row_id, kind, ref, cmd) in enumerate(batch):
                try:
                    outcome = self.sink.submit(build_command(kind, cmd), ref=ref)
                except EngineUnavailableError:
                    # This one is in doubt; the ones after it were never sent.
                    self._unsubmit([r[0] for r in batch[i + 1 :]])
                    raise
                except BaseException:
                    self._unsubmit([r[0] for r in batch[i + 1 :]])
                    raise
                with unit_of_work(self.factory) as session:
                    _record(session, row_id, outcome.seq, outcome_code(outcome))
                if self.on_sent is not None:
                    self.on_sent(kind, outcome)
                sent += 1

    def _unsubmit(self, ids: list[int]) -> None:
        if not ids:
            return
        with unit_of_work(self.factory) as session:
            session.execute(
                update(IndexerCommand)
                .where(IndexerCommand.id.in_(ids), IndexerCommand.status == SUBMITTED)
                .values(status=PENDING)
            )

    def resolve_in_doubt(self) -> int:
        """Settles `submitted` rows (sent, answer not recorded); returns how many."""
        with unit_of_work(self.factory) as session:
            doubtful = session.scalars(
                select(IndexerCommand)
                .where(IndexerCommand.status == SUBMITTED)
                .order_by(IndexerCommand.id)
            ).all()
            floor = session.scalar(select(func.max(IndexerCommand.engine_seq))) or 0
            todo = [(r.id, r.ref, r.kind) for r in doubtful]
        if not todo:
            return 0
        if self.lookup is None:
            raise InDoubtError(
                "indexer commands were sent but their outcome was not recorded, and no engine "
                "journal is configured to look them up (HYBRIDEX_ENGINE_JOURNAL_DIR); refusing "
                "to guess — resolve them by hand (docs/indexer.md)",
                ids=[t[0] for t in todo],
            )
        probe = self.sink.submit(probe_command(), ref=b"\x00" * 32)
        for row_id, ref, kind in todo:
            seq = self.lookup.find(ref, after_seq=floor, before_seq=probe.seq)
            with unit_of_work(self.factory) as session:
                if seq is None:
                    row = session.get(IndexerCommand, row_id)
                    assert row is not None
                    row.status = PENDING  # never reached the journal: send it again
                    log.warning("in-doubt command was not applied; resending", kind=kind)
                else:
                    _record(session, row_id, seq, "applied")
                    log.warning("in-doubt command was applied", kind=kind, engine_seq=seq)
        return len(todo)
