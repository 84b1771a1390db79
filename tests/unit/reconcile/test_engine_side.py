"""The live engine's ledger against the database's rows, and the BALANCES answer's encoding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from web3 import Web3

from backend.engine.protocol import decode_balances, encode_balances
from backend.reconcile.engine_side import LiveLedger, compare_engine

pytestmark = pytest.mark.unit

A = Web3.to_checksum_address("0x" + "ab" * 20)
B = Web3.to_checksum_address("0x" + "cd" * 20)
USDC = Web3.to_checksum_address("0x" + "12" * 20)
WETH = Web3.to_checksum_address("0x" + "34" * 20)
MAX = 2**256 - 1


def _live(seq: int, *rows: tuple[str, str, int, int]) -> LiveLedger:
    # The engine port answers lower-case addresses; the database holds checksummed ones.
    return LiveLedger(seq, [(t.lower(), k.lower(), total, locked) for t, k, total, locked in rows])


def test_equal_rows_are_counted_and_nothing_is_reported() -> None:
    live = _live(10, (A, USDC, 500, 20), (B, WETH, MAX, MAX))
    check = compare_engine(live, {(A, USDC): (500, 20, 9), (B, WETH): (MAX, MAX, 10)}, 10)
    assert (check.compared, check.changed_since, check.skipped) == (2, 0, None)
    assert check.discrepancies == []


def test_a_row_changed_behind_the_engine_is_an_engine_mismatch_with_both_sides() -> None:
    check = compare_engine(_live(10, (A, USDC, 500, 20)), {(A, USDC): (507, 20, 4)}, 12)
    (d,) = check.discrepancies
    assert (d.kind, d.trader, d.token) == ("engine_mismatch", A, USDC)
    assert d.amounts == {
        "engine": 500,
        "engineLocked": 20,
        "database": 507,
        "databaseLocked": 20,
        "difference": 7,
    }
    assert d.detail == {"engineSeq": 10, "updatedSeq": 4}


def test_locked_alone_differing_is_a_mismatch() -> None:
    check = compare_engine(_live(10, (A, USDC, 500, 20)), {(A, USDC): (500, 0, 4)}, 10)
    assert [d.kind for d in check.discrepancies] == ["engine_mismatch"]


def test_a_row_the_persister_wrote_after_the_engine_read_waits_for_the_next_run() -> None:
    check = compare_engine(_live(10, (A, USDC, 500, 0)), {(A, USDC): (900, 0, 11)}, 11)
    assert (check.compared, check.changed_since, check.discrepancies) == (0, 1, [])


def test_a_balance_only_one_side_holds_is_reported_unless_it_is_zero() -> None:
    live = _live(10, (A, USDC, 0, 0), (B, USDC, 3, 0))
    check = compare_engine(live, {(A, WETH): (8, 0, 2)}, 10)
    found = {(d.trader, d.token): d.amounts for d in check.discrepancies}
    assert found[(A, WETH)]["engine"] == 0
    assert found[(A, WETH)]["database"] == 8
    assert found[(B, USDC)]["engine"] == 3
    assert found[(B, USDC)]["database"] == 0
    assert (A, USDC) not in found  # zero in the engine, absent in the database: equal
    assert check.compared == 1


def test_a_database_behind_the_engine_read_is_not_compared() -> None:
    check = compare_engine(_live(10, (A, USDC, 500, 0)), {(A, USDC): (1, 0, 3)}, 9)
    assert check.discrepancies == []
    assert check.skipped is not None
    assert "behind" in check.skipped


addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
amounts = st.integers(min_value=0, max_value=MAX)


@given(
    seq=st.integers(min_value=0, max_value=2**64 - 1),
    rows=st.lists(st.tuples(addresses, st.sampled_from([USDC, WETH]), amounts, amounts)),
)
def test_balances_answer_round_trips_every_amount(
    seq: int, rows: list[tuple[str, str, int, int]]
) -> None:
    got_seq, got = decode_balances(encode_balances(seq, rows))
    assert got_seq == seq
    assert got == [(t, k.lower(), total, locked) for t, k, total, locked in rows]


@given(cut=st.integers(min_value=1, max_value=200))
def test_a_truncated_balances_answer_is_refused(cut: int) -> None:
    body = encode_balances(7, [(A, USDC, MAX, 1), (B, WETH, 2**70, 0)])
    if cut >= len(body):
        return
    with pytest.raises(ValueError, match="malformed BALANCES answer"):
        decode_balances(body[: len(body) - cut])
