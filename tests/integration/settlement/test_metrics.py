"""The backlog gauges, from real fills in a real database (the worker's /metrics, batch gas
included, is scraped in test_settlement_worker.py).

`observe_backlog` runs once per tick in the worker; here it is called directly after each step
(PostgreSQL sums in SQL, SQLite adds in Python: both are checked against the trades).
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Connection, Engine, event, select
from sqlalchemy.orm import Session
from web3 import HTTPProvider, Web3

from backend.chain.anvil import free_port
from backend.db.migrate import upgrade
from backend.db.models import Fill, FillSettlement
from backend.db.session import make_engine, session_factory
from backend.domain.types import PRICE_SCALE
from backend.settlement import batcher
from backend.settlement.batcher import form_batch
from backend.settlement.reads import claimed_floor
from backend.settlement.tick import observe_backlog, observe_operator_balance, unsettled_backlog
from tests.integration.settlement.conftest import Stack
from tests.unit.contracts.harness import LOT, PRICE, UNIT, USDC

pytestmark = pytest.mark.integration

TRADES = [(0, 1, 2), (2, 3, 3), (0, 3, 1), (2, 1, 4)]  # (maker, taker, lots)


def _exposure(token: str) -> float | None:
    return REGISTRY.get_sample_value("hybridex_settlement_unsettled_exposure", {"token": token})


def _oldest() -> float | None:
    return REGISTRY.get_sample_value("hybridex_settlement_oldest_unsettled_seconds")


def _trade(stack: Stack) -> None:
    """The market listed, four traders funded, and TRADES matched in the engine."""
    h = stack.h
    commands = stack.listing()
    for t in h.traders[:4]:
        commands += stack.fund(t, weth=UNIT, usdc=10_000 * USDC)
    commands += stack.trades([(h.traders[m], h.traders[t], lots) for m, t, lots in TRADES])
    assert stack.engine(commands) == len(TRADES)


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_backlog_counts_fills_until_they_settle_or_fail(
    stack: Stack, dialect: str, tmp_path: Path
) -> None:
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'backlog.db'}"
        upgrade(url)
        stack = replace(stack, db_url=url, factory=session_factory(make_engine(url)))
    h = stack.h
    _trade(stack)
    ctx = stack.context(batch_max_fills=2)
    weth, usdc = h.weth.address, h.usdc.address

    def expected(lots: list[int]) -> tuple[int, int]:
        base = [n * LOT for n in lots]
        return sum(base), sum(a * PRICE // PRICE_SCALE for a in base)

    # Nothing claimed yet: every fill counts; the age runs from the oldest fill.
    with stack.factory() as session:
        created = list(session.scalars(select(Fill.created_at).order_by(Fill.id)))
    backlog = observe_backlog(ctx, now=created[0] + timedelta(seconds=42))
    all_base, all_quote = expected([lots for _, _, lots in TRADES])
    assert backlog.exposure == {weth: all_base, usdc: all_quote}
    assert _exposure(weth) == all_base
    assert _exposure(usdc) == all_quote
    assert _oldest() == pytest.approx(42.0)

    # Claimed (`matched`) and `submitted` fills still count; settled and failed ones do not.
    assert form_batch(ctx, force=True) == 1  # fills 1 and 2
    stack.execute(
        "UPDATE fill_settlements SET status = 'submitted' WHERE fill_id = "
        "(SELECT min(fill_id) FROM fill_settlements)"
    )
    observe_backlog(ctx, now=created[0] + timedelta(seconds=43))
    assert _exposure(weth) == all_base
    assert _oldest() == pytest.approx(43.0)
    stack.execute("UPDATE fill_settlements SET status = 'settled'")  # fills 1 and 2
    stack.execute("UPDATE settlement_batches SET status = 'settled'")
    assert form_batch(ctx, force=True) == 2  # fills 3 and 4
    stack.execute(
        "UPDATE fill_settlements SET status = 'failed', failure_reason = 'TraderExited(…)' "
        "WHERE fill_id = (SELECT max(fill_id) FROM fill_settlements)"
    )
    backlog = observe_backlog(ctx, now=created[2] + timedelta(seconds=5))
    third_base, third_quote = expected([TRADES[2][2]])
    assert backlog.exposure == {weth: third_base, usdc: third_quote}
    assert _exposure(weth) == third_base
    assert _oldest() == pytest.approx(5.0)

    # All done: 0, not a stale value.
    stack.execute("UPDATE fill_settlements SET status = 'settled' WHERE status = 'matched'")
    backlog = observe_backlog(ctx)
    assert backlog.exposure == {}
    assert backlog.oldest is None
    assert _exposure(weth) == 0
    assert _exposure(usdc) == 0
    assert _oldest() == 0


def _reference_unclaimed(session: Session) -> list[int]:
    """Every unclaimed fill, by walking every fill (what the batcher did before its floor)."""
    return [
        int(i)
        for i in session.scalars(
            select(Fill.id)
            .outerjoin(FillSettlement, FillSettlement.fill_id == Fill.id)
            .where(FillSettlement.fill_id.is_(None))
            .order_by(Fill.seq, Fill.fill_index)
        )
    ]


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_the_claimed_floor_never_hides_an_unclaimed_fill(
    stack: Stack, dialect: str, tmp_path: Path
) -> None:
    """Batches of random sizes, a cancel-only batch among them, more fills matched between
    them: the bounded search finds exactly the unclaimed fills the full walk finds, and the
    backlog is what the fills say."""
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'floor.db'}"
        upgrade(url)
        stack = replace(stack, db_url=url, factory=session_factory(make_engine(url)))
    h = stack.h
    rng = random.Random(3)
    commands = stack.listing()
    for t in h.traders[:4]:
        commands += stack.fund(t, weth=UNIT, usdc=10_000 * USDC)
    stack.engine(commands)
    trades = [(h.traders[m], h.traders[(m + 1) % 4], 1) for m in range(4)]
    ctx = stack.context()
    with stack.factory() as session:
        assert claimed_floor(session) is None
    formed = 0
    for step in range(8):
        stack.engine(stack.trades(rng.sample(trades, rng.randint(0, 3))))
        size = rng.randint(1, 3)
        ctx = replace(ctx, settings=ctx.settings.model_copy(update={"batch_max_fills": size}))
        with stack.factory() as session:
            waiting = _reference_unclaimed(session)
        batch = form_batch(ctx, force=True)
        assert (batch is not None) == bool(waiting)
        if batch is not None:
            formed += 1
            stack.execute("UPDATE settlement_batches SET status = 'settled'")
            stack.execute("UPDATE fill_settlements SET status = 'settled'")
        if step == 3:  # a batch of cancels only: the floor looks past it
            stack.execute(
                "INSERT INTO settlement_batches (batch_id, status, fill_count, cancel_count, "
                "created_at, updated_at) SELECT max(batch_id) + 1, 'settled', 0, 1, "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM settlement_batches"
            )
        with stack.factory() as session:
            left = _reference_unclaimed(session)
            assert left == waiting[size:] if batch is not None else left == waiting
            assert [i for i, _, _ in batcher._unclaimed_fills(session, 1000)] == left
            floor = claimed_floor(session)
            if formed:
                assert floor is not None
                first_left = session.get(Fill, left[0]) if left else None
                if first_left is not None:
                    assert (first_left.seq, first_left.fill_index) >= floor
            fills = [session.get(Fill, i) for i in left]
            assert unsettled_backlog(session).exposure == (
                {
                    h.weth.address: sum(f.amount for f in fills if f),
                    h.usdc.address: sum(f.quote_amount for f in fills if f),
                }
                if fills
                else {}
            )
    assert formed >= 3


def test_a_batch_claiming_fills_during_the_backlog_read_counts_them_once(stack: Stack) -> None:
    """Two ticks overlap in the worker (threads): one forms a batch while the other reads the
    backlog. The batch commits between the backlog's two reads; each fill still counts once."""
    h = stack.h
    _trade(stack)
    ctx = stack.context(batch_max_fills=len(TRADES))
    claimed: list[int | None] = []

    def claim_before_the_claimed_read(
        conn: Connection, cursor: object, statement: str, *args: object
    ) -> None:
        # The second read joins the claims without an outer join; claim every fill just before.
        if not claimed and "sum(" in statement and "LEFT OUTER JOIN" not in statement:
            claimed.append(form_batch(ctx, force=True))

    with stack.factory() as session:
        bind = session.get_bind()
        assert isinstance(bind, Engine)
        event.listen(bind, "before_cursor_execute", claim_before_the_claimed_read)
        try:
            backlog = unsettled_backlog(session)
        finally:
            event.remove(bind, "before_cursor_execute", claim_before_the_claimed_read)
    assert claimed == [1]  # the batch did commit between the two reads
    base = sum(n * LOT for _, _, n in TRADES)
    assert backlog.exposure[h.weth.address] == base
    assert backlog.exposure[h.usdc.address] == sum(
        n * LOT * PRICE // PRICE_SCALE for _, _, n in TRADES
    )


def test_operator_balance_gauge_reads_the_chain_and_keeps_its_value_when_the_node_is_down(
    stack: Stack,
) -> None:
    ctx = stack.context()
    balance = observe_operator_balance(ctx)
    assert balance == stack.h.w3.eth.get_balance(ctx.sender) > 0
    sample = "hybridex_settlement_operator_balance_wei"
    assert REGISTRY.get_sample_value(sample) == float(balance)
    down = replace(ctx, w3=Web3(HTTPProvider(f"http://127.0.0.1:{free_port()}")))
    assert observe_operator_balance(down) is None
    assert REGISTRY.get_sample_value(sample) == float(balance)
