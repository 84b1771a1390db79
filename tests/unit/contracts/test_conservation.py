"""Conservation (hypothesis): after random valid deposits, batches and withdrawals, per token
the internal balances (fee recipient included) sum to deposits − withdrawals, which is the
contract's token balance."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.domain.types import Side
from backend.eip712.signing import sign
from tests.unit.contracts.harness import LOT, PRICE, UNIT, USDC, Harness, fill

TRADERS = 4


@dataclass(frozen=True)
class FillSpec:
    maker: int
    taker_offset: int
    maker_side: Side
    lots: int
    price_ticks: int
    maker_fee_bps: int
    taker_fee_bps: int


fill_specs = st.builds(
    FillSpec,
    st.integers(0, TRADERS - 1),
    st.integers(1, TRADERS - 1),
    st.sampled_from(Side),
    st.integers(1, 2000),
    st.integers(-500, 500),
    st.integers(0, 100),
    st.integers(0, 100),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("batch"), st.lists(fill_specs, min_size=1, max_size=6)),
        st.tuples(
            st.just("deposit"), st.integers(0, TRADERS - 1), st.booleans(), st.integers(1, 10**6)
        ),
        st.tuples(
            st.just("withdraw"), st.integers(0, TRADERS - 1), st.booleans(), st.integers(1, 100)
        ),
    ),
    min_size=1,
    max_size=4,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps)
def test_balances_are_conserved(module_harness: Harness, plan: list[tuple]) -> None:  # type: ignore[type-arg]
    h = module_harness
    snapshot = h.snapshot()
    try:
        _run(h, plan)
    finally:
        h.revert(snapshot)


def _run(h: Harness, plan: list[tuple]) -> None:  # type: ignore[type-arg]
    traders = h.traders[:TRADERS]
    tokens = [h.weth, h.usdc]
    net = {t.address: 0 for t in tokens}
    for t in traders:
        for token, amount in ((h.weth, 1000 * UNIT), (h.usdc, 10_000_000 * USDC)):
            h.fund(t, token, amount)
            net[token.address] += amount
    for step in plan:
        if step[0] == "deposit":
            _, i, is_weth, amount = step
            token = tokens[0] if is_weth else tokens[1]
            h.deposit(traders[i], token, amount)
            net[token.address] += amount
        elif step[0] == "withdraw":
            _, i, is_weth, percent = step
            token = tokens[0] if is_weth else tokens[1]
            amount = h.balance(traders[i], token) * percent // 100
            if amount == 0:
                continue
            w = h.withdrawal(traders[i], token, amount)
            h.send(h.withdraw_fn(w, sign(w, h.domain, traders[i].key)), h.operator)
            net[token.address] -= amount
        else:
            fills = []
            for spec in step[1]:
                maker_trader = traders[spec.maker]
                taker_trader = traders[(spec.maker + spec.taker_offset) % TRADERS]
                price = PRICE + spec.price_ticks * 10**6
                amount = spec.lots * LOT
                quote = amount * price // 10**18
                maker = h.order(maker_trader, spec.maker_side, amount, price)
                taker = h.order(taker_trader, spec.maker_side.opposite, amount, price)
                maker_gets, taker_gets = (
                    (quote, amount) if spec.maker_side is Side.SELL else (amount, quote)
                )
                fills.append(
                    fill(
                        maker,
                        taker,
                        amount,
                        maker_gets * spec.maker_fee_bps // 10_000,
                        taker_gets * spec.taker_fee_bps // 10_000,
                    )
                )
            h.settle(fills)
        _check(h, net)


def _check(h: Harness, net: dict[str, int]) -> None:
    holders = [t.address for t in h.traders] + [h.fee_recipient.address]
    for token in (h.weth, h.usdc):
        internal = sum(h.exchange.balance_of(a, token.address) for a in holders)
        held = token.functions.balanceOf(h.exchange.address).call()
        assert internal == net[token.address] == held
