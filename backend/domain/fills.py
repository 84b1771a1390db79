"""What a fill does to internal balances once settled (the contract's arithmetic, SPEC §2/§4).

Fees are charged in the asset each side receives; the buyer gives `quote_amount` quote and
receives `amount − fee` base, the seller gives `amount` base and receives `quote_amount − fee`
quote. Pure: the API's `pendingSettlement` and the indexer's on-chain ledger both use it.
"""

from __future__ import annotations

from backend.domain.types import Side


def fill_deltas(
    *,
    maker: str,
    taker: str,
    taker_side: Side,
    base: str,
    quote: str,
    amount: int,
    quote_amount: int,
    maker_fee: int,
    taker_fee: int,
) -> list[tuple[str, str, int]]:
    """`(trader, token, signed change)` for both traders (the fee recipient's gain is the sum
    of the two fees, each in its own token)."""
    out: list[tuple[str, str, int]] = []
    for trader, side, fee in (
        (maker, taker_side.opposite, maker_fee),
        (taker, taker_side, taker_fee),
    ):
        if side is Side.BUY:
            out += [(trader, base, amount - fee), (trader, quote, -quote_amount)]
        else:
            out += [(trader, quote, quote_amount - fee), (trader, base, -amount)]
    return out
