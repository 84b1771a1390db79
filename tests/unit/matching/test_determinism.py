"""Same commands → same state; snapshot + journal replay → the same engine (SPEC §5)."""

from __future__ import annotations

import random

import pytest

from backend.domain.types import MarketState, Side, TimeInForce
from backend.matching import commands as c
from backend.matching.codec import decode_command, encode_command
from backend.matching.engine import Engine

from .helpers import ALICE, BASE, BOB, CAROL, LOT, MARKET, QUOTE, P, order_hash, spec

pytestmark = pytest.mark.unit

TRADERS = (ALICE, BOB, CAROL)


def random_commands(n: int, seed: int) -> list[c.Command]:
    """A busy mixed workload touching every command type."""
    rng = random.Random(seed)
    out: list[c.Command] = [
        c.AddMarket(1, 0, spec(maker_fee_bps=7, taker_fee_bps=23, breaker_move_bps=3_000,
                               breaker_window_s=30, price_band_bps=5_000))
    ]  # fmt: skip
    for t in TRADERS:
        out.append(c.Credit(len(out) + 1, 0, t, BASE, 10**7))
        out.append(c.Credit(len(out) + 1, 0, t, QUOTE, 10**7))
    hashes: list[tuple[str, bytes]] = []
    now = 1_000
    for nonce in range(1, n):
        seq = len(out) + 1
        now += rng.randrange(3)
        trader = rng.choice(TRADERS)
        roll = rng.random()
        if roll < 0.6:
            side = rng.choice((Side.BUY, Side.SELL))
            price = P(rng.randrange(95, 106))
            amount = LOT * rng.randrange(1, 20)
            tif = rng.choice(list(TimeInForce))
            expiry = rng.choice((0, 0, now + rng.randrange(1, 20)))
            h = order_hash(trader, nonce, MARKET, side, price, amount)
            hashes.append((trader, h))
            out.append(
                c.PlaceOrder(seq, now, h, trader, MARKET, side, price, amount, tif, nonce,
                             expiry, rng.choice((None, f"c{nonce % 7}")))
            )  # fmt: skip
        elif roll < 0.8 and hashes:
            who, h = rng.choice(hashes)
            out.append(c.CancelOrder(seq, now, h, who))
        elif roll < 0.83:
            out.append(c.CancelAll(seq, now, trader, rng.choice((None, MARKET)), nonce - 5))
        elif roll < 0.86:
            out.append(c.SweepExpired(seq, now))
        elif roll < 0.89:
            out.append(c.SetMarketState(seq, now, MARKET, MarketState.ONLINE))
        elif roll < 0.92:
            out.append(c.ReserveWithdrawal(seq, now, trader, QUOTE, 10, f"w{seq}"))
        elif roll < 0.94:
            out.append(c.ReleaseWithdrawal(seq, now, f"w{seq - rng.randrange(1, 30)}"))
        elif roll < 0.96:
            out.append(c.Debit(seq, now, trader, BASE, 5))
        else:
            out.append(c.Credit(seq, now, trader, rng.choice((BASE, QUOTE)), 1_000))
    return out


def run(commands: list[c.Command], engine: Engine | None = None) -> tuple[Engine, list[object]]:
    engine = engine or Engine()
    events: list[object] = []
    for command in commands:
        events.extend(engine.apply(command))
    return engine, events


def test_replay_gives_same_events_and_state_hash() -> None:
    commands = random_commands(3_000, seed=1)
    a, events_a = run(commands)
    b, events_b = run(commands)
    a.validate_invariants()
    assert events_a == events_b
    assert a.state_hash() == b.state_hash()
    assert any(type(e).__name__ == "Fill" for e in events_a)


def test_journal_replay_through_codec_is_identical() -> None:
    commands = random_commands(2_000, seed=2)
    a, events_a = run(commands)
    b, events_b = run([decode_command(encode_command(cmd)) for cmd in commands])
    assert events_a == events_b
    assert a.state_hash() == b.state_hash()


@pytest.mark.parametrize("cut", [1, 500, 1_234, 1_999])
def test_snapshot_then_replay_matches_uninterrupted_run(cut: int) -> None:
    commands = random_commands(2_000, seed=3)
    full, full_events = run(commands)
    head, head_events = run(commands[:cut])
    restored = Engine.from_snapshot(head.to_snapshot())
    assert restored.state_hash() == head.state_hash()
    assert restored.to_snapshot() == head.to_snapshot()
    restored.validate_invariants()
    tail, tail_events = run(commands[cut:], restored)
    assert head_events + tail_events == full_events
    assert tail.state_hash() == full.state_hash()
    assert tail.last_seq == full.last_seq


def test_different_history_gives_different_hash() -> None:
    a, _ = run(random_commands(300, seed=4))
    b, _ = run(random_commands(300, seed=5))
    assert a.state_hash() != b.state_hash()


def test_funds_conserved() -> None:
    """Sum of every balance (fee account included) == credits − debits, per token."""
    commands = random_commands(3_000, seed=6)
    engine = Engine()
    expected: dict[str, int] = {}
    for cmd in commands:
        events = engine.apply(cmd)
        refused = any(type(e).__name__ == "CommandRejected" for e in events)
        if isinstance(cmd, c.Credit) and not refused:
            expected[cmd.token] = expected.get(cmd.token, 0) + cmd.amount
        if isinstance(cmd, c.Debit) and not refused:
            expected[cmd.token] -= cmd.amount
    engine.validate_invariants()
    assert engine.balances.token_totals() == expected


def test_resting_orders_share_the_ledgers_strings_live_and_after_a_snapshot() -> None:
    """Every decoded command brings its own copies of the trader and market strings; a resting
    order must keep the engine's own (one per trader), or 1M resting orders cost ~90 MB more."""
    engine = Engine()
    engine.apply(c.AddMarket(1, 0, spec()))
    engine.apply(c.Credit(2, 0, "".join(ALICE), BASE, 10 * LOT))
    for i in range(3):  # fresh str objects each time, equal values
        trader, market = "".join(list(ALICE)), "".join(list(MARKET))
        h = bytes([i + 1]) * 32
        engine.apply(c.PlaceOrder(3 + i, 0, h, trader, market, Side.SELL, P(100 + i), LOT,
                                  TimeInForce.GTC, i + 1, 0))  # fmt: skip

    def check(e: Engine) -> None:
        [cell] = [b for b in e.balances if b.token == BASE]
        orders = list(e.open_orders[ALICE].values())
        assert len(orders) == 3
        for o in orders:
            assert o.trader is cell.trader
            assert o.market_id is e.markets[MARKET].spec.market_id
            assert e.nonces[ALICE][o.nonce] is o.order_hash

    check(engine)
    check(Engine.from_snapshot(engine.to_snapshot()))
