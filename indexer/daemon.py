"""The indexer loop: check the chain, backfill, follow the head, project, send, repeat.

One `step()`:
- far behind (cursor below head − reorg_window): backfill one adaptive `eth_getLogs` chunk of
  final blocks — events, deposits, the chunk's end header, projection and cursor in one
  transaction;
- otherwise: one realtime poll — every new block, or the reorg rollback, with projection and
  cursor in one transaction;
then `Outbox.drain()` sends what the engine is owed. A crash anywhere resumes from the cursor.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import structlog
from eth_utils.crypto import keccak
from sqlalchemy.orm import Session, sessionmaker

from backend.db.session import unit_of_work
from backend.domain.errors import (
    ConfigurationError,
    DexError,
    ErrorCode,
    FatalError,
    HaltError,
)
from indexer import metrics, projection, store, stream_events
from indexer.events import ChainLog, EventCodec, checksum
from indexer.projection import Outbox
from indexer.rpc import BlockHeader, RpcClient, RpcError
from indexer.sync.historical import AdaptiveRange, Prefetched, backfill
from indexer.sync.realtime import Block, Finalize, RealtimeSync, Reorg
from indexer.sync.reorg import BlockWindow

log = structlog.get_logger("indexer.daemon")
FEE_RECIPIENT_CALL = keccak(text="feeRecipient()")[:4]
CANCEL_DELAY_CALL = keccak(text="cancelDelay()")[:4]
ZERO_HASH = b"\x00" * 32


class ChainMismatchError(FatalError):
    def __init__(self, message: str, **context: object) -> None:
        super().__init__(ErrorCode.CHAIN_MISMATCH, message, **context)


@dataclass(frozen=True)
class IndexerConfig:
    exchange_address: str
    chain_id: int | None
    confirmations: int
    reorg_window: int
    start_block: int = 0
    poll_interval_s: float = 1.0
    max_blocks_per_poll: int = 500
    max_log_range: int = 100_000
    """Widest `eth_getLogs` range of the backfill (a hosted provider's limit)."""
    stale_head_s: float | None = 300.0
    """While following, warn when the newest block is older than this (node behind / stalled)."""
    fee_recipient: str | None = None
    """Who receives the trading fees when no `FeeRecipientSet` was indexed before a settled
    batch (indexing started after the deployment): `HYBRIDEX_FEE_RECIPIENT`."""
    cancel_delay_s: int | None = None
    """`HYBRIDEX_CANCEL_DELAY_S`, what the API publishes: checked against `cancelDelay()`."""
    stream: bool = False
    """Write deposits and withdrawals to the event stream's outbox (`HYBRIDEX_STREAM_URL` set)."""


class Indexer:
    def __init__(
        self,
        config: IndexerConfig,
        rpc: RpcClient,
        factory: sessionmaker[Session],
        outbox: Outbox,
        codec: EventCodec | None = None,
    ) -> None:
        if config.confirmations > config.reorg_window:
            raise ConfigurationError(
                "HYBRIDEX_CONFIRMATIONS must not exceed HYBRIDEX_REORG_WINDOW",
                confirmations=config.confirmations,
                reorg_window=config.reorg_window,
            )
        self.config = config
        self.rpc = rpc
        self.factory = factory
        self.outbox = outbox
        self.codec = codec or EventCodec.exchange()
        self.ranges = AdaptiveRange(
            size=min(2_000, config.max_log_range), max_size=config.max_log_range
        )
        self.carry = Prefetched(0, -1, [])
        """Final logs fetched past a dense chunk's cut, for the next chunk (historical.py)."""
        self.chain_id = 0
        self._realtime: RealtimeSync | None = None
        self.stop_event = threading.Event()
        self._node_down = False
        self._head_stale = False
        self._indexed: tuple[int, int] | None = None
        """(number, timestamp) of the newest block committed by this process."""

    # ------------------------------------------------------------------ start-up

    def check_chain(self) -> None:
        """The node serves the configured chain, the Exchange has code, the DB matches."""
        self.chain_id = self.rpc.chain_id()
        if self.config.chain_id is not None and self.chain_id != self.config.chain_id:
            raise ChainMismatchError(
                "the node serves another chain than HYBRIDEX_CHAIN_ID",
                node_chain_id=self.chain_id,
                expected=self.config.chain_id,
            )
        if not self.rpc.get_code(self.config.exchange_address):
            raise ChainMismatchError(
                "no contract code at HYBRIDEX_EXCHANGE_ADDRESS on this chain",
                exchange_address=self.config.exchange_address,
            )
        self._check_fee_recipient()
        self._check_cancel_delay()
        with unit_of_work(self.factory) as session:
            stored = store.cursor_chain_id(session=session)
        if stored is not None and stored != self.chain_id:
            raise ChainMismatchError(
                "the database was indexed from another chain", db_chain_id=stored
            )

    def _check_fee_recipient(self) -> None:
        """Warn when the engine's fee account (`HYBRIDEX_FEE_RECIPIENT`) is not the contract's
        `feeRecipient()`: the engine would credit fees to one account and the chain to another,
        and neither account's balances would agree. Not fatal: an admin may be changing it."""
        call = {"to": self.config.exchange_address, "data": "0x" + FEE_RECIPIENT_CALL.hex()}
        try:
            word = bytes.fromhex(str(self.rpc.call("eth_call", [call, "latest"]))[2:])
        except (RpcError, ValueError) as exc:
            log.warning("could not read the contract's feeRecipient()", error=str(exc))
            return
        if len(word) != 32:
            log.warning("unexpected feeRecipient() answer", answer="0x" + word.hex())
            return
        on_chain = checksum("0x" + word[12:].hex())
        if self.config.fee_recipient != on_chain:
            log.warning(
                "HYBRIDEX_FEE_RECIPIENT is not the contract's feeRecipient(): the engine "
                "credits fees to another account than the chain",
                configured=self.config.fee_recipient or "unset (the engine's placeholder)",
                on_chain=on_chain,
            )

    def _check_cancel_delay(self) -> None:
        """Refuse to start when the contract's `cancelDelay()` is not the configured one: the
        API would publish a delay that traders then rely on wrongly."""
        if self.config.cancel_delay_s is None:
            return
        call = {"to": self.config.exchange_address, "data": "0x" + CANCEL_DELAY_CALL.hex()}
        try:
            word = bytes.fromhex(str(self.rpc.call("eth_call", [call, "latest"]))[2:])
        except (RpcError, ValueError) as exc:
            log.warning("could not read the contract's cancelDelay()", error=str(exc))
            return
        on_chain = int.from_bytes(word, "big") if len(word) == 32 else None
        if on_chain != self.config.cancel_delay_s:
            raise ChainMismatchError(
                "HYBRIDEX_CANCEL_DELAY_S is not the contract's cancelDelay(): set it to the "
                "delay the Exchange was deployed with",
                configured=self.config.cancel_delay_s,
                on_chain="0x" + word.hex() if on_chain is None else on_chain,
            )

    def resync_from(self, number: int) -> None:
        """Forget blocks ≥ number and index them again (`--from-block`). Engine effects
        already sent are remembered by ref in the outbox, so nothing is sent twice."""
        parent = self._parent_of(number)
        with unit_of_work(self.factory) as session:
            store.delete_above(session=session, number=number - 1, orphan=False)
            for name in (store.HEAD_CURSOR, store.CONFIRMED_CURSOR):
                cur = store.load_cursor(session=session, name=name)
                if cur is not None and cur.number >= number:
                    store.set_cursor(
                        session=session,
                        name=name,
                        chain_id=self.chain_id,
                        number=number - 1,
                        hash_=parent.hash if name == store.HEAD_CURSOR else ZERO_HASH,
                    )
            store.save_blocks(session=session, headers=[parent])
        self._realtime = None
        self.carry = Prefetched(0, -1, [])
        log.info("re-sync requested", from_block=number)

    def _parent_of(self, number: int) -> BlockHeader:
        if number <= 0:
            return BlockHeader(-1, ZERO_HASH, ZERO_HASH, 0)
        header = self.rpc.header(number - 1)
        if header is None:
            raise ConfigurationError(f"block {number - 1} is not available on the node")
        return header

    # ------------------------------------------------------------------ steps

    def _cursor(self) -> store.Cursor:
        with unit_of_work(self.factory) as session:
            cursor = store.load_cursor(session=session, name=store.HEAD_CURSOR)
        if cursor is not None:
            return cursor
        parent = self._parent_of(self.config.start_block)
        with unit_of_work(self.factory) as session:
            store.set_cursor(
                session=session,
                name=store.HEAD_CURSOR,
                chain_id=self.chain_id,
                number=parent.number,
                hash_=parent.hash,
            )
            store.save_blocks(session=session, headers=[parent])
        return store.Cursor(parent.number, parent.hash)

    def step(self) -> bool:
        """One unit of progress; False when already at the head."""
        head = self.rpc.block_number()
        self._node_reachable()
        cursor = self._cursor()
        final = head - self.config.reorg_window
        following = cursor.number >= final
        if not following:
            self._backfill_chunk(cursor.number + 1, final)
            progressed = True
        else:
            progressed = self._follow(head)
        self._observe_head(head, following=following)
        self.outbox.drain()
        if progressed:
            with unit_of_work(self.factory) as session:
                metrics.CONFIRMATIONS_BACKLOG.set(store.seen_deposits(session=session))
        return progressed

    # ------------------------------------------------------------------ health

    def _node_reachable(self) -> None:
        metrics.NODE_UP.set(1)
        if self._node_down:
            self._node_down = False
            log.info("rpc node reachable again", rpc_url=self.rpc.display_url)

    def _node_unreachable(self, exc: DexError) -> None:
        metrics.NODE_UP.set(0)
        self._node_down = True
        log.error(
            "rpc node unreachable, indexer waiting",
            rpc_url=self.rpc.display_url,
            error=exc.message,
            rpc_failures=self.rpc.failures,
        )

    def _observe_head(self, head: int, *, following: bool) -> None:
        """Lag and head-age gauges; a log line when the node's head goes stale or recovers."""
        metrics.NODE_HEAD.set(head)
        if self._indexed is None:
            return
        indexed, timestamp = self._indexed
        metrics.INDEXED_BLOCK.set(indexed)
        metrics.LAG_BLOCKS.set(max(0, head - indexed))
        if not following or self.config.stale_head_s is None:
            return
        age = max(0.0, time.time() - timestamp)
        metrics.NODE_HEAD_AGE.set(age)
        stale = age > self.config.stale_head_s
        if stale and not self._head_stale:
            log.warning(
                "node head is stale: the node is behind the network or the chain stalled",
                node_head=head,
                head_age_s=round(age, 1),
                stale_head_s=self.config.stale_head_s,
            )
        elif self._head_stale and not stale:
            log.info("node head fresh again", node_head=head, head_age_s=round(age, 1))
        self._head_stale = stale

    def _backfill_chunk(self, start: int, end: int) -> None:
        self._realtime = None
        chunk = next(
            backfill(
                self.rpc,
                self.codec,
                self.config.exchange_address,
                start=start,
                end=end,
                ranges=self.ranges,
                carry=self.carry,
            )
        )
        with unit_of_work(self.factory) as session:
            tokens = store.known_tokens(session=session)
            store.save_events(
                session=session, logs=chunk.logs, tokens=tokens, above=chunk.from_block - 1
            )
            projection.on_events(session=session, logs=chunk.logs)
            if self.config.stream:
                stream_events.add_chain(
                    session, chunk.logs, status="seen", head=chunk.end.number, tokens=tokens
                )
            store.save_blocks(session=session, headers=[chunk.end])
            store.prune_blocks(session=session, below=chunk.end.number)
            store.set_cursor(
                session=session,
                name=store.HEAD_CURSOR,
                chain_id=self.chain_id,
                number=chunk.end.number,
                hash_=chunk.end.hash,
            )
            projection.confirm(
                session=session,
                chain_id=self.chain_id,
                upto=chunk.end.number,
                tokens=tokens,
                known=(chunk.from_block, chunk.logs),
                fee_recipient=self.config.fee_recipient,
                stream_head=chunk.end.number if self.config.stream else None,
            )
        self._indexed = (chunk.end.number, chunk.end.timestamp)
        metrics.EVENTS.inc(len(chunk.logs))
        log.info(
            "backfilled",
            from_block=chunk.from_block,
            to_block=chunk.to_block,
            events=len(chunk.logs),
            range_size=self.ranges.size,
            target_block=end,
            lag_blocks=end + self.config.reorg_window - chunk.end.number,
        )

    def _sync(self) -> RealtimeSync:
        if self._realtime is None:
            cursor = self._cursor()
            with unit_of_work(self.factory) as session:
                headers = store.load_window(
                    session=session, top=cursor.number, size=self.config.reorg_window
                )
            if not headers or headers[-1].hash != cursor.hash:
                headers = [self._parent_of(cursor.number + 1)]
            self._realtime = RealtimeSync(
                self.rpc,
                self.codec,
                self.config.exchange_address,
                BlockWindow(self.config.reorg_window, headers),
                max_blocks_per_poll=self.config.max_blocks_per_poll,
            )
            if self._indexed is None and headers[-1].number >= 0:
                self._indexed = (headers[-1].number, headers[-1].timestamp)
        return self._realtime

    def _follow(self, head: int) -> bool:
        sync = self._sync()
        items = sync.poll(head)
        blocks = [i for i in items if isinstance(i, Block)]
        reorgs = [i for i in items if isinstance(i, Reorg)]
        if not blocks and not reorgs:
            return False
        tip = sync.window.tip
        assert tip is not None
        try:
            with unit_of_work(self.factory) as session:
                tokens = store.known_tokens(session=session)
                logs: list[ChainLog] = []  # of consecutive new blocks: stored together

                def flush() -> None:
                    store.save_events(session=session, logs=logs, tokens=tokens)
                    projection.on_events(session=session, logs=logs)
                    if self.config.stream:
                        stream_events.add_chain(
                            session, logs, status="seen", head=tip.number, tokens=tokens
                        )
                    logs.clear()

                for item in items:
                    if isinstance(item, Reorg):
                        flush()
                        projection.on_reorg(
                            session=session,
                            chain_id=self.chain_id,
                            ancestor=item.ancestor.number,
                            tokens=tokens,
                            stream=self.config.stream,
                        )
                    elif isinstance(item, Block):
                        logs.extend(item.logs)
                    elif isinstance(item, Finalize):
                        store.prune_blocks(session=session, below=item.number)
                flush()
                store.save_blocks(session=session, headers=[b.header for b in blocks])
                store.set_cursor(
                    session=session,
                    name=store.HEAD_CURSOR,
                    chain_id=self.chain_id,
                    number=tip.number,
                    hash_=tip.hash,
                )
                projection.confirm(
                    session=session,
                    chain_id=self.chain_id,
                    upto=tip.number - self.config.confirmations,
                    tokens=tokens,
                    fee_recipient=self.config.fee_recipient,
                    stream_head=tip.number if self.config.stream else None,
                )
        except BaseException:
            self._realtime = None  # the in-memory window may be ahead of the database
            raise
        self._indexed = (tip.number, tip.timestamp)
        metrics.REORGS.inc(len(reorgs))
        for r in reorgs:
            metrics.REORG_DEPTH.observe(r.depth)
        metrics.EVENTS.inc(sum(len(b.logs) for b in blocks))
        for r in reorgs:
            log.warning("reorg rolled back", depth=r.depth, ancestor_number=r.ancestor.number)
        if blocks:
            lag = head - tip.number
            log.info(
                "followed",
                block_number=tip.number,
                blocks=len(blocks),
                events=sum(len(b.logs) for b in blocks),
                lag_blocks=lag,
            )
        return True

    # ------------------------------------------------------------------ loop

    def run(self) -> None:
        """Poll until `stop_event` is set; transient errors back off, fatal ones raise."""
        checked = False  # a node that is down at start-up is waited for, like later
        failures = 0
        log.info(
            "indexer starting",
            rpc_url=self.rpc.display_url,
            exchange_address=self.config.exchange_address,
            chain_id=self.config.chain_id,
            confirmations=self.config.confirmations,
            reorg_window=self.config.reorg_window,
        )
        while not self.stop_event.is_set():
            try:
                if not checked:
                    self.check_chain()
                    self.outbox.resolve_in_doubt()
                    checked = True
                progressed = self.step()
                failures = 0
            except HaltError as exc:
                self._halt(exc)
                return
            except FatalError:
                raise
            except DexError as exc:  # RetryableError: RPC down, engine timeout
                failures += 1
                metrics.STEP_FAILURES.labels(exc.code.name).inc()
                if exc.code is ErrorCode.RPC_UNAVAILABLE:
                    self._node_unreachable(exc)
                delay = min(30.0, self.config.poll_interval_s * 2**failures)
                log.error(
                    "indexer step failed, retrying",
                    code=exc.code.name,
                    error=exc.message,
                    retry_in_s=delay,
                )
                if exc.code is ErrorCode.ENGINE_UNAVAILABLE:
                    self._resolve_after_timeout()
                self.stop_event.wait(delay)
                continue
            if not progressed:
                self.stop_event.wait(self.config.poll_interval_s)

    def _halt(self, exc: HaltError) -> None:
        """Stay up (metrics, probes) doing nothing until stopped: a restart would only stop
        at the same block again, and a crash loop hides the reason."""
        metrics.HALTED.set(1)
        log.critical("indexer halted", code=exc.code.name, error=exc.message, **exc.context)
        self.stop_event.wait()

    def _resolve_after_timeout(self) -> None:
        try:
            self.outbox.resolve_in_doubt()
        except DexError as exc:
            if isinstance(exc, FatalError):
                raise
            log.error("in-doubt resolution failed, will retry", error=exc.message)

    def run_until_synced(self, max_steps: int = 100_000) -> None:
        """Steps until at the head (tests, benchmarks)."""
        for _ in range(max_steps):
            if not self.step():
                return
        raise RuntimeError("still not at the head")
