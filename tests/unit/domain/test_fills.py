"""A settled fill's balance changes: what each side gives and receives, fees in what it gets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from backend.domain.fills import fill_deltas
from backend.domain.types import Side

MAKER, TAKER, BASE, QUOTE = "0xMaker", "0xTaker", "0xBase", "0xQuote"


def test_taker_buy_gets_base_minus_its_fee_and_pays_quote() -> None:
    deltas = fill_deltas(
        maker=MAKER, taker=TAKER, taker_side=Side.BUY, base=BASE, quote=QUOTE,
        amount=10, quote_amount=30_000, maker_fee=30, taker_fee=1,
    )  # fmt: skip
    assert sorted(deltas) == sorted(
        [(MAKER, QUOTE, 29_970), (MAKER, BASE, -10), (TAKER, BASE, 9), (TAKER, QUOTE, -30_000)]
    )


@given(
    side=st.sampled_from(list(Side)),
    amount=st.integers(1, 2**200),
    quote_amount=st.integers(1, 2**200),
    fee_bps=st.integers(0, 100),
)
def test_traders_lose_exactly_the_fees_per_token(
    side: Side, amount: int, quote_amount: int, fee_bps: int
) -> None:
    maker_gets = quote_amount if side is Side.BUY else amount
    taker_gets = amount if side is Side.BUY else quote_amount
    maker_fee, taker_fee = maker_gets * fee_bps // 10_000, taker_gets * fee_bps // 10_000
    deltas = fill_deltas(
        maker=MAKER, taker=TAKER, taker_side=side, base=BASE, quote=QUOTE, amount=amount,
        quote_amount=quote_amount, maker_fee=maker_fee, taker_fee=taker_fee,
    )  # fmt: skip
    net = {BASE: 0, QUOTE: 0}
    for _, token, delta in deltas:
        net[token] += delta
    fees = {BASE: 0, QUOTE: 0}
    fees[BASE if side is Side.BUY else QUOTE] += taker_fee
    fees[QUOTE if side is Side.BUY else BASE] += maker_fee
    assert net == {BASE: -fees[BASE], QUOTE: -fees[QUOTE]}  # conserved: fees go to the recipient


@given(
    side=st.sampled_from(list(Side)),
    amount=st.integers(1, 2**200),
    quote_amount=st.integers(1, 2**200),
    maker_bps=st.integers(0, 100),
    taker_bps=st.integers(0, 100),
    recipient=st.sampled_from(["0xFees", MAKER, TAKER]),  # the recipient may trade too
)
def test_with_the_fee_recipient_every_token_is_conserved(
    side: Side, amount: int, quote_amount: int, maker_bps: int, taker_bps: int, recipient: str
) -> None:
    maker_gets = quote_amount if side is Side.BUY else amount
    taker_gets = amount if side is Side.BUY else quote_amount
    maker_fee, taker_fee = maker_gets * maker_bps // 10_000, taker_gets * taker_bps // 10_000
    deltas = fill_deltas(
        maker=MAKER, taker=TAKER, taker_side=side, base=BASE, quote=QUOTE, amount=amount,
        quote_amount=quote_amount, maker_fee=maker_fee, taker_fee=taker_fee,
        fee_recipient=recipient,
    )  # fmt: skip
    net = {BASE: 0, QUOTE: 0}
    for _, token, delta in deltas:
        net[token] += delta
    assert net == {BASE: 0, QUOTE: 0}
    gained = {(who, token): 0 for who, token, _ in deltas}
    for who, token, delta in deltas:
        gained[(who, token)] += delta
    if recipient == "0xFees":
        assert gained.get((recipient, QUOTE if side is Side.BUY else BASE), 0) == maker_fee
        assert gained.get((recipient, BASE if side is Side.BUY else QUOTE), 0) == taker_fee
    assert all(fee for who, _, fee in deltas if who == "0xFees")  # no zero-fee rows
