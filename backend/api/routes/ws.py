"""WebSocket `/v1/ws`: sequenced channels with snapshot, resume and gap → resync (docs/api.md).

Client → server: `{"op": "subscribe", "channel": "book:WETH-USDC", "fromSeq": 41?}`,
`{"op": "unsubscribe", "channel": ...}`, `{"op": "ping"}`, `{"op": "auth", "session": token}`,
and order entry: `place`, `cancel`, `cancelAll`, `batch` (the REST bodies plus an `id`, each
answered by a `result` in order; pipelined, `HYBRIDEX_API_WS_MAX_INFLIGHT` unanswered at
most) and `cancelOnDisconnect` (`{"enabled": true, "timeoutS": 15}`; on an authenticated
connection it arms a journaled engine timer for the trader, see `set_cancel_on_disconnect`).
The private channels (`orders:`, `balances:`, `fills:` of an address) need that trader's signed
read Session (`backend.api.sessions`): sent with `auth`, or as the `X-Hybridex-Session` header
of the handshake; when it expires, those subscriptions end with a `SESSION_INVALID` error.
Server → client: `subscribed`, `snapshot` (book), `update` (`seq` = the channel's sequence,
consecutive), `resync` (the requested seq left the retention window), `heartbeat` (with the
last seq of every subscribed channel, so a quiet gap is detectable), `pong`, `error`.

`ticker:{market}` is a state channel, not a sequenced one: each `ticker` message is the whole
ticker (as `GET /v1/markets/{id}/ticker`), sent on subscribing and then whenever it changed,
checked every `HYBRIDEX_API_WS_TICKER_INTERVAL_S` (the worker's `TickerCache` computes it once
per interval for all its clients). Nothing to resume: the next message is complete.

Each client has a bounded send queue; a client that does not read fast enough is closed with
code 1013 rather than buffered without end.

Limits per connection (docs/api.md): a client sending more messages than its bucket allows
(`HYBRIDEX_API_WS_MSG_PER_S` / `_BURST`) is closed with 1008 and reason `RATE_LIMITED`; a
message over `HYBRIDEX_API_WS_MAX_MESSAGE_BYTES` closes it with 1009 (uvicorn refuses such a
frame before it is read whole; the check here covers other servers, with reason
`PAYLOAD_TOO_LARGE`). Book snapshots come from the worker's `books` cache: a flood of
subscriptions costs the engine one BOOK request per market per `HYBRIDEX_API_WS_BOOK_CACHE_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import Coroutine
from typing import Any

import orjson
import structlog
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from backend.api.deps import ApiContext, ctx, require_keys
from backend.api.routes.batch import Prepared, apply_batch, error_reply, prepare_batch
from backend.api.routes.orders import (
    PreparedCancel,
    PreparedCancelAll,
    PreparedPlace,
    Reply,
    prepare_cancel,
    prepare_cancel_all,
    prepare_place,
    require_allowed,
    submit_cancel,
    submit_cancel_all,
    submit_place,
    trader_limit,
)
from backend.api.serializers import hex0x
from backend.api.sessions import HEADER, check_trader
from backend.api.tickers import compute_ticker
from backend.api.ws_limits import MessageBucket
from backend.domain.errors import DexError, ErrorCode
from backend.eip712.parsing import parse_address
from backend.engine.client import EngineOutcomeUnknownError, Intake
from backend.engine.feeds import FeedMessage
from backend.matching.commands import ArmCancelOnDisconnect, CancelOnDisconnect, CancelOrder
from backend.matching.events import CommandRejected, OrderCancelled

router = APIRouter()
log = structlog.get_logger("backend.api")

MAX_SUBSCRIPTIONS = 50
PRIVATE_KINDS = frozenset({"orders", "balances", "fills"})  # a trader's private channels
SNAPSHOT_DEPTH = 1000
SLOW_CLIENT_CLOSE = 1013
POLICY_CLOSE = 1008
TOO_BIG_CLOSE = 1009
UNSUPPORTED_CLOSE = 1003
READ_LIMIT = 1000


MAX_REQUEST_ID = 64
# Orders a connection remembers for cancel-on-disconnect. Fills by other traders are not seen
# here, so without a bound a long-lived quoting connection would grow without end.
MAX_TRACKED = 10_000
RESTING = frozenset({"open", "partially_filled", "pending"})
ORDER_OPS = frozenset({"place", "cancel", "cancelAll", "batch", "cancelOnDisconnect"})
PIPELINED_OPS = frozenset({"place", "cancel", "cancelAll", "batch"})
_pulls: set[asyncio.Task[None]] = set()  # cancel-on-disconnect runs past its connection
# Order messages being applied: they run past their connection (a drop loses the result, not
# the order), so the loop's weak reference to their tasks is not the only one.
_applying: set[asyncio.Future[Reply]] = set()
# The engine-side timer of an authenticated cancel-on-disconnect: it fires `timeoutS` after the
# last renewal (the API worker died), renewed every third of that while the connection lives.
COD_TIMEOUT_S = 15
COD_TIMEOUT_RANGE = (3, 300)


def _request_id_ok(value: object) -> bool:
    if type(value) is int:
        return True
    return isinstance(value, str) and 1 <= len(value) <= MAX_REQUEST_ID


async def pull_orders(session: WsSession) -> None:
    """Cancel-on-disconnect: once the order messages in flight are done, fire the engine timer
    of an authenticated connection (every order of its trader, one journaled command), then a
    CancelOrder per other order the connection placed (the engine refuses those that no
    longer rest). Enforced off chain: the signed orders stay valid on chain until cancelled
    there or expired."""
    inflight = [fut for _, fut in session.answers]
    if inflight:
        await asyncio.wait(inflight)  # never cancels them
    c, trader = session.ctx, session.cod_trader
    if trader is not None:
        try:
            outcome = await c.engine.submit(
                CancelOnDisconnect(0, 0, trader, session.connection_id),
                timeout=c.settings.api_engine_timeout_s,
            )
            fired = sum(isinstance(e, OrderCancelled) for e in outcome.events)
            log.info("ws_cancel_on_disconnect_fired", trader=trader, cancelled=fired)
        except Exception as exc:  # the engine's timer fires on its own at the deadline
            log.warning("ws_cancel_on_disconnect_deferred", trader=trader, error=repr(exc))
    placed = {h: t for h, t in session.placed.items() if t != trader}
    cancelled = 0
    for order_hash, trader in placed.items():
        try:
            outcome = await c.engine.submit(
                CancelOrder(0, 0, order_hash, trader), timeout=c.settings.api_engine_timeout_s,
                intake=Intake(),
            )  # fmt: skip
        except Exception as exc:  # the engine gone: those orders rest; say which
            log.warning("ws_cancel_on_disconnect_failed", order_hash=hex0x(order_hash),
                        error=repr(exc))  # fmt: skip
            continue
        cancelled += any(isinstance(e, OrderCancelled) for e in outcome.events)
    log.info("ws_cancel_on_disconnect", orders=len(placed), cancelled=cancelled)


class SlowClientError(Exception):
    """The client's send queue is full."""


class WsLimitError(Exception):
    """The client broke a per-connection limit: close with `close_code`, reason `code`."""

    def __init__(self, close_code: int, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.close_code = close_code
        self.code = code


class WsSession:
    def __init__(self, websocket: WebSocket, context: ApiContext) -> None:
        self.ws = websocket
        self.ctx = context
        self.subs: dict[str, int] = {}
        self.tickers: dict[str, dict[str, Any] | None] = {}
        """ticker channel → the ticker last sent (None: none yet)."""
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(context.settings.api_ws_send_queue)
        self.last_sent = time.monotonic()
        self.pump_task: asyncio.Task[None] | None = None
        self.session: str | None = websocket.headers.get(HEADER)
        """The read Session token presented (handshake header or `auth`), for private channels."""
        self.cancel_on_disconnect = False
        self.max_inflight = context.settings.api_ws_max_inflight
        self.answers: deque[tuple[object, asyncio.Future[Reply]]] = deque()
        """Order messages read and not yet answered (request id, reply), in the order read:
        the answerer sends their results in this order."""
        self._queued = asyncio.Event()  # an answer was queued
        self._answered = asyncio.Event()  # the answerer took one off the queue
        self.connection_id = uuid.uuid4().hex
        self.cod_trader: str | None = None
        """The trader whose engine-side cancel-on-disconnect timer this connection holds."""
        self.cod_timeout = COD_TIMEOUT_S
        self.cod_renewer: asyncio.Task[None] | None = None
        self.placed: dict[bytes, str] = {}
        """Order hash → trader of the orders placed here that may still rest."""

    # ------------------------------------------------------------------ sending

    def emit(self, message: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(orjson.dumps(message))
        except asyncio.QueueFull:
            raise SlowClientError from None

    async def sender(self) -> None:
        while True:
            data = await self.queue.get()
            await self.ws.send_text(data.decode())
            self.last_sent = time.monotonic()

    def emit_update(self, m: FeedMessage) -> None:
        self.emit({"type": "update", "channel": m.channel, "seq": m.seq, "data": m.data})
        self.subs[m.channel] = m.seq

    # ------------------------------------------------------------------ channels

    async def channel_name(self, channel: object) -> str:
        if not isinstance(channel, str) or ":" not in channel:
            raise DexError(ErrorCode.INVALID_REQUEST, "channel: expected e.g. book:WETH-USDC")
        kind, _, key = channel.partition(":")
        if kind in ("book", "trades", "ticker"):
            await self.ctx.markets.by_id(key)
            return channel
        if kind in PRIVATE_KINDS:
            try:
                return f"{kind}:{parse_address(key, 'channel')}"
            except DexError as exc:
                raise DexError(ErrorCode.INVALID_REQUEST, exc.message) from None
        raise DexError(
            ErrorCode.INVALID_REQUEST,
            "channel: one of book:, trades:, ticker:, orders:, balances:, fills:",
        )

    async def snapshot(self, channel: str, *, resync: bool) -> None:
        market_id = channel.partition(":")[2]
        engine = self.ctx.engine
        # A cached snapshot may be older than the feed: the client is caught up from its seq.
        snap = await self.ctx.books.get(market_id, lambda: engine.book(market_id, SNAPSHOT_DEPTH))
        self.subs[channel] = snap.feed_seq
        self.emit({
            "type": "snapshot", "channel": channel, "seq": snap.feed_seq, "resync": resync,
            "bids": [[str(p), str(a)] for p, a in snap.bids],
            "asks": [[str(p), str(a)] for p, a in snap.asks],
        })  # fmt: skip

    async def resync(self, channel: str) -> None:
        """The client missed messages that left the retention window."""
        if channel.startswith("book:"):
            await self.snapshot(channel, resync=True)
            return
        latest = await self.ctx.feeds.latest_seq(channel)
        self.subs[channel] = latest
        self.emit({"type": "resync", "channel": channel, "seq": latest})

    async def catch_up(self, channel: str) -> None:
        """Send everything after the channel's last sent seq (or resync if it is gone)."""
        while True:
            msgs = await self.ctx.feeds.read_after(channel, self.subs[channel], limit=READ_LIMIT)
            if msgs is None:
                await self.resync(channel)
                return
            for m in msgs:
                self.emit_update(m)
            if len(msgs) < READ_LIMIT:
                return

    def authorize(self, channel: str) -> None:
        """Private channels: the subscriber must speak for the channel's trader."""
        kind, _, key = channel.partition(":")
        if kind in PRIVATE_KINDS:
            check_trader(
                self.ctx,
                key,
                token=self.session,
                authorization=self.ws.headers.get("authorization"),
            )

    def drop_expired(self) -> None:
        """End private subscriptions whose session no longer holds (it expired)."""
        for channel in [c for c in self.subs if c.partition(":")[0] in PRIVATE_KINDS]:
            try:
                self.authorize(channel)
            except DexError as exc:
                del self.subs[channel]
                self.emit(
                    {
                        "type": "error",
                        "code": exc.code.name,
                        "message": exc.message,
                        "channel": channel,
                    }
                )

    async def subscribe(self, channel: str, from_seq: int | None) -> None:
        self.authorize(channel)
        known = channel in self.subs or channel in self.tickers
        if not known and len(self.subs) + len(self.tickers) >= MAX_SUBSCRIPTIONS:
            raise DexError(ErrorCode.INVALID_REQUEST, f"at most {MAX_SUBSCRIPTIONS} channels")
        if channel.startswith("ticker:"):
            self.emit({"type": "subscribed", "channel": channel, "seq": None})
            self.tickers[channel] = None
            await self.refresh_ticker(channel)
            return
        latest = await self.ctx.feeds.latest_seq(channel)
        self.emit({"type": "subscribed", "channel": channel, "seq": latest})
        if from_seq is None:
            if channel.startswith("book:"):
                await self.snapshot(channel, resync=False)
            else:
                self.subs[channel] = latest
            return
        self.subs[channel] = min(from_seq, latest)
        await self.catch_up(channel)

    # ------------------------------------------------------------------ the pump

    async def pump(self) -> None:
        heartbeat = self.ctx.settings.api_ws_heartbeat_s
        while True:
            if not self.subs:
                await asyncio.sleep(heartbeat)
                self.heartbeat()
                continue
            msgs = await self.ctx.feeds.wait(dict(self.subs), timeout=heartbeat)
            for m in msgs:
                expected = self.subs.get(m.channel)
                if expected is None or m.seq <= expected:
                    continue
                if m.seq == expected + 1:
                    self.emit_update(m)
                else:  # a gap: read what is missing (or resync if it left retention)
                    await self.catch_up(m.channel)
            if not msgs:
                for channel, seq in list(self.subs.items()):
                    if await self.ctx.feeds.latest_seq(channel) > seq:
                        await self.catch_up(channel)
            if time.monotonic() - self.last_sent >= heartbeat:
                self.heartbeat()

    # ------------------------------------------------------------------ tickers

    async def refresh_ticker(self, channel: str) -> None:
        """Send the channel's ticker if it differs from the one last sent."""
        market = await self.ctx.markets.by_id(channel.partition(":")[2])
        c = self.ctx
        ticker = await c.tickers.get(
            market.market_id, lambda: compute_ticker(c.db, c.engine, market)
        )
        if channel in self.tickers and ticker != self.tickers[channel]:
            self.tickers[channel] = ticker
            self.emit({"type": "ticker", "channel": channel, "data": ticker})

    async def ticker_loop(self) -> None:
        interval = self.ctx.settings.api_ws_ticker_interval_s
        while True:
            await asyncio.sleep(interval)
            for channel in list(self.tickers):
                try:
                    await self.refresh_ticker(channel)
                except SlowClientError:
                    raise
                except Exception as exc:  # the database or engine briefly away: next interval
                    log.warning("ws_ticker_failed", channel=channel, error=repr(exc))

    def heartbeat(self) -> None:
        self.drop_expired()
        self.emit({"type": "heartbeat", "time": int(time.time()), "seqs": dict(self.subs)})

    async def restart_pump(self) -> None:
        await self.stop_pump()
        self.pump_task = asyncio.create_task(self.pump())

    async def stop_pump(self) -> None:
        if self.pump_task is not None:
            task, self.pump_task = self.pump_task, None
            task.cancel()
            # wait() never raises the task's own CancelledError, so a cancellation of *this*
            # task (server shutdown) still propagates instead of being swallowed here.
            await asyncio.wait([task])

    # ------------------------------------------------------------------ control

    async def handle(self, raw: str) -> None:
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            await self.drain()
            self.emit({"type": "error", "code": "INVALID_REQUEST", "message": "malformed JSON"})
            return
        op = msg.get("op") if isinstance(msg, dict) else None
        if op in PIPELINED_OPS and _request_id_ok(msg.get("id")):
            await self.order_entry(op, msg)  # the hot path: answered by the answerer
            return
        # Anything else is answered right here: once the order messages before it are.
        await self.drain()
        try:
            if op == "ping":
                self.emit({"type": "pong", "time": int(time.time())})
            elif op == "auth":
                token = msg.get("session")
                if not isinstance(token, str):
                    raise DexError(ErrorCode.SESSION_INVALID, "auth: session must be a token")
                trader = self.ctx.read_sessions.trader(token)
                self.session = token
                self.emit({"type": "authenticated", "trader": trader})
            elif op in ORDER_OPS:
                await self.order_entry(op, msg)
            elif op in ("subscribe", "unsubscribe"):
                channel = await self.channel_name(msg.get("channel"))
                await self.stop_pump()
                try:
                    if op == "subscribe":
                        await self.subscribe(channel, _from_seq(msg.get("fromSeq")))
                    else:
                        self.subs.pop(channel, None)
                        self.tickers.pop(channel, None)
                        self.emit({"type": "unsubscribed", "channel": channel})
                finally:
                    await self.restart_pump()
            else:
                raise DexError(
                    ErrorCode.INVALID_REQUEST,
                    "op: subscribe, unsubscribe, auth, ping, place, cancel, cancelAll, batch "
                    "or cancelOnDisconnect",
                )
        except DexError as exc:
            self.emit({"type": "error", "code": exc.code.name, "message": exc.message})

    # ------------------------------------------------------------------ order entry

    async def order_entry(self, op: str, msg: dict[str, Any]) -> None:
        """Start one order message, answered by a `result` with its `id`, the single endpoint's
        status and body. Messages are pipelined: the checks (signature, limits) run here, in
        the order read, then the command goes to the engine without waiting for its answer,
        and the next message is read; `answerer` sends the results in the order read. At most
        `max_inflight` are unanswered: the next message is read once one is answered."""
        rid = msg.get("id")
        if not _request_id_ok(rid):
            raise DexError(
                ErrorCode.INVALID_REQUEST,
                f"id: {op} needs a request id (a string of 1 to {MAX_REQUEST_ID} characters or "
                "an integer), echoed in its result",
                field="id",
            )
        await self._room(self.max_inflight)
        body = {k: v for k, v in msg.items() if k not in ("op", "id")}
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # A task, not awaited here: a connection dropping halfway through a message (this
        # task cancelled) does not cut it short; what was read is applied whole.
        reply = _apply(self._order_op(self.ctx, op, body, sent))
        self.answers.append((rid, reply))
        self._queued.set()
        started: list[asyncio.Future[Any]] = [sent, reply]
        await asyncio.wait(started, return_when=asyncio.FIRST_COMPLETED)  # never cancels them

    async def _room(self, limit: int) -> None:
        """Wait until fewer than `limit` order messages are unanswered."""
        while len(self.answers) >= limit:
            self._answered.clear()
            await self._answered.wait()

    async def drain(self) -> None:
        """Wait until every order message read so far is answered."""
        await self._room(1)

    async def answerer(self) -> None:
        """Send the order messages' results in the order the messages were read."""
        while True:
            if not self.answers:
                self._queued.clear()
                await self._queued.wait()
                continue
            rid, reply = self.answers[0]
            # Shielded: this task ending (the connection closing) does not cancel the order.
            status, answer = await asyncio.shield(reply)
            self.answers.popleft()
            self._answered.set()
            self.emit({"type": "result", "id": rid, "status": status, "body": answer})

    async def _order_op(
        self, c: ApiContext, op: str, body: dict[str, Any], sent: asyncio.Future[None]
    ) -> Reply:
        """Check an order message, then apply it. `sent` resolves once it is checked: the next
        message is read then, and this command is already queued on the engine connection
        by the time that runs (nothing awaits between the two), so messages reach the engine
        in the order read."""
        try:
            try:
                if op == "cancelOnDisconnect":
                    return await self.set_cancel_on_disconnect(body)
                if op == "batch":
                    require_keys(body, ("items",))
                    prepared: Prepared | list[Prepared] | PreparedCancelAll
                    prepared = await prepare_batch(c, body["items"], ip=None)
                elif op == "place":
                    prepared = await prepare_place(c, body)
                    require_allowed(await trader_limit(c, prepared.trader), prepared.trader)
                elif op == "cancel":
                    prepared = prepare_cancel(c, body)
                else:
                    prepared = await prepare_cancel_all(c, body)
            except DexError as exc:
                return error_reply(c, exc)
            sent.set_result(None)
            try:
                if isinstance(prepared, list):
                    return 200, {"results": await apply_batch(c, prepared, answered=self.track)}
                if isinstance(prepared, PreparedPlace):
                    reply = await submit_place(c, prepared)
                elif isinstance(prepared, PreparedCancel):
                    reply = await submit_cancel(c, prepared)
                else:
                    return await submit_cancel_all(c, prepared)
            except DexError as exc:  # counted where it was raised
                return error_reply(c, exc, counted=True)
            self.track(prepared, reply)
            return reply
        finally:
            if not sent.done():
                sent.set_result(None)

    async def set_cancel_on_disconnect(self, body: dict[str, Any]) -> Reply:
        """Opt in or out. On an authenticated connection (a read Session, as private channels
        need) the opt-in also arms an engine-side timer for the trader, so the orders are
        cancelled even if this API worker dies: renewed while the connection lives, fired at
        once on disconnect, or by the engine's sweep `timeoutS` after the last renewal."""
        require_keys(body, ("enabled",), ("timeoutS",))
        enabled = body["enabled"]
        if type(enabled) is not bool:
            raise DexError(ErrorCode.INVALID_REQUEST, "enabled: true or false")
        timeout = body.get("timeoutS", COD_TIMEOUT_S)
        low, high = COD_TIMEOUT_RANGE
        if type(timeout) is not int or not low <= timeout <= high:
            raise DexError(
                ErrorCode.INVALID_REQUEST,
                f"timeoutS: an integer number of seconds from {low} to {high}",
                field="timeoutS",
            )
        trader = self.ctx.read_sessions.trader(self.session) if self.session else None
        if self.cod_trader is not None and (not enabled or trader != self.cod_trader):
            await self._arm(self.cod_trader, 0)
            self._stop_renewer()
            self.cod_trader = None
        if enabled and trader is not None:
            self.cod_timeout = timeout
            await self._arm(trader, int(time.time()) + timeout)
            self.cod_trader = trader
            if self.cod_renewer is None:
                self.cod_renewer = asyncio.create_task(self._renew())
        self.cancel_on_disconnect = enabled
        return 200, {
            "cancelOnDisconnect": enabled,
            "orders": len(self.placed),
            "trader": self.cod_trader,
            "timeoutS": self.cod_timeout if self.cod_trader else None,
        }

    async def _arm(self, trader: str, deadline: int) -> None:
        """Arm (or, deadline 0, disarm) this connection's engine timer; refused → DexError.
        No answer in time: the command may be journaled, and the renewal re-arms it."""
        c = self.ctx
        command = ArmCancelOnDisconnect(0, 0, trader, self.connection_id, deadline)
        try:
            outcome = await c.engine.submit(command, timeout=c.settings.api_engine_timeout_s)
        except (TimeoutError, EngineOutcomeUnknownError):
            return
        except DexError:
            raise
        except Exception as exc:
            raise DexError(ErrorCode.ENGINE_UNAVAILABLE, f"engine unavailable: {exc}") from None
        for e in outcome.events:
            if isinstance(e, CommandRejected):
                raise DexError(e.code, f"cancelOnDisconnect: {e.message}")

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.cod_timeout / 3)
            trader = self.cod_trader
            if trader is None:
                return
            try:
                await self._arm(trader, int(time.time()) + self.cod_timeout)
            except DexError as exc:  # the next renewal retries; the engine fires at the deadline
                log.warning("ws_cancel_on_disconnect_renew_failed", trader=trader,
                            code=exc.code.name)  # fmt: skip

    def _stop_renewer(self) -> None:
        if self.cod_renewer is not None:
            self.cod_renewer.cancel()
            self.cod_renewer = None

    def track(self, prepared: PreparedPlace | PreparedCancel, reply: Reply) -> None:
        """Orders placed on this connection that may rest: what cancel-on-disconnect pulls."""
        h = prepared.command.order_hash
        if isinstance(prepared, PreparedPlace) and reply[1].get("status") in RESTING:
            self.placed[h] = prepared.trader
            if len(self.placed) > MAX_TRACKED:  # mostly filled since: forget the oldest
                del self.placed[next(iter(self.placed))]
        elif reply[1].get("status") in ("cancelled", "filled", "expired"):
            self.placed.pop(h, None)

    async def receiver(self) -> None:
        settings = self.ctx.settings
        max_bytes = settings.api_ws_max_message_bytes
        bucket = MessageBucket(settings.api_ws_msg_per_s, settings.api_ws_msg_burst)
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
            raw = message.get("text")
            if raw is None:  # a binary frame: the protocol is JSON text
                raise WsLimitError(
                    UNSUPPORTED_CLOSE, ErrorCode.INVALID_REQUEST, "binary frames are not supported"
                )
            if len(raw) > max_bytes or len(raw.encode()) > max_bytes:
                raise WsLimitError(
                    TOO_BIG_CLOSE, ErrorCode.PAYLOAD_TOO_LARGE,
                    f"message over {max_bytes} bytes",
                )  # fmt: skip
            if not bucket.take():
                raise WsLimitError(
                    POLICY_CLOSE, ErrorCode.RATE_LIMITED,
                    f"more than {bucket.burst} messages at once or {bucket.per_s}/s",
                )  # fmt: skip
            await self.handle(raw)


def _apply(coro: Coroutine[Any, Any, Reply]) -> asyncio.Future[Reply]:
    task = asyncio.ensure_future(coro)
    _applying.add(task)
    task.add_done_callback(_applying.discard)
    return task


def _from_seq(value: object) -> int | None:
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise DexError(ErrorCode.INVALID_REQUEST, "fromSeq: a non-negative integer")
    return value


@router.websocket("/v1/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    context = ctx(websocket)
    await websocket.accept()
    context.metrics.ws_clients.inc()
    session = WsSession(websocket, context)
    await session.restart_pump()
    tasks = [
        asyncio.create_task(session.sender()),
        asyncio.create_task(session.receiver()),
        asyncio.create_task(session.answerer()),
        asyncio.create_task(session.ticker_loop()),
    ]
    try:
        while True:
            watched = [*tasks, session.pump_task] if session.pump_task else tasks
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.cancelled():  # a pump replaced after a (un)subscribe
                    continue
                exc = task.exception()
                if exc is not None:
                    raise exc
                if task in tasks:
                    return
    except SlowClientError:
        context.metrics.ws_dropped.inc()
        log.info("ws_slow_client_closed", queued=session.queue.qsize())
        with contextlib.suppress(Exception):
            await websocket.close(code=SLOW_CLIENT_CLOSE, reason="client too slow")
    except WsLimitError as exc:
        context.metrics.ws_refused.labels(exc.code.name).inc()
        log.info("ws_limit_closed", code=exc.code.name, reason=str(exc))
        with contextlib.suppress(Exception):
            await websocket.close(code=exc.close_code, reason=exc.code.name)
    except WebSocketDisconnect:
        pass
    except Exception:
        log.exception("ws_failed")
        with contextlib.suppress(Exception):
            await websocket.close(code=1011)
    finally:
        # Cancel the session's tasks without awaiting them: this task may itself be being
        # cancelled (server shutdown, client gone), and every await here would be one more
        # cancellation point inside its cancel scope; they end on their own next iteration.
        for t in [*tasks, session.pump_task]:
            if t is not None:
                t.cancel()
        session.pump_task = None
        session._stop_renewer()
        if session.cancel_on_disconnect:
            pull = asyncio.create_task(pull_orders(session))
            _pulls.add(pull)
            pull.add_done_callback(_pulls.discard)
