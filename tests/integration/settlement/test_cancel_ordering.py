"""Which signed cancels a batch commits: on chain a cancel voids its order's fills in every
later batch, so it must never overtake a fill the engine matched before it, and a cancel the
engine refused must never reach the chain (real engine, real database, `form_batch`)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from backend.db.models import BatchCancel, Fill, FillSettlement, SignedCancel
from backend.domain.types import Side
from backend.settlement.batcher import form_batch
from tests.integration.settlement.conftest import Stack
from tests.unit.contracts.harness import LOT, PRICE, UNIT, USDC

pytestmark = pytest.mark.integration


def _committed(stack: Stack) -> dict[int, list[bytes]]:
    with stack.factory() as session:
        out: dict[int, list[bytes]] = {}
        for batch_id, cancel_hash in session.execute(
            select(BatchCancel.batch_id, BatchCancel.cancel_hash)
        ):
            out.setdefault(int(batch_id), []).append(bytes(cancel_hash))
        return out


def _settle_all(stack: Stack) -> None:
    """Stand-in for the chain and the sender: the formed batches are done."""
    stack.execute("UPDATE settlement_batches SET status = 'settled'")
    stack.execute("UPDATE fill_settlements SET status = 'settled'")


def _funded(stack: Stack) -> None:
    commands = stack.listing()
    for t in stack.h.traders[:4]:
        commands += stack.fund(t, weth=UNIT, usdc=10_000 * USDC)
    stack.engine(commands)


def test_a_cancel_waits_for_the_batch_of_the_fills_matched_before_it(stack: Stack) -> None:
    h = stack.h
    a, b, c, d = h.traders[:4]
    _funded(stack)
    # Three fills between a and b, then c's order is half taken by d and c cancels the rest.
    order = h.order(c, Side.SELL, 2 * LOT, PRICE)
    cancel, intake = stack.cancel(order)
    assert intake is not None
    commands = stack.trades([(a, b, 1)] * 3)
    commands += [stack.place_signed(order), stack.place(d, Side.BUY, 1), (cancel, intake)]
    assert stack.engine(commands) == 4
    ctx = stack.context(batch_max_fills=2)

    # Batch 1 takes fills 1-2; the partial fill of c's order is left out, so its cancel waits.
    assert form_batch(ctx, force=True) == 1
    assert _committed(stack) == {}
    _settle_all(stack)
    # Batch 2 takes the remaining fills, the partial one included: now the cancel may follow.
    assert form_batch(ctx, force=True) == 2
    with stack.factory() as session:
        makers_in_batch_2 = session.scalars(
            select(Fill.maker_order_hash)
            .join(FillSettlement, FillSettlement.fill_id == Fill.id)
            .where(FillSettlement.batch_id == 2)
        ).all()
    assert h.order_hash(order) in {bytes(x) for x in makers_in_batch_2}
    assert _committed(stack) == {2: [intake.signed_hash]}


def test_a_cancel_the_engine_refused_never_reaches_the_chain(stack: Stack) -> None:
    """c signs the cancel of an order before sending it: the engine refuses the cancel (it
    does not know the order), then takes the order, which trades. Committing that stored
    cancel on chain would void fills the engine applied; it must stay out of every batch."""
    h = stack.h
    c, d = h.traders[2], h.traders[3]
    _funded(stack)
    order = h.order(c, Side.SELL, 2 * LOT, PRICE)
    early_cancel, intake = stack.cancel(order)
    assert intake is not None
    commands = [(early_cancel, intake), stack.place_signed(order), stack.place(d, Side.BUY, 1)]
    assert stack.engine(commands) == 1
    with stack.factory() as session:  # the signed cancel is on record, as every signed one is
        assert session.get(SignedCancel, intake.signed_hash) is not None
    ctx = stack.context()
    assert form_batch(ctx, force=True) == 1  # the fill, without the cancel
    _settle_all(stack)
    assert form_batch(ctx, force=True) is None  # nothing due: the refused cancel is not
    stack.engine([stack.place(d, Side.BUY, 1)])  # the rest of the order trades too
    assert form_batch(ctx, force=True) == 2
    assert _committed(stack) == {}
