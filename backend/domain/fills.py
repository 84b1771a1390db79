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
    fee_recipient: str | None = None,
) -> list[tuple[str, str, int]]:
    """`(trader, token, signed change)` for both traders and, given `fee_recipient`, its gain:
    each fee, in the token its payer receives (the contract credits the recipient's internal
    balance in the same batch)."""
    out: list[tuple[str, str, int]] = []
    for trader, side, fee in (
        (maker, taker_side.opposite, maker_fee),
        (taker, taker_side, taker_fee),
    ):
        received = base if side is Side.BUY else quote
        if side is Side.BUY:
            out += [(trader, base, amount - fee), (trader, quote, -quote_amount)]
        else:
            out += [(trader, quote, quote_amount - fee), (trader, base, -amount)]
        if fee_recipient is not None and fee:
            out.append((fee_recipient, received, fee))
    return out
