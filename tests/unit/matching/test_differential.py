"""The production engine against the Python reference model on random command streams.

Both engines get every command; after every step their events, their `state_hash()` and their
invariants must agree. The streams mix several markets (with size, notional, price-band and
circuit-breaker limits, every market state), traders sharing tokens, every command type and
time-in-force, expiry and sweeps, self-trade, cancel-all bars, freezes, funds moving in and out,
withdrawal reservations, reverted fills, scheduled cancels and cancel-on-disconnect timers,
and amounts at the edges: 0, one off the lot or the
tick, the market minimum, and near 2**256 (where sums overflow a uint256: both engines must
refuse alike). Snapshots are exchanged mid-stream (each engine continues from the other's
snapshot) and, at the end, the stream is written to a real journal and replayed into fresh
engines of both kinds.

`make test` runs a bounded number of examples; `HYBRIDEX_TEST_SOAK=1` (used by `make soak`) runs
many more and longer streams.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from backend.domain.types import PRICE_SCALE, UINT256_MAX, MarketState, Side, TimeInForce
from backend.engine.journal import Journal, read_journal
from backend.engine.records import decode_record, encode_record
from backend.matching import codec
from backend.matching import commands as c
from backend.matching.engine import FEE_ACCOUNT
from backend.matching.events import Fill
from backend.matching.view import FrozenState

from .engines import EngineKind, EngineLike, normalise_all, pair

SOAK = os.environ.get("HYBRIDEX_TEST_SOAK") == "1"

# Under soak the run is long by design: no per-test timeout.
pytestmark = [pytest.mark.unit, *([pytest.mark.timeout(0)] if SOAK else [])]

TOKENS = ("0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20)
TRADERS = ("0x" + "a1" * 20, "0x" + "b0" * 20, "0x" + "ca" * 20, FEE_ACCOUNT)
MARKETS = ("M-A", "M-B", "M-C")
WITHDRAWALS = ("w1", "w2", "w3")
# (tick, lot): tick * lot must be a multiple of 10**18, one pair each way round, one coarse.
GRIDS = ((10**16, 100), (10**18, 1), (5 * 10**17, 2))
MID_TICKS = 100

near_max = st.integers(0, 2**64).map(lambda k: UINT256_MAX - k)
small = st.integers(1, 60_000)
amounts = st.one_of(small, small, small, st.just(0), near_max, st.integers(1, 2**70))


class Differential(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.kind_a, self.kind_b = pair()
        self.a: EngineLike = self.kind_a.new()
        self.b: EngineLike = self.kind_b.new()
        self.seq = 0
        self.now = 1_000_000
        self.nonce = 0
        self.log: list[c.Command] = []
        self.placed: list[c.PlaceOrder] = []
        self.fills: list[c.RevertFill] = []
        self.specs: dict[str, c.MarketSpec] = {}
        self.frozen: set[str] = set()
        self.frozen_states: list[tuple[FrozenState, bytes, str]] = []

    # ------------------------------------------------------------------ driving both engines

    def apply(self, command: c.Command) -> list[Any]:
        self.log.append(command)
        out_a = self.a.apply(command)
        out_b = self.b.apply(command)
        got_a, got_b = normalise_all(out_a), normalise_all(out_b)
        assert got_a == got_b, (command, self.kind_a.name, got_a, self.kind_b.name, got_b)
        # The outbox bytes too: the production encoder (native when built) against the
        # reference encoder.
        wire_a, wire_b = bytearray(), bytearray()
        codec.encode_events(out_a, wire_a)
        codec.encode_events_python(out_b, wire_b)
        assert wire_a == wire_b, command
        for e in out_b:
            if isinstance(e, Fill):
                self.fills.append(_revert_of(e, self.seq + 1, self.now))
        return out_b

    def next(self, cls: type[Any], **fields: Any) -> list[Any]:
        self.seq += 1
        return self.apply(cls(seq=self.seq, now=self.now, **fields))

    # ------------------------------------------------------------------ markets

    @initialize(
        grid=st.sampled_from(GRIDS),
        band_bps=st.sampled_from((0, 300, 1_000)),
        breaker=st.sampled_from(((0, 0), (200, 30), (500, 5))),
        fees=st.tuples(st.sampled_from((0, 30, 100)), st.sampled_from((0, 10))),
    )
    def start(
        self, grid: tuple[int, int], band_bps: int, breaker: tuple[int, int],
        fees: tuple[int, int],
    ) -> None:  # fmt: skip
        """One live market and funded traders, so that most streams trade."""
        tick, lot = grid
        spec = c.MarketSpec(
            MARKETS[0], TOKENS[0], TOKENS[1], tick, lot, lot, maker_fee_bps=fees[1],
            taker_fee_bps=fees[0], price_band_bps=band_bps, breaker_move_bps=breaker[0],
            breaker_window_s=breaker[1],
        )  # fmt: skip
        self.next(c.AddMarket, spec=spec)
        self.specs[spec.market_id] = spec
        for trader in TRADERS[:3]:
            for token in TOKENS:
                self.next(c.Credit, trader=trader, token=token, amount=10**6)

    @rule(
        market_id=st.sampled_from(MARKETS),
        grid=st.sampled_from(GRIDS),
        tokens=st.permutations(TOKENS),
        same_tokens=st.sampled_from((False,) * 9 + (True,)),
        min_lots=st.sampled_from((0, 1, 1, 3)),
        fees=st.tuples(st.sampled_from((0, 5, 30, 100, 101)), st.sampled_from((0, 10, 100))),
        max_lots=st.sampled_from((0, 0, 40)),
        max_notional=st.sampled_from((0, 0, 2_000, 10**40)),
        band_bps=st.sampled_from((0, 0, 300, 1_000)),
        breaker=st.sampled_from(((0, 0), (0, 0), (200, 30), (500, 5), (100, 0))),
        state=st.sampled_from((MarketState.ONLINE,) * 5 + tuple(MarketState)),
        broken=st.sampled_from((None,) * 12 + ("tick", "lot", "grid", "negative")),
    )
    def add_market(
        self,
        market_id: str,
        grid: tuple[int, int],
        tokens: list[str],
        same_tokens: bool,
        min_lots: int,
        fees: tuple[int, int],
        max_lots: int,
        max_notional: int,
        band_bps: int,
        breaker: tuple[int, int],
        state: MarketState,
        broken: str | None,
    ) -> None:
        tick, lot = grid
        if broken == "tick":
            tick = 0
        elif broken == "lot":
            lot = -lot
        elif broken == "grid":
            tick += 1
        spec = c.MarketSpec(
            market_id=market_id,
            base_token=tokens[0],
            quote_token=tokens[0] if same_tokens else tokens[1],
            tick_size=tick,
            lot_size=lot,
            min_amount=-1 if broken == "negative" else min_lots * max(lot, 1),
            maker_fee_bps=fees[1],
            taker_fee_bps=fees[0],
            state=state,
            max_amount=max_lots * max(lot, 1),
            max_notional=max_notional,
            price_band_bps=band_bps,
            breaker_move_bps=breaker[0],
            breaker_window_s=breaker[1],
        )
        events = self.next(c.AddMarket, spec=spec)
        if events and type(events[0]).__name__ == "MarketAdded":
            self.specs[market_id] = spec

    @rule(market_id=st.sampled_from((*MARKETS, "M-none")), state=st.sampled_from(MarketState))
    def set_market_state(self, market_id: str, state: MarketState) -> None:
        self.next(c.SetMarketState, market_id=market_id, state=state)

    # ------------------------------------------------------------------ funds

    @rule(trader=st.sampled_from(TRADERS), token=st.sampled_from(TOKENS), amount=amounts)
    def credit(self, trader: str, token: str, amount: int) -> None:
        self.next(c.Credit, trader=trader, token=token, amount=amount)

    @rule(
        trader=st.sampled_from(TRADERS),
        token=st.sampled_from(TOKENS),
        amount=amounts,
        withdrawal_id=st.sampled_from((None, None, *WITHDRAWALS)),
    )
    def debit(self, trader: str, token: str, amount: int, withdrawal_id: str | None) -> None:
        self.next(c.Debit, trader=trader, token=token, amount=amount, withdrawal_id=withdrawal_id)

    @rule(
        trader=st.sampled_from(TRADERS),
        token=st.sampled_from(TOKENS),
        amount=amounts,
        withdrawal_id=st.sampled_from(WITHDRAWALS),
    )
    def reserve_withdrawal(self, trader: str, token: str, amount: int, withdrawal_id: str) -> None:
        self.next(
            c.ReserveWithdrawal, trader=trader, token=token, amount=amount,
            withdrawal_id=withdrawal_id,
        )  # fmt: skip

    @rule(withdrawal_id=st.sampled_from(WITHDRAWALS))
    def release_withdrawal(self, withdrawal_id: str) -> None:
        self.next(c.ReleaseWithdrawal, withdrawal_id=withdrawal_id)

    @rule(trader=st.sampled_from(TRADERS[2:]))
    def freeze(self, trader: str) -> None:
        """Only the third trader (or the fee account) ever freezes: the first two keep
        trading."""
        self.frozen.add(trader)
        self.next(c.FreezeTrader, trader=trader)

    # ------------------------------------------------------------------ orders

    @rule(
        data=st.data(),
        trader=st.sampled_from(TRADERS[:3]),
        side=st.sampled_from(Side),
        ticks=st.integers(-8, 8),
        price_edge=st.sampled_from(("on",) * 12 + ("plus1", "minus1", "zero", "max")),
        lots=st.integers(1, 45),
        amount_edge=st.sampled_from(("on",) * 12 + ("plus1", "minus1", "zero", "min", "max")),
        tif=st.sampled_from(TimeInForce),
        ttl=st.sampled_from((0, 0, 0, 1, 5, 30)),
        coid=st.sampled_from((None, None, None, "c1", "c2")),
        reuse_nonce=st.sampled_from((False,) * 9 + (True,)),
    )
    def place(
        self,
        data: st.DataObject,
        trader: str,
        side: Side,
        ticks: int,
        price_edge: str,
        lots: int,
        amount_edge: str,
        tif: TimeInForce,
        ttl: int,
        coid: str | None,
        reuse_nonce: bool,
    ) -> None:
        market_id = data.draw(st.sampled_from([*sorted(self.specs) * 8, "M-none"]))
        spec = self.specs.get(market_id)
        tick, lot, minimum = (10**16, 100, 100) if spec is None else (
            spec.tick_size, spec.lot_size, spec.min_amount
        )  # fmt: skip
        price = (MID_TICKS + ticks) * tick
        price = {
            "on": price,
            "plus1": price + 1,
            "minus1": price - 1,
            "zero": 0,
            "max": UINT256_MAX // tick * tick,
        }[price_edge]
        amount = {
            "on": lots * lot,
            "plus1": lots * lot + 1,
            "minus1": minimum - 1,
            "zero": 0,
            "min": minimum,
            "max": UINT256_MAX // lot * lot,
        }[amount_edge]
        if not reuse_nonce or not self.nonce:
            self.nonce += 1
        expiry = self.now + ttl if ttl else 0
        digest = repr((trader, self.nonce, market_id, side, price, amount, tif, expiry, coid))
        h = hashlib.blake2b(digest.encode(), digest_size=32).digest()
        self.seq += 1
        cmd = c.PlaceOrder(
            self.seq, self.now, h, trader, market_id, side, price, amount, tif, self.nonce,
            expiry, coid,
        )  # fmt: skip
        self.placed.append(cmd)
        self.apply(cmd)

    @precondition(lambda self: self.specs)
    @rule(
        data=st.data(),
        trader=st.sampled_from(TRADERS[:3]),
        side=st.sampled_from(Side),
        ticks=st.integers(-3, 3),
        lots=st.integers(1, 45),
        tif=st.sampled_from(TimeInForce),
        ttl=st.sampled_from((0, 0, 0, 1, 5)),
    )
    def place_near_mid(
        self,
        data: st.DataObject,
        trader: str,
        side: Side,
        ticks: int,
        lots: int,
        tif: TimeInForce,
        ttl: int,
    ) -> None:
        """The common case, so that books fill and orders cross: on tick and lot, near the
        mid, in a listed market."""
        self.place(data, trader, side, ticks, "on", lots, "on", tif, ttl, None, False)

    @precondition(lambda self: self.specs)
    @rule(
        data=st.data(),
        traders=st.permutations(TRADERS[:3]),
        maker_side=st.sampled_from(Side),
        maker_lots=st.integers(1, 30),
        taker_lots=st.integers(1, 60),
        through=st.integers(0, 2),
        tif=st.sampled_from(TimeInForce),
    )
    def cross(
        self,
        data: st.DataObject,
        traders: list[str],
        maker_side: Side,
        maker_lots: int,
        taker_lots: int,
        through: int,
        tif: TimeInForce,
    ) -> None:
        """A resting order, then another trader's order through it: fills, fees, partial
        fills, FOK and POST_ONLY against real liquidity, the band and the breaker."""
        taker_side = Side.SELL if maker_side is Side.BUY else Side.BUY
        ahead = through if taker_side is Side.BUY else -through
        self.place(data, traders[0], maker_side, 0, "on", maker_lots, "on", TimeInForce.GTC,
                   0, None, False)  # fmt: skip
        self.place(data, traders[1], taker_side, ahead, "on", taker_lots, "on", tif, 0, None,
                   False)  # fmt: skip

    @precondition(lambda self: self.placed)
    @rule(data=st.data())
    def resend(self, data: st.DataObject) -> None:
        """The same signed order again: a duplicate if it was accepted, judged anew if not."""
        old = data.draw(st.sampled_from(self.placed))
        self.seq += 1
        self.apply(replace(old, seq=self.seq, now=self.now))

    @precondition(lambda self: self.placed)
    @rule(data=st.data(), owner=st.sampled_from((True, True, True, False)))
    def cancel(self, data: st.DataObject, owner: bool) -> None:
        target = data.draw(st.sampled_from(self.placed))
        trader = target.trader if owner else TRADERS[0]
        self.next(c.CancelOrder, order_hash=target.order_hash, trader=trader)

    @rule(
        trader=st.sampled_from(TRADERS[:3]),
        market_id=st.sampled_from((None, *MARKETS, "M-none")),
        back=st.sampled_from((-1, 0, 3, 10, 30)),
    )
    def cancel_all(self, trader: str, market_id: str | None, back: int) -> None:
        below = max(0, self.nonce - back)
        self.next(c.CancelAll, trader=trader, market_id=market_id, nonce_below=below)

    @rule(dt=st.sampled_from((1, 1, 2, 5, 31, 3_600)))
    def tick_clock(self, dt: int) -> None:
        self.now += dt

    @rule()
    def sweep(self) -> None:
        self.next(c.SweepExpired)

    @rule(
        trader=st.sampled_from(TRADERS),
        delay=st.sampled_from((0, -1, 1, 2, 5, 40, None)),
        nonce_step=st.sampled_from((1, 1, 1, 0, -1)),
        edge=st.sampled_from((None, None, None, 2**64, -1)),
    )
    def schedule_cancel(
        self, trader: str, delay: int | None, nonce_step: int, edge: int | None
    ) -> None:
        """Dead-man's switch: set (a time ahead), cleared (None: 0), in the past or now
        (refused), with a fresh, a repeated or an older nonce, or out of uint64."""
        self.nonce += nonce_step
        at = 0 if delay is None else self.now + delay
        self.next(c.ScheduleCancel, trader=trader, time=at if edge is None else edge,
                  nonce=self.nonce)  # fmt: skip

    @rule(
        trader=st.sampled_from(TRADERS),
        connection_id=st.sampled_from(("c1", "c2", "")),
        ttl=st.sampled_from((0, 1, 3, 15, -1)),
    )
    def arm_cancel_on_disconnect(self, trader: str, connection_id: str, ttl: int) -> None:
        deadline = 0 if ttl == 0 else self.now + ttl
        self.next(c.ArmCancelOnDisconnect, trader=trader, connection_id=connection_id,
                  deadline=deadline)  # fmt: skip

    @rule(trader=st.sampled_from(TRADERS), connection_id=st.sampled_from(("c1", "c2", "")))
    def cancel_on_disconnect(self, trader: str, connection_id: str) -> None:
        self.next(c.CancelOnDisconnect, trader=trader, connection_id=connection_id)

    @precondition(lambda self: any(p.expiry > self.now for p in self.placed))
    @rule(sweep=st.booleans())
    def to_next_expiry(self, sweep: bool) -> None:
        """The clock lands exactly on an order's expiry: expired is `expiry <= now`."""
        self.now = min(p.expiry for p in self.placed if p.expiry > self.now)
        if sweep:
            self.next(c.SweepExpired)

    @precondition(lambda self: self.fills)
    @rule(
        data=st.data(),
        tamper=st.sampled_from((None,) * 6 + ("amount", "negative", "market", "twice")),
    )
    def revert_fill(self, data: st.DataObject, tamper: str | None) -> None:
        fill = data.draw(st.sampled_from(self.fills))
        self.seq += 1
        cmd = replace(fill, seq=self.seq, now=self.now)
        if tamper == "amount":
            cmd = replace(cmd, amount=cmd.amount + 1)
        elif tamper == "negative":
            cmd = replace(cmd, maker_fee=-1)
        elif tamper == "market":
            cmd = replace(cmd, market_id="M-none")
        self.apply(cmd)
        if tamper == "twice":
            self.seq += 1
            self.apply(replace(cmd, seq=self.seq))

    # ------------------------------------------------------------------ snapshots

    @rule()
    def swap_snapshots(self) -> None:
        """Each engine continues from the other's snapshot: both must load it and keep
        agreeing from there on."""
        snap_a, snap_b = self.a.to_snapshot(), self.b.to_snapshot()
        restored_a = self.kind_a.from_snapshot(snap_b)
        restored_b = self.kind_b.from_snapshot(snap_a)
        assert restored_a.state_hash() == self.b.state_hash()
        assert restored_b.state_hash() == self.a.state_hash()
        assert restored_a.last_seq == restored_b.last_seq == self.seq
        self.a, self.b = restored_a, restored_b

    @rule()
    def freeze_state(self) -> None:
        """Each engine's frozen state, encoded later (after more commands), must still be the
        snapshot and hash of the state when it was frozen."""
        self.frozen_states = [
            (engine.freeze(), engine.to_snapshot(), engine.state_hash())
            for engine in (self.a, self.b)
        ]

    # ------------------------------------------------------------------ after every step

    @invariant()
    def same_state(self) -> None:
        self.a.validate_invariants()
        self.b.validate_invariants()
        assert self.a.state_hash() == self.b.state_hash()
        assert self.a.last_seq == self.b.last_seq == self.seq
        for frozen, body, digest in self.frozen_states:
            assert frozen.snapshot_and_hash() == (body, digest)
            assert frozen.last_seq == json.loads(body)["last_seq"]

    def teardown(self) -> None:
        """The stream, written to a real journal by the production record encoder and by the
        reference one, replays in fresh engines of both kinds to the live state."""
        if not self.log:
            return
        expected = self.b.state_hash()
        for writer in (encode_record, _reference_record):
            with tempfile.TemporaryDirectory(prefix="hybridex-diff-") as tmp:
                journal = Journal(Path(tmp))
                journal.append_group([writer(cmd) for cmd in self.log])
                journal.close()
                for kind in (self.kind_a, self.kind_b):
                    assert _replay(kind, Path(tmp)) == expected, (kind.name, writer.__name__)


# The reference (Python) command encoder, where the production one is native.
_encode_reference: Callable[[c.Command], bytes] = getattr(
    codec, "encode_command_python", codec.encode_command
)


def _reference_record(command: c.Command) -> bytes:
    """`records.encode_record` (no intake) with the reference encoder."""
    body = _encode_reference(command)
    return struct.pack("<I", len(body)) + body


def _replay(kind: EngineKind, directory: Path) -> str:
    engine = kind.new()
    for seq, payload in read_journal(directory, 1):
        command, _ = decode_record(payload)
        assert command.seq == seq
        engine.apply(command)
    engine.validate_invariants()
    return engine.state_hash()


def _revert_of(f: Fill, seq: int, now: int) -> c.RevertFill:
    return c.RevertFill(
        seq, now, f.seq, f.fill_index, f.market_id, f.maker_hash, f.maker_trader, f.taker_hash,
        f.taker_trader, f.taker_side, f.price, f.amount, f.quote_amount, f.maker_fee, f.taker_fee,
    )  # fmt: skip


assert PRICE_SCALE == 10**18  # GRIDS assume it

Differential.TestCase.settings = settings(
    max_examples=1_500 if SOAK else 150,
    stateful_step_count=100 if SOAK else 50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_engines_agree = Differential.TestCase
