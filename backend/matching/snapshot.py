"""Snapshot and state digest: one canonical encoding of everything that shapes future behaviour.

Canonical JSON (stdlib: exact big integers, no pickle): markets sorted by id, orders in book
priority order, balances and nonces sorted. `state_hash` digests the same bytes, so "restored
engine has the same hash" means "restored engine behaves the same".
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from dataclasses import astuple, dataclass, fields
from typing import Any

from backend.domain.types import MarketState, Side, TimeInForce
from backend.matching.commands import MarketSpec
from backend.matching.engine import Engine
from backend.matching.market import Market
from backend.matching.order import Order

SNAPSHOT_VERSION = 1
_SPEC_FIELDS = [f.name for f in fields(MarketSpec)]


def _order_row(o: Order) -> list[Any]:
    return [
        o.order_hash.hex(),
        o.trader,
        int(o.side),
        o.price,
        o.amount,
        o.remaining,
        int(o.time_in_force),
        o.nonce,
        o.expiry,
        o.client_order_id,
    ]


def _market_row(m: Market) -> list[Any]:
    spec = [str(v) if isinstance(v, MarketState) else v for v in astuple(m.spec)]
    return [
        spec,
        str(m.state),
        m.last_price,
        [list(x) for x in m.breaker.highs],
        [list(x) for x in m.breaker.lows],
        [_order_row(o) for o in m.book.orders(Side.BUY)],
        [_order_row(o) for o in m.book.orders(Side.SELL)],
    ]


def _canonical(engine: Engine, last_seq: int) -> bytes:
    state = {
        "version": SNAPSHOT_VERSION,
        "last_seq": last_seq,
        "fee_recipient": engine.fee_recipient,
        "markets": [_market_row(engine.markets[k]) for k in sorted(engine.markets)],
        "balances": [[b.trader, b.token, b.total, b.locked] for b in engine.balances],
        "nonces": [
            [t, [[n, h.hex()] for n, h in sorted(engine.nonces[t].items())]]
            for t in sorted(engine.nonces)
        ],
        "cancel_bars": [
            [t, sorted(engine.cancel_bars[t].items())] for t in sorted(engine.cancel_bars)
        ],
        "frozen": sorted(engine.frozen),
        "withdrawals": [[k, *engine.withdrawals[k]] for k in sorted(engine.withdrawals)],
    }
    if engine.reverted_fills:  # only when present: states without reverts keep their hash
        state["reverted_fills"] = [list(k) for k in sorted(engine.reverted_fills)]
    # Likewise the switches (added after version 1: older snapshots load without them).
    if engine.cancel_schedules:
        state["cancel_schedules"] = [
            [t, *engine.cancel_schedules[t]] for t in sorted(engine.cancel_schedules)
        ]
    if engine.disconnect_timers:
        state["disconnect_timers"] = [
            [*k, engine.disconnect_timers[k]] for k in sorted(engine.disconnect_timers)
        ]
    return json.dumps(state, separators=(",", ":"), ensure_ascii=True).encode()


def to_snapshot(engine: Engine) -> bytes:
    return _canonical(engine, engine.last_seq)


def state_hash(engine: Engine) -> str:
    """Digest of the state, not of the journal position: `last_seq` is left out, so a command
    that changes nothing (a rejection) leaves the hash as it was."""
    return hashlib.blake2b(_canonical(engine, 0), digest_size=32).hexdigest()


@dataclass(frozen=True, slots=True)
class EncodedState:
    """The reference model's `freeze()`: encoded at once, its state being Python objects that
    the engine's thread goes on changing (the native core copies its state instead)."""

    last_seq: int
    body: bytes
    digest: str

    def snapshot_and_hash(self) -> tuple[bytes, str]:
        return self.body, self.digest


def freeze(engine: Engine) -> EncodedState:
    return EncodedState(engine.last_seq, to_snapshot(engine), state_hash(engine))


def from_snapshot(data: bytes) -> Engine:
    state = json.loads(data)
    if state["version"] != SNAPSHOT_VERSION:
        raise ValueError(f"unsupported snapshot version {state['version']}")
    engine = Engine(fee_recipient=state["fee_recipient"])
    engine.last_seq = state["last_seq"]
    # One object per trader string and per order hash, as a live engine holds them (the JSON
    # gives each occurrence its own copy).
    strings: dict[str, str] = {}
    hashes: dict[bytes, bytes] = {}
    for spec_row, market_state, last_price, highs, lows, bids, asks in state["markets"]:
        spec_fields = dict(zip(_SPEC_FIELDS, spec_row, strict=True))
        spec_fields["state"] = MarketState(spec_fields["state"])
        spec = MarketSpec(**spec_fields)
        market = Market(spec)
        market.state = MarketState(market_state)
        market.last_price = last_price
        market.breaker.highs = deque((t, p) for t, p in highs)
        market.breaker.lows = deque((t, p) for t, p in lows)
        engine.markets[spec.market_id] = market
        for row in (*bids, *asks):
            h, trader, side, price, amount, remaining, tif, nonce, expiry, coid = row
            order_hash = bytes.fromhex(h)
            hashes[order_hash] = order_hash
            engine._rest(
                Order(order_hash, strings.setdefault(trader, trader), spec.market_id, Side(side),
                      price, amount, remaining, TimeInForce(tif), nonce, expiry, coid)
            )  # fmt: skip
    for trader, token, total, locked in state["balances"]:
        cell = engine.balances.cell(strings.setdefault(trader, trader), token)
        cell.total, cell.locked = total, locked
    for trader, rows in state["nonces"]:
        used = engine.nonces[strings.setdefault(trader, trader)] = {}
        for n, h in rows:
            order_hash = bytes.fromhex(h)
            used[n] = hashes.get(order_hash, order_hash)
    for trader, rows in state["cancel_bars"]:
        engine.cancel_bars[trader] = dict(rows)
    engine.frozen = set(state["frozen"])
    for wid, trader, token, amount in state["withdrawals"]:
        engine.withdrawals[wid] = (trader, token, amount)
    engine.reverted_fills = {(s, i) for s, i in state.get("reverted_fills", ())}
    for trader, at, nonce in state.get("cancel_schedules", ()):
        engine.cancel_schedules[strings.setdefault(trader, trader)] = (at, nonce)
    for trader, connection_id, deadline in state.get("disconnect_timers", ()):
        engine.disconnect_timers[strings.setdefault(trader, trader), connection_id] = deadline
    return engine
