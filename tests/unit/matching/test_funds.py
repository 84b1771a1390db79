"""Deposits, withdrawals and their reservations."""

from __future__ import annotations

import pytest

from backend.domain.errors import ErrorCode
from backend.matching import commands as c
from backend.matching.events import (
    BalanceChanged,
    CommandRejected,
    OrderRejected,
    WithdrawalReleased,
    WithdrawalReserved,
)

from .helpers import ALICE, BASE, BUY, LOT, QUOTE, Harness, P, only

pytestmark = pytest.mark.unit


def test_credit_adds_to_total() -> None:
    h = Harness()
    changed = only(h.do(c.Credit, trader=ALICE, token=QUOTE, amount=500), BalanceChanged)
    assert (changed.total, changed.locked) == (500, 0)
    h.do(c.Credit, trader=ALICE, token=QUOTE, amount=250)
    assert h.bal(ALICE, QUOTE) == (750, 0)


def test_credit_of_zero_rejected() -> None:
    h = Harness()
    rejected = only(h.do(c.Credit, trader=ALICE, token=QUOTE, amount=0), CommandRejected)
    assert rejected.code is ErrorCode.INVALID_REQUEST


def test_reserved_withdrawal_locks_then_debit_consumes() -> None:
    h = Harness()
    h.do(c.Credit, trader=ALICE, token=QUOTE, amount=1_000)
    events = h.do(c.ReserveWithdrawal, trader=ALICE, token=QUOTE, amount=600, withdrawal_id="w1")
    assert only(events, WithdrawalReserved).amount == 600
    assert h.bal(ALICE, QUOTE) == (1_000, 600)
    # the reserved funds cannot back an order
    refused = only(h.place(ALICE, BUY, P(100), 5 * LOT), OrderRejected)
    assert refused.code is ErrorCode.INSUFFICIENT_BALANCE
    h.do(c.Debit, trader=ALICE, token=QUOTE, amount=600, withdrawal_id="w1")
    assert h.bal(ALICE, QUOTE) == (400, 0)
    assert h.engine.withdrawals == {}


def test_released_withdrawal_frees_funds() -> None:
    h = Harness()
    h.do(c.Credit, trader=ALICE, token=QUOTE, amount=1_000)
    h.do(c.ReserveWithdrawal, trader=ALICE, token=QUOTE, amount=600, withdrawal_id="w1")
    released = only(h.do(c.ReleaseWithdrawal, withdrawal_id="w1"), WithdrawalReleased)
    assert released.amount == 600
    assert h.bal(ALICE, QUOTE) == (1_000, 0)
    again = only(h.do(c.ReleaseWithdrawal, withdrawal_id="w1"), CommandRejected)
    assert again.code is ErrorCode.INVALID_REQUEST


def test_withdrawal_above_available_rejected() -> None:
    h = Harness()
    h.do(c.Credit, trader=ALICE, token=QUOTE, amount=1_000)
    h.place(ALICE, BUY, P(100), 5 * LOT)  # locks 500
    events = h.do(c.ReserveWithdrawal, trader=ALICE, token=QUOTE, amount=501, withdrawal_id="w1")
    assert only(events, CommandRejected).code is ErrorCode.INSUFFICIENT_BALANCE
    assert h.bal(ALICE, QUOTE) == (1_000, 500)


def test_duplicate_withdrawal_id_rejected() -> None:
    h = Harness()
    h.do(c.Credit, trader=ALICE, token=QUOTE, amount=1_000)
    h.do(c.ReserveWithdrawal, trader=ALICE, token=QUOTE, amount=1, withdrawal_id="w1")
    events = h.do(c.ReserveWithdrawal, trader=ALICE, token=QUOTE, amount=1, withdrawal_id="w1")
    assert only(events, CommandRejected).code is ErrorCode.INVALID_REQUEST


def test_exit_debit_without_reservation_limited_to_available() -> None:
    h = Harness()
    h.do(c.Credit, trader=ALICE, token=BASE, amount=1_000)
    h.do(c.Debit, trader=ALICE, token=BASE, amount=400)
    assert h.bal(ALICE, BASE) == (600, 0)
    refused = only(h.do(c.Debit, trader=ALICE, token=BASE, amount=601), CommandRejected)
    assert refused.code is ErrorCode.INSUFFICIENT_BALANCE
    assert h.bal(ALICE, BASE) == (600, 0)


def test_debit_naming_someone_elses_reservation_rejected() -> None:
    h = Harness()
    h.do(c.Credit, trader=ALICE, token=BASE, amount=1_000)
    h.do(c.ReserveWithdrawal, trader=ALICE, token=BASE, amount=10, withdrawal_id="w1")
    events = h.do(c.Debit, trader=ALICE, token=QUOTE, amount=10, withdrawal_id="w1")
    assert only(events, CommandRejected).code is ErrorCode.INVALID_REQUEST
    assert h.bal(ALICE, BASE) == (1_000, 10)
