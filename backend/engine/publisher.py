"""Events → feed messages (SPEC §9 channels), numbered per channel with no gaps.

Runs inside the engine loop right after each `apply`, because book deltas are read from the
live book (the new total of every level the command touched). Channel seqs are assigned here,
synchronously, so `book()` can tell which feed seq a snapshot matches; the store writes lag.

Idempotent across restarts: the store remembers the last engine seq it published; replaying
commands up to it only updates the level mirror and counters are not advanced.

Payloads (camelCase like the REST API, amounts as decimal strings):
- `book:{m}`: `{engineSeq, side: "buy"|"sell", price, amount}` — amount is the level's new
  total ("0": the level is gone).
- `trades:{m}`: `{engineSeq, fillIndex, price, amount, quoteAmount, takerSide, makerHash,
  takerHash}`.
- `orders:{addr}`: `{engineSeq, event: accepted|fill|cancelled|rejected, orderHash, marketId,
  status, remaining?, reason?, code?, price?, amount?}`.
- `balances:{addr}`: `{engineSeq, token, total, locked, available}`.
"""

from __future__ import annotations

from typing import Any

from backend.domain.types import Side
from backend.engine.feeds import FeedMessage
from backend.matching.commands import CancelOrder, Command, PlaceOrder
from backend.matching.events import (
    BalanceChanged,
    CancelReason,
    Event,
    Fill,
    FillReverted,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
)
from backend.matching.view import EngineView

Level = tuple[Side, int]


def _hex(h: bytes) -> str:
    return "0x" + h.hex()


def _side(side: Side) -> str:
    return "buy" if side is Side.BUY else "sell"


def _level_total(engine: EngineView, market_id: str, side: Side, price: int) -> int:
    return engine.level_total(market_id, side, price)


def _all_levels(engine: EngineView, market_id: str) -> dict[Level, int]:
    out: dict[Level, int] = {(Side.BUY, p): t for p, t in engine.depth(market_id, Side.BUY)}
    out.update({(Side.SELL, p): t for p, t in engine.depth(market_id, Side.SELL)})
    return out


class FeedPublisher:
    def __init__(
        self, engine: EngineView, published_seq: int, channel_seqs: dict[str, int]
    ) -> None:
        self.published_seq = published_seq
        self.channel_seqs = dict(channel_seqs)
        self.levels: dict[str, dict[Level, int]] = {}
        self.reset(engine)

    def reset(self, engine: EngineView) -> None:
        """Mirror the engine's level totals (after loading a snapshot)."""
        self.levels = {m: _all_levels(engine, m) for m in engine.market_ids()}

    def feed_seq(self, channel: str) -> int:
        return self.channel_seqs.get(channel, 0)

    def before(self, engine: EngineView, command: Command) -> Level | None:
        """Where a cancelled order rests, looked up before the engine forgets it."""
        if type(command) is CancelOrder:
            return engine.order_level(command.trader, command.order_hash)
        return None

    def on_command(
        self, engine: EngineView, command: Command, events: list[Event], cancel_level: Level | None
    ) -> list[FeedMessage]:
        seq = command.seq
        publish = seq > self.published_seq
        out: list[FeedMessage] = []
        msg = self._message if publish else _drop

        touched: dict[str, set[Level]] = {}
        full: set[str] = set()
        own_hash = command.order_hash if type(command) is PlaceOrder else None
        for e in events:
            t = type(e)
            if t is BalanceChanged:
                assert isinstance(e, BalanceChanged)
                if publish:
                    msg(out, f"balances:{e.trader}", {
                        "engineSeq": seq, "token": e.token, "total": str(e.total),
                        "locked": str(e.locked), "available": str(e.total - e.locked),
                    })  # fmt: skip
            elif t is Fill:
                assert isinstance(e, Fill)
                maker_side = Side.SELL if e.taker_side is Side.BUY else Side.BUY
                touched.setdefault(e.market_id, set()).add((maker_side, e.price))
                if publish:
                    msg(out, f"trades:{e.market_id}", {
                        "engineSeq": seq, "fillIndex": e.fill_index, "price": str(e.price),
                        "amount": str(e.amount), "quoteAmount": str(e.quote_amount),
                        "takerSide": _side(e.taker_side), "makerHash": "0x" + e.maker_hash.hex(),
                        "takerHash": "0x" + e.taker_hash.hex(),
                    })  # fmt: skip
                    for h, trader, remaining in (
                        (e.maker_hash, e.maker_trader, e.maker_remaining),
                        (e.taker_hash, e.taker_trader, e.taker_remaining),
                    ):
                        msg(out, f"orders:{trader}", {
                            "engineSeq": seq, "event": "fill", "orderHash": "0x" + h.hex(),
                            "marketId": e.market_id,
                            "status": "partially_filled" if remaining else "filled",
                            "remaining": str(remaining), "price": str(e.price),
                            "amount": str(e.amount),
                        })  # fmt: skip
            elif t is OrderAccepted:
                assert isinstance(e, OrderAccepted)
                touched.setdefault(e.market_id, set()).add((e.side, e.price))
                if publish:
                    msg(out, f"orders:{e.trader}", {
                        "engineSeq": seq, "event": "accepted", "orderHash": _hex(e.order_hash),
                        "marketId": e.market_id, "status": "open", "side": _side(e.side),
                        "price": str(e.price), "amount": str(e.amount), "remaining": str(e.amount),
                    })  # fmt: skip
            elif t is OrderCancelled:
                assert isinstance(e, OrderCancelled)
                if e.order_hash != own_hash:  # a taker's own remainder never rested
                    if cancel_level is not None and type(command) is CancelOrder:
                        touched.setdefault(e.market_id, set()).add(cancel_level)
                    else:
                        full.add(e.market_id)
                if publish:
                    expired = e.reason is CancelReason.EXPIRED
                    msg(out, f"orders:{e.trader}", {
                        "engineSeq": seq, "event": "cancelled", "orderHash": _hex(e.order_hash),
                        "marketId": e.market_id, "status": "expired" if expired else "cancelled",
                        "reason": str(e.reason), "remaining": str(e.remaining),
                    })  # fmt: skip
            elif t is FillReverted:
                assert isinstance(e, FillReverted)
                full.add(e.market_id)  # orders offered again: their levels grew
                if publish:
                    for h, trader, left in (
                        (e.maker_hash, e.maker_trader, e.maker_remaining),
                        (e.taker_hash, e.taker_trader, e.taker_remaining),
                    ):
                        msg(out, f"orders:{trader}", {
                            "engineSeq": seq, "event": "fill_reverted", "orderHash": _hex(h),
                            "marketId": e.market_id, "fillSeq": e.fill_seq,
                            "fillIndex": e.fill_index, "amount": str(e.amount),
                            "remaining": None if left is None else str(left),
                        })  # fmt: skip
            elif t is OrderRejected:
                assert isinstance(e, OrderRejected)
                if publish:
                    msg(out, f"orders:{e.trader}", {
                        "engineSeq": seq, "event": "rejected", "orderHash": _hex(e.order_hash),
                        "marketId": e.market_id, "status": "rejected", "code": e.code.name,
                    })  # fmt: skip
        for market_id in full:
            touched.pop(market_id, None)
            mirror = self.levels.setdefault(market_id, {})
            now = _all_levels(engine, market_id)
            for level in sorted(set(mirror) | set(now)):
                total = now.get(level, 0)
                self._level(out, msg, market_id, mirror, level=level, total=total, seq=seq)
        for market_id, levels in touched.items():
            mirror = self.levels.setdefault(market_id, {})
            for level in sorted(levels):
                total = _level_total(engine, market_id, level[0], level[1])
                self._level(out, msg, market_id, mirror, level=level, total=total, seq=seq)
        if publish:
            self.published_seq = seq
        return out

    @staticmethod
    def _level(
        out: list[FeedMessage],
        msg: Any,
        market_id: str,
        mirror: dict[Level, int],
        *,
        level: Level,
        total: int,
        seq: int,
    ) -> None:
        if mirror.get(level, 0) == total:
            return
        if total:
            mirror[level] = total
        else:
            mirror.pop(level, None)
        msg(out, f"book:{market_id}", {
            "engineSeq": seq, "side": _side(level[0]), "price": str(level[1]), "amount": str(total),
        })  # fmt: skip

    def _message(self, out: list[FeedMessage], channel: str, data: dict[str, Any]) -> None:
        seq = self.channel_seqs.get(channel, 0) + 1
        self.channel_seqs[channel] = seq
        out.append(FeedMessage(channel, seq, data))


def _drop(out: list[FeedMessage], channel: str, data: dict[str, Any]) -> None:
    """Replay of a command already published: nothing to send."""
