"""The matching engine: a deterministic state machine, `apply(command) -> events` (SPEC §4).

Single writer of books, reservations, order state and fills. No clock and no I/O: time and the
sequence number come inside each command, so replaying the journal rebuilds the same state.

Documented choices:
- Self-trade prevention cancels the *resting* order (cancel-oldest) and matching continues.
- Cancels are always accepted, whatever the market state (a trader can always reduce risk);
  CANCEL_ONLY and HALTED refuse new orders with MARKET_NOT_ACCEPTING.
- A PlaceOrder whose hash was already accepted is answered with `OrderDuplicate` and changes
  nothing; a rejected order leaves no trace, so the same signed order may be sent again later.
- A nonce below the trader's CancelAll bar is refused with ORDER_CANCELLED: the trader
  cancelled that order before it arrived.
- POST_ONLY (order or market state) is refused only if it would fill another trader's live
  order; crossing an expired or own resting order removes that order and the new one rests.
- The circuit breaker is checked when an order has finished matching (the price band already
  bounds how far one order can sweep): the market moves to CANCEL_ONLY with a RiskEvent.
- Widths are the chain's: amounts, prices and market settings fit in uint256, nonces and
  expiries in uint64, and a credit that would take a token's total over 2**256-1 is refused.
  Every product then fits in 512 bits and every balance in 256, which the native core relies
  on (it refuses the same commands with the same codes).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sortedcontainers import SortedDict

from backend.domain.errors import ErrorCode
from backend.domain.types import (
    PRICE_SCALE,
    UINT64_MAX,
    UINT256_MAX,
    MarketState,
    Side,
    TimeInForce,
)
from backend.matching.balances import Balance, Balances
from backend.matching.commands import (
    AddMarket,
    ArmCancelOnDisconnect,
    CancelAll,
    CancelOnDisconnect,
    CancelOrder,
    Command,
    Credit,
    Debit,
    FreezeTrader,
    PlaceOrder,
    ReleaseWithdrawal,
    ReserveWithdrawal,
    RevertFill,
    ScheduleCancel,
    SetMarketState,
    SweepExpired,
)
from backend.matching.events import (
    BalanceChanged,
    CancelAllApplied,
    CancelReason,
    CancelRejected,
    CancelScheduled,
    CommandRejected,
    Event,
    Fill,
    FillReverted,
    MarketAdded,
    MarketStateChanged,
    OrderAccepted,
    OrderCancelled,
    OrderDuplicate,
    OrderRejected,
    RiskEvent,
    TraderFrozen,
    WithdrawalReleased,
    WithdrawalReserved,
)
from backend.matching.invariants import InvariantError, validate_invariants
from backend.matching.market import Market, spec_problem
from backend.matching.order import Order
from backend.matching.price_level import PriceLevel
from backend.matching.risk import BPS, outside_band

if TYPE_CHECKING:
    from backend.matching.snapshot import EncodedState

FEE_ACCOUNT = "0x000000000000000000000000000000000000Fee5"
"""Default account that fees accrue to; configurable per engine."""

_BUY = Side.BUY
_GTC = TimeInForce.GTC
_IOC = TimeInForce.IOC
_FOK = TimeInForce.FOK
_POST_ONLY = TimeInForce.POST_ONLY
_ONLINE = MarketState.ONLINE
_POST_ONLY_STATE = MarketState.POST_ONLY
_ALL_MARKETS = ""  # cancel-bar key meaning "every market"
_USER = CancelReason.USER
_IOC_REMAINDER = CancelReason.IOC_REMAINDER
_STP = CancelReason.STP
_EXPIRED = CancelReason.EXPIRED


class Engine:
    """All books, balances and order state of one engine shard."""

    def __init__(self, fee_recipient: str = FEE_ACCOUNT) -> None:
        self.fee_recipient = fee_recipient
        self.markets: dict[str, Market] = {}
        self.balances = Balances()
        self.open_orders: dict[str, dict[bytes, Order]] = {}  # trader -> hash -> order
        # Every accepted nonce (open or not) -> its order hash: refuses reuse and recognises
        # a re-sent order (same hash) as a duplicate.
        self.nonces: dict[str, dict[int, bytes]] = {}
        self.client_ids: dict[str, dict[str, bytes]] = {}  # open orders only
        self.cancel_bars: dict[str, dict[str, int]] = {}  # trader -> market ("" = all) -> bar
        self.frozen: set[str] = set()
        self.withdrawals: dict[str, tuple[str, str, int]] = {}  # id -> (trader, token, amount)
        # Min-heap of (expiry, hash, order) for resting orders that expire; stale entries
        # (order already closed) are skipped when popped.
        self.expiries: list[tuple[int, bytes, Order]] = []
        # (seq, fill_index) of every fill undone by RevertFill: a re-sent revert is refused.
        self.reverted_fills: set[tuple[int, int]] = set()
        # trader -> (time the ScheduleCancel fires, 0 = none; the last ScheduleCancel nonce,
        # kept after it fires or is cleared so an old signed message cannot be replayed).
        self.cancel_schedules: dict[str, tuple[int, int]] = {}
        # (trader, connection id) -> deadline of a cancel-on-disconnect timer.
        self.disconnect_timers: dict[tuple[str, str], int] = {}
        self.last_seq = 0
        self._dirty: dict[Balance, None] = {}
        self._handlers: dict[type[Any], Callable[[Any], list[Event]]] = {
            PlaceOrder: self._place,
            CancelOrder: self._cancel,
            CancelAll: self._cancel_all,
            Credit: self._credit,
            Debit: self._debit,
            ReserveWithdrawal: self._reserve_withdrawal,
            ReleaseWithdrawal: self._release_withdrawal,
            FreezeTrader: self._freeze,
            AddMarket: self._add_market,
            SetMarketState: self._set_market_state,
            SweepExpired: self._sweep,
            RevertFill: self._revert_fill,
            ScheduleCancel: self._schedule_cancel,
            ArmCancelOnDisconnect: self._arm_cancel_on_disconnect,
            CancelOnDisconnect: self._cancel_on_disconnect,
        }

    # ------------------------------------------------------------------ public interface

    def apply(self, command: Command) -> list[Event]:
        """Apply one command; return its events in order. Raises only on a broken invariant."""
        seq = command.seq
        if seq <= self.last_seq:
            raise InvariantError("sequence number must increase", seq=seq, last=self.last_seq)
        self.last_seq = seq
        return self._handlers[type(command)](command)

    def validate_invariants(self) -> None:
        validate_invariants(self)

    def state_hash(self) -> str:
        from backend.matching.snapshot import state_hash

        return state_hash(self)

    def to_snapshot(self) -> bytes:
        from backend.matching.snapshot import to_snapshot

        return to_snapshot(self)

    def freeze(self) -> EncodedState:
        from backend.matching.snapshot import freeze

        return freeze(self)

    @classmethod
    def from_snapshot(cls, data: bytes) -> Engine:
        from backend.matching.snapshot import from_snapshot

        return from_snapshot(data)

    def order(self, trader: str, order_hash: bytes) -> Order | None:
        orders = self.open_orders.get(trader)
        return None if orders is None else orders.get(order_hash)

    # ------------------------------------------------------------------ read view (EngineView)

    def market_ids(self) -> list[str]:
        return list(self.markets)

    def has_market(self, market_id: str) -> bool:
        return market_id in self.markets

    def market_state(self, market_id: str) -> str | None:
        market = self.markets.get(market_id)
        return None if market is None else str(market.state)

    def depth(self, market_id: str, side: Side, limit: int | None = None) -> list[tuple[int, int]]:
        market = self.markets.get(market_id)
        return [] if market is None else market.book.depth(side, limit)

    def level_total(self, market_id: str, side: Side, price: int) -> int:
        market = self.markets.get(market_id)
        if market is None:
            return 0
        level = market.book.side(side).get(-price if side is _BUY else price)
        return 0 if level is None else level.total

    def side_stats(self, market_id: str, side: Side) -> tuple[int, int, int]:
        """(price levels, open orders, best price or 0) of one side of a book."""
        market = self.markets.get(market_id)
        if market is None:
            return 0, 0, 0
        levels = market.book.side(side)
        best = market.book.best_bid() if side is _BUY else market.book.best_ask()
        return len(levels), sum(lv.live for lv in levels.values()), best or 0

    def order_level(self, trader: str, order_hash: bytes) -> tuple[Side, int] | None:
        order = self.order(trader, order_hash)
        return None if order is None else (order.side, order.price)

    def next_expiry(self) -> int | None:
        """The earliest time a sweep has work (an order expiry — the order may have closed
        since —, a ScheduleCancel or a cancel-on-disconnect deadline), or None."""
        times = [t for t, _ in self.cancel_schedules.values() if t]
        times.extend(self.disconnect_timers.values())
        if self.expiries:
            times.append(self.expiries[0][0])
        return min(times) if times else None

    def open_order_count(self) -> int:
        return sum(len(orders) for orders in self.open_orders.values())

    def balance(self, trader: str, token: str) -> tuple[int, int]:
        bal = self.balances.get(trader, token)
        return (0, 0) if bal is None else (bal.total, bal.locked)

    def balance_rows(self) -> list[tuple[str, str, int, int]]:
        return [(b.trader, b.token, b.total, b.locked) for b in self.balances]

    def token_totals(self) -> list[tuple[str, int]]:
        return sorted(self.balances.token_totals().items())

    def is_frozen(self, trader: str) -> bool:
        return trader in self.frozen

    # ------------------------------------------------------------------ orders

    def _reject(self, c: PlaceOrder, code: ErrorCode, message: str) -> list[Event]:
        return [OrderRejected(c.seq, c.order_hash, c.trader, c.market_id, code, message)]

    def _place(self, c: PlaceOrder) -> list[Event]:
        seq, trader, h, nonce = c.seq, c.trader, c.order_hash, c.nonce
        if not (0 <= nonce <= UINT64_MAX and 0 <= c.expiry <= UINT64_MAX):
            return self._reject(c, ErrorCode.INVALID_ORDER, "nonce and expiry must fit in uint64")
        used = self.nonces.get(trader)
        if used is not None:
            prev = used.get(nonce)
            if prev is not None:
                if prev == h:
                    return [OrderDuplicate(seq, h, trader)]
                return self._reject(c, ErrorCode.NONCE_REUSED, f"nonce {nonce} already used")
        market = self.markets.get(c.market_id)
        if market is None:
            return self._reject(c, ErrorCode.UNKNOWN_MARKET, f"unknown market {c.market_id}")
        if trader in self.frozen:
            return self._reject(c, ErrorCode.ACCOUNT_EXITING, "trader requested an exit")
        state = market.state
        if state is not _ONLINE and state is not _POST_ONLY_STATE:
            return self._reject(c, ErrorCode.MARKET_NOT_ACCEPTING, f"market is {state}")
        now, expiry = c.now, c.expiry
        if expiry and expiry <= now:
            return self._reject(c, ErrorCode.EXPIRED, f"expired at {expiry}")
        bars = self.cancel_bars.get(trader)
        if bars is not None and (
            nonce < bars.get(c.market_id, 0) or nonce < bars.get(_ALL_MARKETS, 0)
        ):
            return self._reject(c, ErrorCode.ORDER_CANCELLED, "nonce below the cancel-all bar")
        spec = market.spec
        price, amount = c.price, c.amount
        if price <= 0 or amount <= 0:
            return self._reject(c, ErrorCode.INVALID_ORDER, "price and amount must be positive")
        if price > UINT256_MAX or amount > UINT256_MAX:
            return self._reject(c, ErrorCode.INVALID_ORDER, "price and amount must fit in uint256")
        if price % spec.tick_size:
            return self._reject(c, ErrorCode.INVALID_TICK, f"price off tick {spec.tick_size}")
        if amount % spec.lot_size or amount < spec.min_amount:
            return self._reject(c, ErrorCode.INVALID_LOT, "amount off lot size or below minimum")
        side = c.side
        is_buy = side is _BUY
        max_notional = spec.max_notional
        # A sell reserves base: the quote notional (a big-integer division) only when needed.
        notional = amount * price // PRICE_SCALE if is_buy or max_notional else 0
        if (spec.max_amount and amount > spec.max_amount) or (
            max_notional and notional > max_notional
        ):
            return self._reject(c, ErrorCode.ORDER_TOO_LARGE, "order above the market's limits")
        if spec.price_band_bps:
            ref = market.reference_price()
            if ref is not None and outside_band(price, ref, spec.price_band_bps):
                return self._reject(c, ErrorCode.PRICE_OUT_OF_BAND, f"too far from {ref}")
        coid = c.client_order_id
        if coid is not None:
            ids = self.client_ids.get(trader)
            if ids is not None and coid in ids:
                return self._reject(c, ErrorCode.DUPLICATE_CLIENT_ORDER_ID, "clientOrderId in use")
        need = notional if is_buy else amount
        cells = self.balances.accounts.get(trader)
        bal = None if cells is None else cells.get(spec.quote_token if is_buy else spec.base_token)
        if bal is None or bal.total - bal.locked < need:
            return self._reject(c, ErrorCode.INSUFFICIENT_BALANCE, f"needs {need} available")
        # What rests keeps the ledger's and the market's own strings, not the command's: every
        # decoded command carries fresh copies (~90 bytes per resting order for the trader).
        trader = bal.trader
        tif = c.time_in_force
        book = market.book
        opposite = book.asks if is_buy else book.bids
        crosses = False
        if opposite:
            best = opposite.peekitem(0)[1].price
            crosses = best <= price if is_buy else best >= price
        if (
            crosses
            and (tif is _POST_ONLY or state is _POST_ONLY_STATE)
            and _takeable(opposite, is_buy, price, trader, now, 1)
        ):
            return self._reject(c, ErrorCode.POST_ONLY_WOULD_TAKE, "order would take")
        if tif is _FOK and (
            not crosses or _takeable(opposite, is_buy, price, trader, now, amount) < amount
        ):
            return self._reject(c, ErrorCode.FOK_NOT_FILLABLE, "cannot fill entirely now")

        # Accepted: from here on the order changes state.
        if used is None:
            used = self.nonces[trader] = {}
        used[nonce] = h
        bal.locked += need
        market_id = spec.market_id
        accepted = OrderAccepted(
            seq, h, trader, market_id, side, price, amount, tif, nonce, expiry, coid
        )
        if not crosses:
            # The common case, without the matching loop or the touched-cells set: one cell
            # changed, so one BalanceChanged.
            if tif is _IOC or tif is _FOK:  # FOK: unreachable after the check, never rest it
                bal.locked -= need
                return [
                    accepted,
                    OrderCancelled(seq, h, trader, market_id, _IOC_REMAINDER, amount),
                    BalanceChanged(seq, trader, bal.token, bal.total, bal.locked),
                ]
            order = Order(h, trader, market_id, side, price, amount, amount, tif, nonce, expiry,
                          coid)  # fmt: skip
            own = book.bids if is_buy else book.asks
            key = -price if is_buy else price
            level = own.get(key)
            if level is None:
                level = own[key] = PriceLevel(price)
            level.orders.append(order)
            level.total += amount
            level.live += 1
            orders = self.open_orders.get(trader)
            if orders is None:
                orders = self.open_orders[trader] = {}
            orders[h] = order
            if coid is not None:
                ids = self.client_ids.get(trader)
                if ids is None:
                    ids = self.client_ids[trader] = {}
                ids[coid] = h
            if expiry:
                heapq.heappush(self.expiries, (expiry, h, order))
            return [accepted, BalanceChanged(seq, trader, bal.token, bal.total, bal.locked)]
        dirty = self._dirty
        dirty[bal] = None
        events: list[Event] = [accepted]
        remaining = self._match(market, events, seq, now, h, trader, is_buy, price, amount)
        if remaining:
            if tif is _IOC or tif is _FOK:
                bal.locked -= remaining * price // PRICE_SCALE if is_buy else remaining
                events.append(OrderCancelled(seq, h, trader, market_id, _IOC_REMAINDER, remaining))
            else:
                self._rest(
                    Order(h, trader, market_id, side, price, amount, remaining, tif, nonce,
                          expiry, coid)
                )  # fmt: skip
        for cell in dirty:
            events.append(BalanceChanged(seq, cell.trader, cell.token, cell.total, cell.locked))
        dirty.clear()
        return events

    def _rest(self, order: Order) -> None:
        self.markets[order.market_id].book.add(order)
        orders = self.open_orders.get(order.trader)
        if orders is None:
            orders = self.open_orders[order.trader] = {}
        orders[order.order_hash] = order
        if order.client_order_id is not None:
            ids = self.client_ids.get(order.trader)
            if ids is None:
                ids = self.client_ids[order.trader] = {}
            ids[order.client_order_id] = order.order_hash
        if order.expiry:
            heapq.heappush(self.expiries, (order.expiry, order.order_hash, order))

    def _match(  # noqa: PLR0917 - hot path: positional arguments are the cheapest call
        self,
        market: Market,
        events: list[Event],
        seq: int,
        now: int,
        taker_hash: bytes,
        trader: str,
        is_buy: bool,
        limit: int,
        remaining: int,
    ) -> int:
        """Fill the incoming order against the opposite side; return what is left of it."""
        spec = market.spec
        base, quote = spec.base_token, spec.quote_token
        maker_bps, taker_bps = spec.maker_fee_bps, spec.taker_fee_bps
        levels = market.book.asks if is_buy else market.book.bids
        taker_side = Side.BUY if is_buy else Side.SELL
        cell = self.balances.cell
        dirty = self._dirty
        market_id = spec.market_id
        breaker = market.breaker if market.breaker.enabled else None
        tripped: tuple[int, int] | None = None
        t_base: Balance | None = None
        t_quote: Balance | None = None
        fee_base = fee_quote = 0
        fill_index = 0
        while remaining and levels:
            key, level = levels.peekitem(0)
            price = level.price
            if (price > limit) if is_buy else (price < limit):
                break
            queue = level.orders
            filled_here = False
            while remaining and queue:
                maker = queue[0]
                if not maker.open:
                    queue.popleft()
                    continue
                maker_trader = maker.trader
                if maker_trader == trader or (maker.expiry and maker.expiry <= now):
                    queue.popleft()
                    level.total -= maker.remaining
                    level.live -= 1
                    reason = CancelReason.STP if maker_trader == trader else CancelReason.EXPIRED
                    self._close(maker, reason, seq, events, spec.base_token, spec.quote_token)
                    continue
                maker_left = maker.remaining
                amount = remaining if remaining < maker_left else maker_left
                quote_amount = amount * price // PRICE_SCALE
                if t_base is None or t_quote is None:
                    t_base = cell(trader, base)
                    t_quote = cell(trader, quote)
                if is_buy:
                    taker_fee = amount * taker_bps // BPS
                    maker_fee = quote_amount * maker_bps // BPS
                    t_quote.total -= quote_amount
                    t_quote.locked -= amount * limit // PRICE_SCALE  # frees any price gain
                    t_base.total += amount - taker_fee
                    m_base = cell(maker_trader, base)
                    m_base.total -= amount
                    m_base.locked -= amount
                    m_quote = cell(maker_trader, quote)
                    m_quote.total += quote_amount - maker_fee
                    fee_base += taker_fee
                    fee_quote += maker_fee
                else:
                    taker_fee = quote_amount * taker_bps // BPS
                    maker_fee = amount * maker_bps // BPS
                    t_base.total -= amount
                    t_base.locked -= amount
                    t_quote.total += quote_amount - taker_fee
                    m_quote = cell(maker_trader, quote)
                    m_quote.total -= quote_amount
                    m_quote.locked -= quote_amount
                    m_base = cell(maker_trader, base)
                    m_base.total += amount - maker_fee
                    fee_quote += taker_fee
                    fee_base += maker_fee
                dirty[m_base] = None
                dirty[m_quote] = None
                remaining -= amount
                maker_left -= amount
                maker.remaining = maker_left
                level.total -= amount
                events.append(
                    Fill(seq, fill_index, market_id, maker.order_hash, maker_trader, taker_hash,
                         trader, taker_side, price, amount, quote_amount, maker_fee, taker_fee,
                         maker_left, remaining)
                )  # fmt: skip
                fill_index += 1
                filled_here = True
                if not maker_left:
                    queue.popleft()
                    level.live -= 1
                    self._forget(maker)
            if not level.live:
                del levels[key]
            if filled_here:
                market.last_price = price
                if breaker is not None and tripped is None:
                    tripped = breaker.record(now, price)
        if t_base is not None and t_quote is not None:
            dirty[t_base] = None
            dirty[t_quote] = None
            if fee_base:
                fee_cell = cell(self.fee_recipient, base)
                fee_cell.total += fee_base
                dirty[fee_cell] = None
            if fee_quote:
                fee_cell = cell(self.fee_recipient, quote)
                fee_cell.total += fee_quote
                dirty[fee_cell] = None
        if tripped is not None:
            self._trip(market, events, seq, tripped)
        return remaining

    def _trip(self, market: Market, events: list[Event], seq: int, span: tuple[int, int]) -> None:
        low, high = span
        spec = market.spec
        old = market.state
        market.state = MarketState.CANCEL_ONLY
        market.breaker.reset()
        reason = "circuit_breaker"
        events.append(MarketStateChanged(seq, spec.market_id, old, market.state, reason))
        events.append(
            RiskEvent(
                seq,
                spec.market_id,
                "circuit_breaker",
                f"price moved from {low} to {high} within {spec.breaker_window_s}s "
                f"(limit {spec.breaker_move_bps} bps)",
                low,
                high,
            )
        )

    def _forget(self, order: Order) -> None:
        """Drop a closed order from the per-trader indexes (the book is the caller's job)."""
        order.open = False
        trader = order.trader
        orders = self.open_orders[trader]
        del orders[order.order_hash]
        if not orders:
            del self.open_orders[trader]
        if order.client_order_id is not None:
            ids = self.client_ids[trader]
            del ids[order.client_order_id]
            if not ids:
                del self.client_ids[trader]

    def _close(  # noqa: PLR0917 - hot path (STP and expiry inside matching)
        self,
        order: Order,
        reason: CancelReason,
        seq: int,
        events: list[Event],
        base: str,
        quote: str,
    ) -> None:
        """Cancel an order already taken out of its level: release its funds, tell the world."""
        self._forget(order)
        bal = self.balances.cell(order.trader, quote if order.side is _BUY else base)
        bal.locked -= order.reserved()
        self._dirty[bal] = None
        events.append(
            OrderCancelled(
                seq, order.order_hash, order.trader, order.market_id, reason, order.remaining
            )
        )

    def _cancel_resting(
        self, order: Order, reason: CancelReason, seq: int, events: list[Event]
    ) -> None:
        market = self.markets[order.market_id]
        order.open = False  # before remove(): a level compaction must drop this order
        market.book.remove(order)
        self._close(order, reason, seq, events, market.spec.base_token, market.spec.quote_token)

    def _flush(self, seq: int, events: list[Event]) -> list[Event]:
        dirty = self._dirty
        for cell in dirty:
            events.append(BalanceChanged(seq, cell.trader, cell.token, cell.total, cell.locked))
        dirty.clear()
        return events

    def _cancel(self, c: CancelOrder) -> list[Event]:
        # `_cancel_resting` inlined: a cancel is a third of the workload.
        trader, h = c.trader, c.order_hash
        orders = self.open_orders.get(trader)
        order = None if orders is None else orders.get(h)
        if order is None:
            # Unknown, closed, or someone else's: the same answer, so nothing leaks.
            return [CancelRejected(c.seq, h, trader, ErrorCode.ORDER_NOT_FOUND)]
        assert orders is not None
        order.open = False  # before the level's compaction, which must drop this order
        market_id = order.market_id
        market = self.markets[market_id]
        book, spec = market.book, market.spec
        price, remaining = order.price, order.remaining
        if order.side is _BUY:
            levels, key, token = book.bids, -price, spec.quote_token
            reserved = remaining * price // PRICE_SCALE
        else:
            levels, key, token, reserved = book.asks, price, spec.base_token, remaining
        level = levels[key]
        level.total -= remaining
        live = level.live = level.live - 1
        if not live:
            del levels[key]
        elif len(level.orders) > 2 * live + 16:
            level.compact()
        del orders[h]
        if not orders:
            del self.open_orders[trader]
        coid = order.client_order_id
        if coid is not None:
            ids = self.client_ids[trader]
            del ids[coid]
            if not ids:
                del self.client_ids[trader]
        bal = self.balances.accounts[trader][token]
        bal.locked -= reserved
        seq = c.seq
        return [
            OrderCancelled(seq, h, trader, market_id, _USER, remaining),
            BalanceChanged(seq, trader, token, bal.total, bal.locked),
        ]

    def _cancel_all(self, c: CancelAll) -> list[Event]:
        market_id = c.market_id
        if market_id is not None and market_id not in self.markets:
            return [CommandRejected(c.seq, "CancelAll", ErrorCode.UNKNOWN_MARKET, market_id)]
        if not 0 <= c.nonce_below <= UINT64_MAX + 1:
            msg = "nonce_below must be within 0..2**64"
            return [CommandRejected(c.seq, "CancelAll", ErrorCode.INVALID_REQUEST, msg)]
        bars = self.cancel_bars.get(c.trader)
        if bars is None:
            bars = self.cancel_bars[c.trader] = {}
        key = _ALL_MARKETS if market_id is None else market_id
        bars[key] = max(bars.get(key, 0), c.nonce_below)  # the bar only rises
        events: list[Event] = []
        orders = self.open_orders.get(c.trader)
        doomed = sorted(
            (
                o
                for o in (orders.values() if orders else ())
                if o.nonce < c.nonce_below and (market_id is None or o.market_id == market_id)
            ),
            key=_cancel_order_key,
        )
        for order in doomed:
            self._cancel_resting(order, CancelReason.CANCEL_ALL, c.seq, events)
        events.append(CancelAllApplied(c.seq, c.trader, market_id, c.nonce_below, len(doomed)))
        return self._flush(c.seq, events)

    def _sweep(self, c: SweepExpired) -> list[Event]:
        heap = self.expiries
        events: list[Event] = []
        while heap and heap[0][0] <= c.now:
            order = heapq.heappop(heap)[2]
            if order.open:
                self._cancel_resting(order, CancelReason.EXPIRED, c.seq, events)
        # Then the switches that are due, each in (time, trader[, connection]) order.
        due = sorted(
            (t, trader) for trader, (t, _) in self.cancel_schedules.items() if 0 < t <= c.now
        )
        for _, trader in due:
            self.cancel_schedules[trader] = (0, self.cancel_schedules[trader][1])
            self._cancel_every_order(trader, CancelReason.SCHEDULED, c.seq, events)
        timers = sorted((d, k) for k, d in self.disconnect_timers.items() if d <= c.now)
        for _, key in timers:
            del self.disconnect_timers[key]
            self._cancel_every_order(key[0], CancelReason.DISCONNECT, c.seq, events)
        return self._flush(c.seq, events)

    def _cancel_every_order(
        self, trader: str, reason: CancelReason, seq: int, events: list[Event]
    ) -> None:
        orders = self.open_orders.get(trader)
        for order in sorted(orders.values(), key=_cancel_order_key) if orders else ():
            self._cancel_resting(order, reason, seq, events)

    def _schedule_cancel(self, c: ScheduleCancel) -> list[Event]:
        name = "ScheduleCancel"
        if not (0 <= c.time <= UINT64_MAX and 0 <= c.nonce <= UINT64_MAX):
            msg = "time and nonce must fit in uint64"
            return [CommandRejected(c.seq, name, ErrorCode.INVALID_REQUEST, msg)]
        prev = self.cancel_schedules.get(c.trader)
        if prev is not None and c.nonce <= prev[1]:
            msg = f"nonce {c.nonce} is not above the last ScheduleCancel nonce {prev[1]}"
            return [CommandRejected(c.seq, name, ErrorCode.NONCE_REUSED, msg)]
        if c.time and c.time <= c.now:
            msg = f"time {c.time} is not after the engine's time {c.now}"
            return [CommandRejected(c.seq, name, ErrorCode.SCHEDULE_TOO_SOON, msg)]
        self.cancel_schedules[c.trader] = (c.time, c.nonce)
        return [CancelScheduled(c.seq, c.trader, c.time, c.nonce)]

    def _arm_cancel_on_disconnect(self, c: ArmCancelOnDisconnect) -> list[Event]:
        name = "ArmCancelOnDisconnect"
        if not 0 <= c.deadline <= UINT64_MAX or (c.deadline and c.deadline <= c.now):
            msg = "deadline must be 0 or after the engine's time, within uint64"
            return [CommandRejected(c.seq, name, ErrorCode.INVALID_REQUEST, msg)]
        key = (c.trader, c.connection_id)
        if c.deadline:
            self.disconnect_timers[key] = c.deadline
        else:
            self.disconnect_timers.pop(key, None)
        return []

    def _cancel_on_disconnect(self, c: CancelOnDisconnect) -> list[Event]:
        if self.disconnect_timers.pop((c.trader, c.connection_id), None) is None:
            return []
        events: list[Event] = []
        self._cancel_every_order(c.trader, CancelReason.DISCONNECT, c.seq, events)
        return self._flush(c.seq, events)

    def _freeze(self, c: FreezeTrader) -> list[Event]:
        self.frozen.add(c.trader)
        events: list[Event] = []
        orders = self.open_orders.get(c.trader)
        for order in sorted(orders.values(), key=_cancel_order_key) if orders else ():
            self._cancel_resting(order, CancelReason.FROZEN, c.seq, events)
        events.append(TraderFrozen(c.seq, c.trader))
        return self._flush(c.seq, events)

    # ------------------------------------------------------------------ funds

    def _credit(self, c: Credit) -> list[Event]:
        if c.amount <= 0:
            return [CommandRejected(c.seq, "Credit", ErrorCode.INVALID_REQUEST, "amount <= 0")]
        if self.balances.token_total(c.token) + c.amount > UINT256_MAX:
            msg = "the token's total would exceed 2**256-1"
            return [CommandRejected(c.seq, "Credit", ErrorCode.INVALID_REQUEST, msg)]
        bal = self.balances.cell(c.trader, c.token)
        bal.total += c.amount
        return [BalanceChanged(c.seq, c.trader, c.token, bal.total, bal.locked)]

    def _debit(self, c: Debit) -> list[Event]:
        name = "Debit"
        if c.amount <= 0:
            return [CommandRejected(c.seq, name, ErrorCode.INVALID_REQUEST, "amount <= 0")]
        bal = self.balances.get(c.trader, c.token)
        reserved = 0
        if c.withdrawal_id is not None:
            w = self.withdrawals.get(c.withdrawal_id)
            if w is None or w[0] != c.trader or w[1] != c.token:
                msg = f"no reservation {c.withdrawal_id} for this trader and token"
                return [CommandRejected(c.seq, name, ErrorCode.INVALID_REQUEST, msg)]
            reserved = w[2]
        if bal is None or bal.total - bal.locked + reserved < c.amount:
            # The chain already paid out more than the engine can account for: refuse and let
            # reconciliation decide rather than drive a balance negative.
            return [CommandRejected(c.seq, name, ErrorCode.INSUFFICIENT_BALANCE, "debit > free")]
        events: list[Event] = []
        if c.withdrawal_id is not None:
            del self.withdrawals[c.withdrawal_id]
            bal.locked -= reserved
        bal.total -= c.amount
        events.append(BalanceChanged(c.seq, c.trader, c.token, bal.total, bal.locked))
        return events

    def _reserve_withdrawal(self, c: ReserveWithdrawal) -> list[Event]:
        name = "ReserveWithdrawal"
        if c.amount <= 0 or c.withdrawal_id in self.withdrawals:
            msg = "amount <= 0 or withdrawal id in use"
            return [CommandRejected(c.seq, name, ErrorCode.INVALID_REQUEST, msg)]
        bal = self.balances.get(c.trader, c.token)
        if bal is None or bal.total - bal.locked < c.amount:
            return [CommandRejected(c.seq, name, ErrorCode.INSUFFICIENT_BALANCE, "not available")]
        bal.locked += c.amount
        self.withdrawals[c.withdrawal_id] = (c.trader, c.token, c.amount)
        return [
            WithdrawalReserved(c.seq, c.withdrawal_id, c.trader, c.token, c.amount),
            BalanceChanged(c.seq, c.trader, c.token, bal.total, bal.locked),
        ]

    def _release_withdrawal(self, c: ReleaseWithdrawal) -> list[Event]:
        w = self.withdrawals.pop(c.withdrawal_id, None)
        if w is None:
            msg = f"no reservation {c.withdrawal_id}"
            return [CommandRejected(c.seq, "ReleaseWithdrawal", ErrorCode.INVALID_REQUEST, msg)]
        trader, token, amount = w
        bal = self.balances.cell(trader, token)
        bal.locked -= amount
        return [
            WithdrawalReleased(c.seq, c.withdrawal_id, trader, token, amount),
            BalanceChanged(c.seq, trader, token, bal.total, bal.locked),
        ]

    def _revert_fill(self, c: RevertFill) -> list[Event]:
        """Undo a fill the chain refused for good: each side gets back what it gave and gives
        back what it got, the fee account returns both fees. Orders the fill touched that are
        still open are offered again for the reverted amount (the signed order still allows
        it on chain) if the returned funds can back it, else cancelled; closed orders stay
        closed. If a trader no longer holds what the fill gave them (a later fill or a
        withdrawal spent it), the revert is refused and changes nothing: it waits until the
        fills that spent it are reverted too. Orders backed by the funds taken back are
        cancelled first (`FILL_REVERTED`)."""
        name = "RevertFill"
        key = (c.fill_seq, c.fill_index)
        if key in self.reverted_fills:
            msg = f"fill {c.fill_seq}/{c.fill_index} already reverted"
            return [CommandRejected(c.seq, name, ErrorCode.FILL_ALREADY_REVERTED, msg)]
        market = self.markets.get(c.market_id)
        if market is None:
            return [CommandRejected(c.seq, name, ErrorCode.UNKNOWN_MARKET, c.market_id)]
        amounts = (c.amount, c.quote_amount, c.maker_fee, c.taker_fee, c.price)
        if min(amounts) < 0 or not c.amount or max(amounts) > UINT256_MAX:
            return [CommandRejected(c.seq, name, ErrorCode.INVALID_REQUEST, "bad fill amounts")]
        spec = market.spec
        base, quote = spec.base_token, spec.quote_token
        if c.taker_side is _BUY:
            buyer, seller, buyer_fee, seller_fee = (
                c.taker_trader, c.maker_trader, c.taker_fee, c.maker_fee
            )  # fmt: skip
        else:
            buyer, seller, buyer_fee, seller_fee = (
                c.maker_trader, c.taker_trader, c.maker_fee, c.taker_fee
            )  # fmt: skip
        # The fill moved: buyer -quote +(amount - fee in base), seller -base +(quote - fee in
        # quote), fee account +both fees. Undo it, as one delta per (trader, token).
        deltas: dict[tuple[str, str], int] = {}
        for k, d in (
            ((buyer, quote), c.quote_amount),
            ((buyer, base), -(c.amount - buyer_fee)),
            ((seller, base), c.amount),
            ((seller, quote), -(c.quote_amount - seller_fee)),
            ((self.fee_recipient, base), -buyer_fee),
            ((self.fee_recipient, quote), -seller_fee),
        ):
            deltas[k] = deltas.get(k, 0) + d
        for (trader, token), d in deltas.items():
            if d >= 0:
                continue
            bal = self.balances.get(trader, token)
            total = 0 if bal is None else bal.total
            # What stays locked whatever orders are cancelled: withdrawal reservations.
            held = sum(a for t, tok, a in self.withdrawals.values() if t == trader and tok == token)
            if total + d < held:
                msg = f"{trader} no longer holds {-d} of {token} (spent since the fill)"
                return [CommandRejected(c.seq, name, ErrorCode.INSUFFICIENT_BALANCE, msg)]
        # Accepted: from here on the state changes.
        self.reverted_fills.add(key)
        events: list[Event] = []
        dirty = self._dirty
        cell = self.balances.cell
        for (trader, token), d in deltas.items():
            if d:
                bal = cell(trader, token)
                bal.total += d
                dirty[bal] = None
        for (trader, token), d in deltas.items():
            bal = cell(trader, token)
            if d < 0 and bal.locked > bal.total:
                self._cancel_backed_by(trader, token, bal, c.seq, events)
        maker_left = self._offer_again(c.maker_trader, c.maker_hash, c.amount, c.seq, events)
        taker_left = self._offer_again(c.taker_trader, c.taker_hash, c.amount, c.seq, events)
        events.insert(
            0,
            FillReverted(c.seq, c.fill_seq, c.fill_index, c.market_id, c.maker_hash,
                         c.maker_trader, c.taker_hash, c.taker_trader, c.amount, maker_left,
                         taker_left),
        )  # fmt: skip
        return self._flush(c.seq, events)

    def _cancel_backed_by(
        self, trader: str, token: str, bal: Balance, seq: int, events: list[Event]
    ) -> None:
        """Cancel the trader's orders that lock `token`, in (nonce, hash) order, until what is
        locked fits in what the trader still holds."""
        orders = self.open_orders.get(trader)
        for order in sorted(orders.values(), key=_cancel_order_key) if orders else ():
            if bal.locked <= bal.total:
                return
            spec = self.markets[order.market_id].spec
            if (spec.quote_token if order.side is _BUY else spec.base_token) == token:
                self._cancel_resting(order, CancelReason.FILL_REVERTED, seq, events)

    def _offer_again(
        self, trader: str, order_hash: bytes, amount: int, seq: int, events: list[Event]
    ) -> int | None:
        """Give a still-open order back the reverted amount; its remaining (None: closed)."""
        order = self.order(trader, order_hash)
        if order is None:
            return None
        spec = self.markets[order.market_id].spec
        is_buy = order.side is _BUY
        bal = self.balances.cell(trader, spec.quote_token if is_buy else spec.base_token)
        need = amount * order.price // PRICE_SCALE if is_buy else amount
        if order.remaining + amount > order.amount or bal.total - bal.locked < need:
            self._cancel_resting(order, CancelReason.FILL_REVERTED, seq, events)
            return None
        levels = self.markets[order.market_id].book.side(order.side)
        level = levels[-order.price if is_buy else order.price]
        order.remaining += amount
        level.total += amount
        bal.locked += need
        self._dirty[bal] = None
        return order.remaining

    # ------------------------------------------------------------------ markets

    def _add_market(self, c: AddMarket) -> list[Event]:
        spec = c.spec
        problem = spec_problem(spec)
        if problem is None and spec.market_id in self.markets:
            problem = f"market {spec.market_id} already listed"
        if problem is not None:
            return [CommandRejected(c.seq, "AddMarket", ErrorCode.INVALID_REQUEST, problem)]
        self.markets[spec.market_id] = Market(spec)
        return [MarketAdded(c.seq, spec.market_id)]

    def _set_market_state(self, c: SetMarketState) -> list[Event]:
        market = self.markets.get(c.market_id)
        if market is None:
            return [CommandRejected(c.seq, "SetMarketState", ErrorCode.UNKNOWN_MARKET, c.market_id)]
        old = market.state
        if old is c.state:
            return []
        market.state = c.state
        return [MarketStateChanged(c.seq, c.market_id, old, c.state, "operator")]


def _cancel_order_key(order: Order) -> tuple[int, bytes]:
    """Bulk cancels go in (nonce, hash) order, so their events do not depend on dict history
    (an engine restored from a snapshot rebuilds its indexes in a different order)."""
    return order.nonce, order.order_hash


def _takeable(  # noqa: PLR0917
    levels: SortedDict[int, PriceLevel],
    is_buy: bool,
    limit: int,
    trader: str,
    now: int,
    wanted: int,
) -> int:
    """How much of `wanted` the crossing liquidity could fill, ignoring own and expired orders
    (those would be removed, not filled). Read-only: FOK and POST_ONLY checks change nothing."""
    found = 0
    for level in levels.values():
        if (level.price > limit) if is_buy else (level.price < limit):
            break
        for o in level.orders:
            if o.open and o.trader != trader and not (o.expiry and o.expiry <= now):
                found += o.remaining
                if found >= wanted:
                    return found
    return found


PythonEngine = Engine
"""The reference model by its explicit name (`backend.matching.Engine` may be the native one)."""
