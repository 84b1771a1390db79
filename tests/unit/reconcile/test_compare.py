"""The comparison on plain data: what is in flight is explained, everything else reported."""

from __future__ import annotations

import pytest

from backend.domain.types import FillStatus
from backend.reconcile.compare import compare, pairs_to_read
from backend.reconcile.reads import BatchCheck, ChainEffect, LedgerView, UnsettledFill

pytestmark = pytest.mark.unit

A, B, FEES = "0x" + "a" * 40, "0x" + "b" * 40, "0x" + "f" * 40
WETH, USDC = "0x" + "1" * 40, "0x" + "2" * 40
MAX = 2**256 - 1


def _view(**kw: object) -> LedgerView:
    view = LedgerView(block=100, persister_seq=50, fee_recipient=FEES, tokens={WETH, USDC})
    for k, v in kw.items():
        setattr(view, k, v)
    return view


def _fill(fill_id: int, status: FillStatus = FillStatus.SUBMITTED) -> UnsettledFill:
    # A buys 2 WETH from B for 6000 USDC; fees 6 USDC (B) and 0.002 WETH (A).
    deltas = [(A, WETH, 2 * 10**18 - 2 * 10**15), (A, USDC, -6000), (B, WETH, -2 * 10**18),
              (B, USDC, 5994), (FEES, WETH, 2 * 10**15), (FEES, USDC, 6)]  # fmt: skip
    return UnsettledFill(fill_id, 40, status, None if status != FillStatus.FAILED else "X", deltas)


def _effect(kind: str, delta: int, outcome: str | None = None) -> ChainEffect:
    return ChainEffect(7, kind, A, USDC, delta, 99, outcome)


def _chain(view: LedgerView, **balances: int) -> dict[tuple[str, str], int]:
    chain = dict.fromkeys(pairs_to_read(view), 0)
    names = {"a_weth": (A, WETH), "a_usdc": (A, USDC), "b_weth": (B, WETH), "b_usdc": (B, USDC)}
    chain.update({names[k]: v for k, v in balances.items()})
    return chain


def test_unsettled_fill_and_deposit_in_flight_explain_the_difference() -> None:
    ledger = {(A, USDC): 4000, (A, WETH): 2 * 10**18 - 2 * 10**15, (B, WETH): 0,
              (B, USDC): 5994, (FEES, WETH): 2 * 10**15, (FEES, USDC): 6}  # fmt: skip
    view = _view(ledger=ledger, unsettled=[_fill(1)], in_flight=[_effect("credit", 77)])
    # On chain: A's deposits of 10,000 and 77 USDC (the 77 not yet credited), B's 2 WETH.
    chain = _chain(view, a_usdc=10_000 + 77, b_weth=2 * 10**18)
    report = compare(view, chain, {USDC: sum(v for (_, k), v in chain.items() if k == USDC),
                                   WETH: 2 * 10**18})  # fmt: skip
    assert report.discrepancies == []
    assert report.in_flight_fills == 1
    assert report.in_flight_chain_effects == 1


def test_a_changed_ledger_row_is_a_balance_mismatch_with_both_sides() -> None:
    view = _view(ledger={(A, USDC): 1001})
    report = compare(view, _chain(view, a_usdc=1000), {USDC: 1000, WETH: 0})
    (d,) = report.discrepancies
    assert (d.kind, d.trader, d.token) == ("balance_mismatch", A, USDC)
    assert d.amounts == {"ledger": 1001, "chain": 1000, "expected": 1000, "difference": 1}
    assert d.as_json(100)["difference"] == "1"
    assert d.as_json(100)["block"] == 100


def test_a_credit_without_a_deposit_is_reported() -> None:
    view = _view(ledger={(A, USDC): MAX})
    (d,) = compare(view, _chain(view), {USDC: 0, WETH: 0}).discrepancies
    assert d.amounts["difference"] == MAX  # exact at 2^256 - 1: integers, never floats


def test_a_refused_withdrawal_debit_is_reported_once_not_as_a_mismatch_too() -> None:
    # The chain paid out 300 (a Withdrawn event) but the engine refused the debit.
    view = _view(ledger={(A, USDC): 1000}, refused=[_effect("debit", -300, "INSUFFICIENT_BALANCE")])
    (d,) = compare(view, _chain(view, a_usdc=700), {USDC: 700, WETH: 0}).discrepancies
    assert d.kind == "refused_chain_effect"
    assert d.amounts == {"ledger": 0, "chain": -300}
    assert d.detail["outcome"] == "INSUFFICIENT_BALANCE"


def test_a_failed_fill_is_reported_per_side_and_explains_the_balances() -> None:
    ledger = {(A, USDC): 4000, (A, WETH): 2 * 10**18 - 2 * 10**15, (B, USDC): 5994,
              (FEES, WETH): 2 * 10**15, (FEES, USDC): 6}  # fmt: skip
    view = _view(ledger=ledger, failed=[_fill(9, FillStatus.FAILED)])
    chain = _chain(view, a_usdc=10_000, b_weth=2 * 10**18)
    report = compare(view, chain, {USDC: 10_000, WETH: 2 * 10**18})
    kinds = {d.kind for d in report.discrepancies}
    assert kinds == {"failed_fill"}
    assert len(report.discrepancies) == 6
    assert not report.clean


def test_tokens_held_beyond_balances_are_unattributed_and_below_them_a_deficit() -> None:
    view = _view(ledger={(A, USDC): 1000, (A, WETH): 5})
    report = compare(view, _chain(view, a_usdc=1000, a_weth=5), {USDC: 1500, WETH: 4})
    assert report.tokens[USDC] == {"held": 1500, "internal": 1000, "unattributed": 500}
    (d,) = report.discrepancies
    assert (d.kind, d.token, d.amounts) == ("token_deficit", WETH, {"held": 4, "internal": 5})


def test_a_settled_batch_that_is_not_the_signed_one_is_a_batch_mismatch() -> None:
    same = BatchCheck(1, 90, 2, b"\x01" * 32, 2, b"\x01" * 32)
    other = BatchCheck(2, 95, 2, b"\x02" * 32, 2, b"\x03" * 32)
    unknown = BatchCheck(3, 96, 1, b"\x04" * 32, None, None)
    view = _view(batches=[same, other, unknown])
    found = compare(view, _chain(view), {USDC: 0, WETH: 0}).discrepancies
    assert [(d.kind, d.detail["batchId"]) for d in found] == [
        ("batch_mismatch", 2),
        ("batch_mismatch", 3),
    ]
    assert found[1].as_json(100)["recordedFills"] == "-1"
    assert found[0].detail["recordedFillsHash"] == "0x" + "03" * 32


def _unanswered(kind: str, delta: int) -> ChainEffect:
    return ChainEffect(7, kind, A, USDC, delta, 99, None, unanswered=True)


def test_an_unanswered_effect_the_ledger_already_holds_is_no_discrepancy() -> None:
    """The engine applied an on-chain withdrawal's debit and the persister stored it before
    the indexer recorded the engine's answer: in flight, and held, both explain the ledger."""
    for ledger_usdc in (700, 1000):  # the debit of 300 stored, or not yet applied
        view = _view(ledger={(A, USDC): ledger_usdc}, in_flight=[_unanswered("debit", -300)])
        report = compare(view, _chain(view, a_usdc=700), {USDC: 700, WETH: 0})
        assert report.discrepancies == [], ledger_usdc
        assert report.in_flight_chain_effects == 1


def test_only_a_subset_of_unanswered_effects_explains_the_ledger() -> None:
    effects = [_unanswered("credit", 50), _unanswered("credit", 70), _unanswered("debit", -5)]
    view = _view(in_flight=effects)
    chain = {USDC: 1115, WETH: 0}
    for held, explained in ((1000, True), (1050, True), (1115, True), (1065, True), (1001, False)):
        view.ledger = {(A, USDC): held}
        report = compare(view, _chain(view, a_usdc=1115), chain)
        assert (report.discrepancies == []) is explained, held


def test_an_answered_effect_past_the_persister_is_not_in_the_ledger_yet() -> None:
    """Its answer is recorded with a seq the persister has not reached: the ledger holding it
    would be a discrepancy."""
    view = _view(ledger={(A, USDC): 700}, in_flight=[_effect("debit", -300)])
    (d,) = compare(view, _chain(view, a_usdc=700), {USDC: 700, WETH: 0}).discrepancies
    assert d.kind == "balance_mismatch"
    assert d.amounts["difference"] == -300
