"""The batched path: a chunk's balances summed per (trader, token), a window of commands in
flight at once, and a window whose answers are partly lost — against anvil + the real engine."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import select

from backend.chain.anvil import Anvil
from backend.db import unit_of_work
from backend.db.models.indexer import ChainBalance, Deposit, IndexerCommand
from backend.domain.types import DepositStatus
from backend.engine.client import EngineOutcomeUnknownError, Outcome
from backend.matching.commands import Command
from indexer.engine_sink import EngineClientSink, JournalDirLookup
from indexer.projection import Outbox
from tests.integration.indexer.rig import Chain, Rig

pytestmark = pytest.mark.integration


@pytest.fixture
def chain() -> Iterator[Chain]:
    with Anvil() as node:
        yield Chain.start(node)


class LosingSink:
    """The real sink, except that the answer of window position `lost` never comes back (the
    engine journaled and applied it) and position `unsent` never reaches the engine."""

    def __init__(self, real: EngineClientSink, *, lost: int, unsent: int) -> None:
        self.real, self.lost, self.unsent = real, lost, unsent
        self.windows: list[int] = []

    def submit(self, command: Command, *, ref: bytes) -> Outcome:
        return self.real.submit(command, ref=ref)

    def submit_many(
        self, commands: Sequence[tuple[Command, bytes]]
    ) -> list[Outcome | BaseException]:
        self.windows.append(len(commands))
        sent = [c for i, c in enumerate(commands) if i != self.unsent]
        answers = iter(self.real.submit_many(sent))
        out: list[Outcome | BaseException] = []
        for i in range(len(commands)):
            answer = None if i == self.unsent else next(answers)
            if i in (self.lost, self.unsent):
                out.append(EngineOutcomeUnknownError("no answer within 10s"))
            else:
                assert answer is not None
                out.append(answer)
        return out


def test_a_window_with_a_lost_answer_and_an_unsent_command_credits_each_once(
    chain: Chain, tmp_path: Path
) -> None:
    alice = chain.h.traders[0].address
    weth = chain.h.weth.address
    amounts = [2**i for i in range(10)]  # any double or missing credit shows in the sum
    for amount in amounts:
        chain.deposit(alice, chain.h.weth, amount)
    rig = Rig(chain, tmp_path / "live", confirmations=0)
    try:
        lookup = JournalDirLookup(rig.engine.journal_dir)
        losing = LosingSink(rig.engine.sink(), lost=3, unsent=6)
        rig.indexer.outbox = Outbox(rig.factory, losing, lookup, window=100)
        with pytest.raises(EngineOutcomeUnknownError):
            rig.sync()
        assert losing.windows == [10]  # the whole backlog went out as one window
        assert rig.engine.total(alice, weth) == sum(amounts) - amounts[6]
        with unit_of_work(rig.factory) as session:
            rows = session.scalars(select(IndexerCommand).order_by(IndexerCommand.id)).all()
            assert [r.status for r in rows].count("submitted") == 2
        # The next drain resolves the two first: the lost one was applied, the unsent is resent.
        rig.indexer.outbox = Outbox(rig.factory, rig.engine.sink(), lookup)
        rig.sync()
        assert rig.engine.total(alice, weth) == sum(amounts)
        with unit_of_work(rig.factory) as session:
            rows = session.scalars(select(IndexerCommand).order_by(IndexerCommand.id)).all()
            deposits = session.scalars(select(Deposit)).all()
        assert [r.status for r in rows] == ["done"] * 10
        assert {r.outcome for r in rows} == {"applied"}
        assert len({r.engine_seq for r in rows}) == 10
        assert {d.status for d in deposits} == {DepositStatus.CREDITED}
        by_ref = {(r.block_hash, r.log_index): r.engine_seq for r in rows}
        assert all(d.credited_seq == by_ref[(d.block_hash, d.log_index)] for d in deposits)
    finally:
        rig.close()


def test_a_chunk_with_many_deposits_per_trader_sums_them_once(chain: Chain, tmp_path: Path) -> None:
    alice, bob = (t.address for t in chain.h.traders[:2])
    weth, usdc = chain.h.weth, chain.h.usdc
    plan = [(alice, weth, 10), (bob, usdc, 7), (alice, weth, 20), (alice, usdc, 5)]
    plan += [(bob, usdc, 100 + i) for i in range(6)]
    for trader, token, amount in plan:
        chain.deposit(trader, token, amount)
    chain.mine(10)
    rig = Rig(chain, tmp_path / "live", reorg_window=4)
    rig.indexer.ranges.size = 10_000  # every deposit in the first backfill chunk
    try:
        rig.sync()
        want: dict[tuple[str, str], int] = {}
        for trader, token, amount in plan:
            want[(trader, token.address)] = want.get((trader, token.address), 0) + amount
        with unit_of_work(rig.factory) as session:
            balances = {
                (b.trader, b.token): b.amount for b in session.scalars(select(ChainBalance))
            }
        assert balances == want
        assert {k: rig.engine.total(*k) for k in want} == want
        # Indexing the same blocks again owes nothing new and moves no balance.
        rig.indexer.resync_from(1)
        rig.sync()
        with unit_of_work(rig.factory) as session:
            again = {(b.trader, b.token): b.amount for b in session.scalars(select(ChainBalance))}
        assert again == want
        assert {k: rig.engine.total(*k) for k in want} == want
    finally:
        rig.close()
