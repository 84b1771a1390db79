"""Which signed cancels a batch commits: on chain a cancel voids its order's fills in every
later batch, so it must never overtake a fill the engine matched before it, and a cancel the
engine refused must never reach the chain (real engine, real database, `form_batch`)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from backend.db.models import BatchCancel, Fill, FillSettlement, SignedCancel
from backend.domain.types import Side
from backend.settlement.batcher import cancel_floor, form_batch, load_batch
from backend.settlement.sender import simulate_and_bisect
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


def test_a_cancel_the_contract_refuses_is_kept_out_of_every_later_batch(stack: Stack) -> None:
    """A stored cancel whose signature the contract refuses is found by bisection, marked
    refused, and never picked again; the good cancel beside it is committed. The floor then
    moves past both, so later batches read pending cancels from there."""
    h = stack.h
    c = h.traders[2]
    _funded(stack)
    good_order = h.order(c, Side.SELL, 2 * LOT, PRICE)
    bad_order = h.order(c, Side.SELL, 2 * LOT, PRICE + 10**6)
    good, good_intake = stack.cancel(good_order)
    bad, bad_intake = stack.cancel(bad_order)
    assert good_intake is not None
    assert bad_intake is not None
    # signed by someone else: the engine trusts the API's check, the contract does not
    forged = h.cancel(bad_order, signer=h.traders[3]).signature.to_bytes()
    bad_intake = replace(bad_intake, signature=forged)
    stack.engine([
        stack.place_signed(good_order), stack.place_signed(bad_order),
        (good, good_intake), (bad, bad_intake),
    ])  # fmt: skip
    ctx = stack.context()
    assert form_batch(ctx, force=True) == 1
    with stack.factory() as session:
        content = load_batch(session, 1)
    assert len(content.cancels) == 2
    prepared = simulate_and_bisect(ctx, content)
    assert [x.cancel_hash for x in prepared.content.cancels] == [good_intake.signed_hash]
    with stack.factory() as session:
        refused = session.scalars(
            select(BatchCancel.refused_reason).where(
                BatchCancel.cancel_hash == bad_intake.signed_hash
            )
        ).one()
        assert refused is not None
        assert refused.startswith("InvalidSignature(")
        assert len(load_batch(session, 1).cancels) == 1  # a re-send of batch 1 leaves it out
    _settle_all(stack)
    assert form_batch(ctx, force=True) is None  # nothing due: the refused cancel is not
    later = h.order(c, Side.SELL, 2 * LOT, PRICE + 2 * 10**6)
    cancel, intake = stack.cancel(later)
    assert intake is not None
    stack.engine([stack.place_signed(later), (cancel, intake)])
    assert form_batch(ctx, force=True) == 2
    assert _committed(stack)[2] == [intake.signed_hash]
    with stack.factory() as session:
        accepted = session.get(SignedCancel, intake.signed_hash)
        assert accepted is not None
        assert cancel_floor(session) == accepted.accepted_seq
