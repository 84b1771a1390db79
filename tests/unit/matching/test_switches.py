"""The dead-man's switch (`ScheduleCancel`) and cancel-on-disconnect timers, in both engines:
set, replaced, cleared, refused, fired by the sweep, fired on disconnect, and kept by a
snapshot. The differential test holds the engines equal on random streams; these pin what
the behaviour is."""

from __future__ import annotations

import pytest

from backend.domain.errors import ErrorCode
from backend.domain.types import Side, TimeInForce
from backend.matching import commands as c
from backend.matching.events import (
    CancelReason,
    CancelScheduled,
    CommandRejected,
    OrderCancelled,
)

from .engines import NATIVE, REFERENCE, EngineKind, EngineLike

pytestmark = pytest.mark.unit

KINDS = [REFERENCE, *([NATIVE] if NATIVE is not None else [])]
BASE, QUOTE = "0x" + "11" * 20, "0x" + "22" * 20
ALICE, BOB = "0x" + "a1" * 20, "0x" + "b0" * 20
MARKET = "B-Q"
NOW = 1_000_000


class Stream:
    def __init__(self, kind: EngineKind) -> None:
        self.kind = kind
        self.e: EngineLike = kind.new()
        self.seq = 0
        self.nonce = 0
        self.apply(c.AddMarket, spec=c.MarketSpec(MARKET, BASE, QUOTE, 10**12, 10**6, 10**6))
        for trader in (ALICE, BOB):
            self.apply(c.Credit, trader=trader, token=QUOTE, amount=10**30)

    def apply(self, cls: type[c.Command], now: int = NOW, **fields: object) -> list[object]:
        self.seq += 1
        events = self.e.apply(cls(seq=self.seq, now=now, **fields))  # type: ignore[call-arg]
        self.e.validate_invariants()
        return events

    def bid(self, trader: str, price: int = 10**18) -> bytes:
        self.nonce += 1
        h = self.nonce.to_bytes(32, "big")
        self.apply(c.PlaceOrder, order_hash=h, trader=trader, market_id=MARKET, side=Side.BUY,
                   price=price, amount=10**6, time_in_force=TimeInForce.GTC, nonce=self.nonce,
                   expiry=0)  # fmt: skip
        return h


def _cancelled(events: list[object]) -> list[tuple[bytes, str, CancelReason]]:
    return [(e.order_hash, e.trader, e.reason) for e in events if isinstance(e, OrderCancelled)]


@pytest.fixture(params=KINDS, ids=lambda k: k.name)
def s(request: pytest.FixtureRequest) -> Stream:
    kind: EngineKind = request.param
    return Stream(kind)


def test_a_scheduled_cancel_fires_at_its_time_and_cancels_every_order_of_the_trader(
    s: Stream,
) -> None:
    mine = [s.bid(ALICE), s.bid(ALICE, 2 * 10**18)]
    other = s.bid(BOB)
    [ack] = s.apply(c.ScheduleCancel, trader=ALICE, time=NOW + 10, nonce=1)
    assert ack == CancelScheduled(s.seq, ALICE, NOW + 10, 1)
    assert s.e.next_expiry() == NOW + 10  # type: ignore[attr-defined]
    assert _cancelled(s.apply(c.SweepExpired, now=NOW + 9)) == []
    fired = _cancelled(s.apply(c.SweepExpired, now=NOW + 10))
    assert sorted(fired) == sorted((h, ALICE, CancelReason.SCHEDULED) for h in mine)
    assert other not in [h for h, _, _ in fired]
    # Fired once: the schedule is cleared, new orders stay.
    assert s.e.next_expiry() is None  # type: ignore[attr-defined]
    s.bid(ALICE)
    assert _cancelled(s.apply(c.SweepExpired, now=NOW + 100)) == []


def test_a_later_schedule_replaces_the_earlier_and_time_zero_clears_it(s: Stream) -> None:
    h = s.bid(ALICE)
    s.apply(c.ScheduleCancel, trader=ALICE, time=NOW + 10, nonce=1)
    s.apply(c.ScheduleCancel, trader=ALICE, time=NOW + 50, nonce=2)  # renewed
    assert _cancelled(s.apply(c.SweepExpired, now=NOW + 20)) == []
    [cleared] = s.apply(c.ScheduleCancel, trader=ALICE, time=0, nonce=3)
    assert cleared == CancelScheduled(s.seq, ALICE, 0, 3)
    assert _cancelled(s.apply(c.SweepExpired, now=NOW + 60)) == []
    assert s.apply(c.ScheduleCancel, trader=ALICE, time=NOW + 70, nonce=4)
    assert _cancelled(s.apply(c.SweepExpired, now=NOW + 70)) == [(h, ALICE, CancelReason.SCHEDULED)]


@pytest.mark.parametrize(
    ("at", "nonce", "code"),
    [
        (NOW, 6, ErrorCode.SCHEDULE_TOO_SOON),  # not after now
        (NOW - 1, 6, ErrorCode.SCHEDULE_TOO_SOON),
        (NOW + 10, 5, ErrorCode.NONCE_REUSED),  # the same nonce again: a replay
        (NOW + 10, 4, ErrorCode.NONCE_REUSED),  # an older one
        (2**64, 6, ErrorCode.INVALID_REQUEST),
        (NOW + 10, -1, ErrorCode.INVALID_REQUEST),
    ],
)
def test_refused_schedules_change_nothing(s: Stream, at: int, nonce: int, code: ErrorCode) -> None:
    s.bid(ALICE)
    s.apply(c.ScheduleCancel, trader=ALICE, time=NOW + 500, nonce=5)
    before = s.e.state_hash()
    [refusal] = s.apply(c.ScheduleCancel, trader=ALICE, time=at, nonce=nonce)
    assert isinstance(refusal, CommandRejected)
    assert (refusal.command, refusal.code) == ("ScheduleCancel", code)
    assert s.e.state_hash() == before
    # A replayed clear (an old signed time 0) cannot disarm the switch either.
    assert isinstance(s.apply(c.ScheduleCancel, trader=ALICE, time=0, nonce=5)[0], CommandRejected)


def test_cancel_on_disconnect_fires_on_disconnect_once(s: Stream) -> None:
    h = s.bid(ALICE)
    other = s.bid(BOB)
    assert (
        s.apply(c.ArmCancelOnDisconnect, trader=ALICE, connection_id="w1", deadline=NOW + 15) == []
    )
    fired = _cancelled(s.apply(c.CancelOnDisconnect, trader=ALICE, connection_id="w1"))
    assert fired == [(h, ALICE, CancelReason.DISCONNECT)]
    # The timer is gone: a second disconnect, or its deadline, does nothing.
    s.bid(ALICE)
    assert s.apply(c.CancelOnDisconnect, trader=ALICE, connection_id="w1") == []
    assert _cancelled(s.apply(c.SweepExpired, now=NOW + 60)) == []
    assert s.e.order_level(BOB, other) is not None  # type: ignore[attr-defined]


def test_a_timer_not_renewed_fires_at_its_deadline(s: Stream) -> None:
    """The API worker that held the connection died: nobody sends CancelOnDisconnect."""
    h = s.bid(ALICE)
    s.apply(c.ArmCancelOnDisconnect, trader=ALICE, connection_id="w1", deadline=NOW + 15)
    s.apply(c.ArmCancelOnDisconnect, trader=ALICE, connection_id="w1", deadline=NOW + 20)
    assert s.e.next_expiry() == NOW + 20  # type: ignore[attr-defined]
    assert _cancelled(s.apply(c.SweepExpired, now=NOW + 19)) == []
    assert _cancelled(s.apply(c.SweepExpired, now=NOW + 20)) == [
        (h, ALICE, CancelReason.DISCONNECT)
    ]
    assert s.e.next_expiry() is None  # type: ignore[attr-defined]


def test_a_disarmed_timer_and_other_connections_do_not_fire(s: Stream) -> None:
    s.bid(ALICE)
    s.apply(c.ArmCancelOnDisconnect, trader=ALICE, connection_id="w1", deadline=NOW + 15)
    assert s.apply(c.ArmCancelOnDisconnect, trader=ALICE, connection_id="w1", deadline=0) == []
    assert s.apply(c.CancelOnDisconnect, trader=ALICE, connection_id="w1") == []
    assert s.apply(c.CancelOnDisconnect, trader=ALICE, connection_id="never") == []
    assert _cancelled(s.apply(c.SweepExpired, now=NOW + 60)) == []
    [refusal] = s.apply(c.ArmCancelOnDisconnect, trader=ALICE, connection_id="w2", deadline=NOW)
    assert isinstance(refusal, CommandRejected)
    assert refusal.code is ErrorCode.INVALID_REQUEST


def test_a_snapshot_keeps_the_switches_and_each_engine_loads_the_others(s: Stream) -> None:
    h = s.bid(ALICE)
    s.apply(c.ScheduleCancel, trader=ALICE, time=NOW + 10, nonce=7)
    s.apply(c.ArmCancelOnDisconnect, trader=BOB, connection_id="w9", deadline=NOW + 30)
    snapshot = s.e.to_snapshot()
    for kind in KINDS:
        restored = kind.from_snapshot(snapshot)
        assert restored.state_hash() == s.e.state_hash()
        fired = restored.apply(c.SweepExpired(s.seq + 1, NOW + 10))
        assert _cancelled(fired) == [(h, ALICE, CancelReason.SCHEDULED)]
        # The nonce survives too: the old message cannot be replayed after a restart.
        replay = restored.apply(c.ScheduleCancel(s.seq + 2, NOW + 10, ALICE, NOW + 99, 7))
        assert isinstance(replay[0], CommandRejected)


def test_the_state_hash_covers_the_switches(s: Stream) -> None:
    before = s.e.state_hash()
    s.apply(c.ScheduleCancel, trader=ALICE, time=NOW + 10, nonce=1)
    scheduled = s.e.state_hash()
    s.apply(c.ArmCancelOnDisconnect, trader=ALICE, connection_id="w1", deadline=NOW + 30)
    armed = s.e.state_hash()
    assert len({before, scheduled, armed}) == 3
