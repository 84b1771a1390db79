"""From stored chain events to engine commands and the on-chain ledger (ponder's indexing).

Two halves, so that a crash anywhere neither loses nor repeats an effect:

1. Inside the sync step's transaction (with the events and the cursor), the projection writes
   what the engine is owed as `indexer_commands` rows (the outbox) and updates
   `chain_balances`:
   - at once, whatever the confirmations: `ExitRequested` → `FreezeTrader`,
     `OrderCancelled` / `OrderCancelRequested` → `CancelOrder`, `NoncesInvalidated` /
     `NonceInvalidationRequested` → `CancelAll` (only ever protective, and harmless to
     repeat; an on-chain request takes effect on chain only after `cancelDelay`, but the
     engine stops matching the order at once);
   - once `confirmations` deep: `Deposited` → `Credit`, `Withdrawn` / `ExitWithdrawn` → `Debit`,
     with the `chain_balances` delta;
   - on a reorg, for blocks above the common ancestor: owed-but-unsent commands are cancelled,
     sent credits / debits get a compensating command (`reverse_credit` / `reverse_debit`),
     confirmed balance deltas are reversed, deposits become `orphaned`.
2. After commit, `drain` sends the pending rows in order, a window at a time: mark the window
   `submitted` (commit), hand all its commands to the engine at once (in order; the engine
   group-commits them), record every answer's seq and outcome (commit; deposits become
   `credited`). A `submitted` row left by a crash or an engine timeout is in doubt:
   `resolve_in_doubt` (also the first thing `drain` does) sends a no-op probe, then looks the
   rows' refs up in the engine's journal below the probe's seq — found: the command was
   applied (record it); absent: it never will be (send it again). See docs/indexer.md.

Both halves are set-based per chunk (bulk inserts, balance deltas summed per trader and
token, one journal scan per resolution), so a chunk costs a fixed number of statements.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import structlog
from eth_hash.auto import keccak
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from backend.db import chain_facts
from backend.db.models import Fill, FillSettlement, SettlementBatch
from backend.db.models.indexer import IndexerCommand
from backend.db.models.reference import Market
from backend.db.session import unit_of_work
from backend.domain.errors import ErrorCode, FatalError, HaltError
from backend.domain.types import ZERO_ADDRESS, FillStatus
from backend.engine.client import Outcome
from backend.matching.commands import (
    CancelAll,
    CancelOrder,
    Command,
    Credit,
    Debit,
    FreezeTrader,
)
from backend.matching.events import CancelRejected, CommandRejected
from indexer import store, stream_events
from indexer.engine_sink import (
    CommandSink,
    JournalLookup,
    NotSentError,
    probe_command,
    submit_all,
)
from indexer.events import ChainLog

log = structlog.get_logger("indexer.projection")

IMMEDIATE = (
    "ExitRequested",
    "OrderCancelled",
    "NoncesInvalidated",
    "OrderCancelRequested",
    "NonceInvalidationRequested",
)
# FillSkipped precedes its batch's BatchSettled (same transaction, lower log index).
CONFIRMED = ("Deposited", "Withdrawn", "ExitWithdrawn", "FillSkipped", "BatchSettled")
# kind → sign of its on-chain balance delta, for the confirmed kinds. A `settle` row is the
# signed net change a settled batch made to one (trader, token): ledger only, no engine command
# (the engine applied the fills when it matched them), so it is written `done`.
BALANCE_SIGN = {"credit": 1, "debit": -1, "exit_debit": -1, "settle": 1}
REVERSE = {"credit": "reverse_credit", "debit": "reverse_debit", "exit_debit": "reverse_debit"}
PENDING, SUBMITTED, DONE, CANCELLED = "pending", "submitted", "done", "cancelled"
_COMMANDS = store.COMMANDS


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
        "outcome": None,
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
        elif e.name in ("OrderCancelled", "OrderCancelRequested"):
            cmd = {"trader": a["trader"], "order_hash": "0x" + a["orderHash"].hex()}
            rows.append(_row("cancel_order", e, cmd))
        elif e.name == "NonceInvalidationRequested":  # every market
            cmd = {"trader": a["trader"], "market_id": None, "nonce_below": a["below"]}
            rows.append(_row("cancel_all", e, cmd))
        elif e.name == "NoncesInvalidated":
            market = _market_id(session, a["baseToken"], a["quoteToken"])
            if market is False:
                log.info("nonces invalidated in an unlisted market", trader=a["trader"])
                continue
            cmd = {"trader": a["trader"], "market_id": market, "nonce_below": a["below"]}
            rows.append(_row("cancel_all", e, cmd))
    store.insert_new(session=session, table=_COMMANDS, rows=rows, key="ref")


def apply_balances(
    session: Session, tokens: set[str], deltas: Sequence[tuple[str, str, int, int]]
) -> None:
    """Applies `(trader, token, delta, block)` deltas to `chain_balances`, in order.

    One read of the touched rows and one upsert per call, however many deltas (a chunk's
    worth): the deltas are summed per (trader, token) in memory, each step clamped at zero as
    if applied one by one.
    """
    state: dict[tuple[str, str], list[int]] = {}
    unlisted: set[tuple[str, str]] = set()
    for trader, token, _, _ in deltas:
        if token not in tokens:
            unlisted.add((trader, token))
        else:
            state.setdefault((trader, token), [])
    for trader, token in sorted(unlisted):
        log.warning("balance of an unlisted token not kept", trader=trader, token=token)
    if not state:
        return
    keys = list(state)
    for i in range(0, len(keys), 500):  # bounded IN lists (SQLite's variable limit)
        part = keys[i : i + 500]
        b = store.BALANCES.c
        found = session.execute(
            select(b.trader, b.token, b.amount, b.block_number).where(
                b.trader.in_({t for t, _ in part}), b.token.in_({k for _, k in part})
            )
        ).all()
        for trader, token, amount, block in found:
            if (trader, token) in state:
                state[(trader, token)] = [int(amount), int(block)]
    for trader, token, delta, block in deltas:
        entry = state.get((trader, token))
        if entry is None:
            continue
        if not entry:
            entry += [0, block]
        amount = entry[0] + delta
        if amount < 0:
            log.error(
                "on-chain balance would go negative; clamped (indexing started after a deposit?)",
                trader=trader,
                token=token,
                amount=amount,
            )
            amount = 0
        entry[0], entry[1] = amount, max(entry[1], block)
    store.upsert_balances(
        session=session,
        rows=[
            {"trader": t, "token": k, "amount": amount, "block_number": block}
            for (t, k), (amount, block) in state.items()
        ],
    )


def confirm(
    *,
    session: Session,
    chain_id: int,
    upto: int,
    tokens: set[str],
    known: tuple[int, Sequence[ChainLog]] | None = None,
    fee_recipient: str | None = None,
    stream_head: int | None = None,
) -> None:
    """Owes the engine the confirmed effects of blocks (confirmed cursor, upto].

    Set-based, whatever the number of events: one read of the events, one insert of their
    outbox rows (`ON CONFLICT (ref) DO NOTHING`, so an event confirmed before — a restart, a
    re-sync — owes nothing new), one balance update for the new rows only. `known`:
    `(first block, every event of blocks [first block, upto])` already in hand (a backfill
    chunk, just stored) — used instead of reading them back when they cover the range.
    `fee_recipient`: who gets a settled batch's fees when no `FeeRecipientSet` precedes it in
    `chain_events`. `stream_head`: the chain head, when the event stream is on: the newly
    confirmed deposits and withdrawals go to its outbox (`confirmed`, with their depth).
    """
    cursor = store.load_cursor(session=session, name=store.CONFIRMED_CURSOR)
    after = cursor.number if cursor is not None else -1
    if upto <= after:
        return
    rows: list[dict[str, Any]] = []
    deltas: list[tuple[bytes, str, str, int, int]] = []
    moved: list[tuple[bytes, Any]] = []  # (ref, event) of the deposits and withdrawals
    if known is not None and known[0] <= after + 1:
        events: Sequence[Any] = store.as_stored(
            e for e in known[1] if after < e.block_number <= upto and e.name in CONFIRMED
        )
    else:
        events = store.events_between(session=session, after=after, upto=upto, names=CONFIRMED)
    skipped: dict[int, set[int]] = {}  # batch id → indices of its fills the chain skipped
    for ev in events:
        a = ev.args
        if ev.event == "FillSkipped":
            skipped.setdefault(int(a["batchId"]), set()).add(int(a["fillIndex"]))
            continue
        if ev.event == "BatchSettled":
            left_out = skipped.get(int(a["batchId"]), set())
            for row in _settle_rows(session, ev, fee_recipient, left_out):
                c = row["command"]
                rows.append(row)
                deltas.append(
                    (row["ref"], c["trader"], c["token"], int(c["amount"]), ev.block_number)
                )
            continue
        trader, token, amount = a["trader"], a["token"], int(a["amount"])
        command: dict[str, Any] = {"trader": trader, "token": token, "amount": str(amount)}
        if ev.event == "Deposited":
            kind = "credit"
        elif ev.event == "Withdrawn":
            kind = "debit"
            command["withdrawal_id"] = withdrawal_id_for(trader, int(a["nonce"]))
        else:
            kind = "exit_debit"
        row = _row(kind, ev, command)
        rows.append(row)
        moved.append((row["ref"], ev))
        deltas.append((row["ref"], trader, token, BALANCE_SIGN[kind] * amount, ev.block_number))
    fresh = bool(rows) and store.nothing_above(
        session=session, table=_COMMANDS, number=after, where={"kind": list(BALANCE_SIGN)}
    )
    new = store.insert_new(session=session, table=_COMMANDS, rows=rows, key="ref", fresh=fresh)
    apply_balances(session, tokens, [(t, k, d, b) for ref, t, k, d, b in deltas if ref in new])
    if stream_head is not None:
        confirmed = [ev for ref, ev in moved if ref in new]
        stream_events.add_chain(
            session, confirmed, status="confirmed", head=stream_head, tokens=tokens
        )
    store.set_cursor(
        session=session,
        name=store.CONFIRMED_CURSOR,
        chain_id=chain_id,
        number=upto,
        hash_=b"\x00" * 32,
    )


def _settle_rows(
    session: Session, ev: Any, fallback_recipient: str | None, skipped: set[int]
) -> list[dict[str, Any]]:
    """`settle` ledger rows for a confirmed `BatchSettled`: the batch's fills as the settlement
    worker recorded them, netted per (trader, token), the fees to the contract's fee recipient
    at that point of the chain — only when they are the batch the chain applied (same fill
    count and `fillsHash`); otherwise nothing is guessed, loudly. `skipped`: indices (in the
    batch as sent, engine order) of the fills the contract left out (`FillSkipped`)."""
    batch_id, count = int(ev.args["batchId"]), int(ev.args["fillCount"])
    on_chain_hash = bytes.fromhex(str(ev.args["fillsHash"]).removeprefix("0x"))
    batch = session.get(SettlementBatch, batch_id)
    fills = session.execute(
        select(Fill, Market.base_token, Market.quote_token)
        .join(FillSettlement, FillSettlement.fill_id == Fill.id)
        .join(Market, Market.id == Fill.market_id)
        .where(
            FillSettlement.batch_id == batch_id,
            or_(FillSettlement.status != FillStatus.FAILED, FillSettlement.skipped_on_chain),
        )
        .order_by(Fill.seq, Fill.fill_index)
    ).all()
    recorded_hash = None if batch is None or batch.fills_hash is None else bytes(batch.fills_hash)
    if len(fills) != count or recorded_hash != on_chain_hash:
        # Skipping the batch would leave the on-chain balance projection wrong from here on,
        # silently; guessing its fills is worse. Stop the line: the transaction rolls back and
        # the indexer halts before this block until an operator has looked.
        raise HaltError(
            ErrorCode.SETTLEMENT_INCONSISTENT,
            f"batch {batch_id} settled on chain ({count} fills) does not match the one the "
            f"settlement worker recorded ({len(fills)} fills, fillsHash "
            f"{'equal' if recorded_hash == on_chain_hash else 'different'}); the indexer is "
            "halted (docs/runbook.md)",
            batch_id=batch_id,
            block_number=ev.block_number,
            fill_count=count,
            recorded_fills=len(fills),
        )
    recipient = (
        chain_facts.fee_recipient(session, before=(ev.block_number, ev.log_index))
        or fallback_recipient
    )
    if recipient is None and any(f.maker_fee or f.taker_fee for f, _b, _q in fills):
        log.warning(
            "fee recipient unknown (no FeeRecipientSet indexed, HYBRIDEX_FEE_RECIPIENT unset); "
            "its on-chain balance misses this batch's fees",
            batch_id=batch_id,
        )
    net: dict[tuple[str, str], int] = {}
    for index, (fill, base, quote) in enumerate(fills):
        if index in skipped:
            continue
        for trader, token, delta in fill.balance_deltas(base, quote, recipient):
            net[(trader, token)] = net.get((trader, token), 0) + delta
    rows = []
    for (trader, token), delta in sorted(net.items()):
        if delta == 0:
            continue
        row = _row("settle", ev, {"trader": trader, "token": token, "amount": str(delta)})
        row["ref"] = keccak(row["ref"] + bytes.fromhex(trader[2:]) + bytes.fromhex(token[2:]))
        row["status"], row["outcome"] = DONE, "ledger"
        rows.append(row)
    return rows


def on_reorg(
    *, session: Session, chain_id: int, ancestor: int, tokens: set[str], stream: bool = False
) -> None:
    """Undo what blocks above `ancestor` owed or did, then forget them (store.delete_above).
    With `stream`, their deposits and withdrawals go to the event stream as `reorged`."""
    rows = session.scalars(
        select(IndexerCommand)
        .where(IndexerCommand.block_number > ancestor, IndexerCommand.status != CANCELLED)
        .order_by(IndexerCommand.id)
    ).all()
    deltas: list[tuple[str, str, int, int]] = []
    reverses: list[dict[str, Any]] = []
    for row in rows:
        if row.kind.startswith("reverse_") or (row.outcome or "").startswith("orphaned"):
            continue  # a compensation, or already undone by an earlier reorg
        sign = BALANCE_SIGN.get(row.kind)
        c = row.command
        if sign is not None:
            deltas.append((c["trader"], c["token"], -sign * int(c["amount"]), ancestor))
        if row.status == PENDING:
            row.status = CANCELLED
            row.outcome = "orphaned"
        elif row.kind == "settle":
            row.outcome = "orphaned:ledger"  # its balance delta is reversed above
        elif row.status == DONE and row.kind in REVERSE:
            kind = REVERSE[row.kind]
            reverses.append(_row(kind, row, {k: c[k] for k in ("trader", "token", "amount")}))
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
    apply_balances(session, tokens, deltas)
    store.insert_new(session=session, table=_COMMANDS, rows=reverses, key="ref")
    if stream:
        stream_events.add_reorged(session, above=ancestor, tokens=tokens)
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


def _record(session: Session, results: Sequence[tuple[int, int, str]]) -> None:
    """Records `(row id, engine seq, outcome)` of sent rows: `done`, and the deposits their
    applied credits credited — three statements for the whole list."""
    if not results:
        return
    store.mark_commands_done(session=session, results=results)
    store.credit_deposits(
        session=session, command_ids=[i for i, _, code in results if code == "applied"]
    )
    refused = {i: (seq, code) for i, seq, code in results if code != "applied"}
    if refused:
        for row in session.execute(
            select(
                IndexerCommand.id,
                IndexerCommand.kind,
                IndexerCommand.block_number,
                IndexerCommand.command,
            ).where(IndexerCommand.id.in_(list(refused)))
        ):
            seq, code = refused[row.id]
            level = log.info if row.kind in ("cancel_order", "cancel_all") else log.error
            level(
                "engine refused an indexer command",
                kind=row.kind,
                outcome=code,
                engine_seq=seq,
                block_number=row.block_number,
                command=row.command,
            )


class Outbox:
    """Sends `indexer_commands` rows to the engine exactly once (see the module docstring).

    `window`: how many rows are in flight at once — marked `submitted` in one commit, handed
    to the engine together (`submit_all`; the engine group-commits them), their outcomes
    recorded in one commit.
    """

    def __init__(
        self,
        factory: sessionmaker[Session],
        sink: CommandSink,
        lookup: JournalLookup | None,
        *,
        on_sent: Callable[[str, Outcome], None] | None = None,
        window: int = 1_000,
    ) -> None:
        self.factory = factory
        self.sink = sink
        self.lookup = lookup
        self.on_sent = on_sent
        self.window = window

    def drain(self) -> int:
        """Sends every pending row in order; returns how many were sent.

        Rows left in doubt by an earlier failure are resolved first: nothing new is sent while
        a command's fate is unknown (that keeps every recorded seq of a lower row below the
        seq of an in-doubt row, which `resolve_in_doubt` relies on).
        """
        self.resolve_in_doubt()
        sent = 0
        while True:
            with unit_of_work(self.factory) as session:
                batch = session.execute(
                    select(
                        IndexerCommand.id,
                        IndexerCommand.kind,
                        IndexerCommand.ref,
                        IndexerCommand.command,
                    )
                    .where(IndexerCommand.status == PENDING)
                    .order_by(IndexerCommand.id)
                    .limit(self.window)
                ).all()
                if not batch:
                    return sent
                commands = [(build_command(r.kind, dict(r.command)), r.ref) for r in batch]
                store.set_command_status(
                    session=session, ids=[r.id for r in batch], status=SUBMITTED
                )
            # Committed: every row of the window is `submitted` before any is sent.
            results = submit_all(self.sink, commands)
            done: list[tuple[int, int, str]] = []
            unsent: list[int] = []
            failure: BaseException | None = None
            for row, result in zip(batch, results, strict=True):
                if isinstance(result, Outcome):
                    done.append((row.id, result.seq, outcome_code(result)))
                elif isinstance(result, NotSentError):
                    unsent.append(row.id)
                elif failure is None:
                    failure = result  # in doubt: stays `submitted`
            with unit_of_work(self.factory) as session:
                _record(session, done)
                self._unsubmit(session, unsent)
            if self.on_sent is not None:
                for row, result in zip(batch, results, strict=True):
                    if isinstance(result, Outcome):
                        self.on_sent(row.kind, result)
            sent += len(done)
            if failure is not None:
                raise failure

    @staticmethod
    def _unsubmit(session: Session, ids: list[int]) -> None:
        store.set_command_status(session=session, ids=ids, status=PENDING, where_status=SUBMITTED)

    def resolve_in_doubt(self) -> int:
        """Settles `submitted` rows (sent, answer not recorded); returns how many."""
        with unit_of_work(self.factory) as session:
            todo = session.execute(
                select(IndexerCommand.id, IndexerCommand.ref, IndexerCommand.kind)
                .where(IndexerCommand.status == SUBMITTED)
                .order_by(IndexerCommand.id)
            ).all()
            if not todo:
                return 0
            # Every row below the first in-doubt one was recorded before that one was sent
            # (or earlier in its window, which the engine sequenced in id order): their seqs
            # bound the search from below. Rows above it may have higher seqs (same window).
            floor = (
                session.scalar(
                    select(func.max(IndexerCommand.engine_seq)).where(
                        IndexerCommand.id < todo[0].id
                    )
                )
                or 0
            )
        if self.lookup is None:
            raise InDoubtError(
                "indexer commands were sent but their outcome was not recorded, and no engine "
                "journal is configured to look them up (HYBRIDEX_ENGINE_JOURNAL_DIR); refusing "
                "to guess — resolve them by hand (docs/indexer.md)",
                ids=[t.id for t in todo],
            )
        probe = self.sink.submit(probe_command(), ref=b"\x00" * 32)
        found = self.lookup.find_all([t.ref for t in todo], after_seq=floor, before_seq=probe.seq)
        applied = [(t.id, found[t.ref], "applied") for t in todo if t.ref in found]
        absent = [t.id for t in todo if t.ref not in found]
        with unit_of_work(self.factory) as session:
            _record(session, applied)
            self._unsubmit(session, absent)  # never reached the journal: send it again
        for t in todo:
            if t.ref in found:
                log.warning("in-doubt command was applied", kind=t.kind, engine_seq=found[t.ref])
            else:
                log.warning("in-doubt command was not applied; resending", kind=t.kind)
        return len(todo)
