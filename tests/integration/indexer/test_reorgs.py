"""Reorgs on a real anvil: never credited twice, rolled back when orphaned, = a fresh index."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.chain.anvil import Anvil
from backend.domain.errors import ErrorCode
from backend.domain.types import DepositStatus
from indexer.sync.reorg import ReorgTooDeepError
from tests.integration.indexer.rig import Chain, Rig, fresh_ledger

pytestmark = pytest.mark.integration


@pytest.fixture
def chain() -> Iterator[Chain]:
    with Anvil() as node:
        yield Chain.start(node)


@pytest.fixture
def rig(chain: Chain, tmp_path: Path) -> Iterator[Rig]:
    r = Rig(chain, tmp_path / "live")
    yield r
    r.close()


def credited_amounts(rig: Rig) -> list[int]:
    return sorted(
        amount
        for (_t, _k, amount, status) in rig.ledger()["deposits"].values()
        if status is DepositStatus.CREDITED
    )


@pytest.mark.parametrize("depth", [1, 3, 10])
def test_reorg_replacing_deposits_matches_a_fresh_index(
    chain: Chain, rig: Rig, tmp_path: Path, depth: int
) -> None:
    alice, bob = (t.address for t in chain.h.traders[:2])
    weth = chain.h.weth
    for i in range(12):
        chain.deposit(alice if i % 2 else bob, weth, 1_000 + i)
    rig.sync()
    before = rig.ledger()
    # Confirmed (2 deep) deposits are credited; the newest two are only seen.
    assert sum(1 for v in before["deposits"].values() if v[3] is DepositStatus.SEEN) == 2
    chain.reorg(depth, [(alice, weth, 777_000)])
    rig.sync()
    after = rig.ledger()
    assert after == fresh_ledger(chain, tmp_path / "fresh")
    # The replacement deposit exists once; the orphaned ones are gone from the ledger.
    assert [v[2] for v in after["deposits"].values()].count(777_000) == 1
    total = sum(v[2] for v in after["deposits"].values() if v[0] == alice)
    assert rig.engine.total(alice, weth.address) <= total
    chain.mine(3)  # everything now confirmed
    rig.sync()
    settled = rig.ledger()
    assert settled == fresh_ledger(chain, tmp_path / "fresh2")
    assert rig.engine.total(alice, weth.address) == total


def test_orphaned_credit_is_reversed_and_never_doubled(chain: Chain, tmp_path: Path) -> None:
    rig = Rig(chain, tmp_path / "live", confirmations=0)
    try:
        alice = chain.h.traders[0].address
        weth = chain.h.weth
        chain.deposit(alice, weth, 500)
        rig.sync()
        assert rig.engine.total(alice, weth.address) == 500  # credited at once (0 conf)
        chain.reorg(1, [(alice, weth, 200)])  # the same tx slot, another amount
        rig.sync()
        assert rig.engine.total(alice, weth.address) == 200
        rig.sync()
        assert rig.engine.total(alice, weth.address) == 200
        assert rig.ledger() == fresh_ledger(chain, tmp_path / "fresh", confirmations=0)
    finally:
        rig.close()


def test_reorg_deeper_than_the_window_stops(chain: Chain, tmp_path: Path) -> None:
    rig = Rig(chain, tmp_path / "live", confirmations=1, reorg_window=4)
    try:
        alice = chain.h.traders[0].address
        for i in range(6):
            chain.deposit(alice, chain.h.weth, 10 + i)
        rig.sync()
        cursor_before = rig.ledger()
        chain.reorg(8, [(alice, chain.h.weth, 1)])
        with pytest.raises(ReorgTooDeepError) as info:
            rig.sync()
        assert info.value.code is ErrorCode.REORG_TOO_DEEP
        assert rig.ledger() == cursor_before  # nothing written by the failed step
    finally:
        rig.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_reorg_sequences_match_a_fresh_index(
    chain: Chain, tmp_path: Path, seed: int
) -> None:
    rnd = random.Random(seed)
    rig = Rig(chain, tmp_path / "live", confirmations=rnd.choice([0, 1, 3]), reorg_window=12)
    try:
        traders = [t.address for t in chain.h.traders[:3]]
        tokens = [chain.h.weth, chain.h.usdc]
        chain.mine(6)  # reorgs (≤ 5 deep) never reach the set-up blocks
        for _ in range(14):
            op = rnd.random()
            if op < 0.5:
                chain.deposit(rnd.choice(traders), rnd.choice(tokens), rnd.randint(1, 10**6))
            elif op < 0.65:
                chain.mine(rnd.randint(1, 3))
            else:
                depth = rnd.randint(1, 5)
                repl = [
                    (rnd.choice(traders), rnd.choice(tokens), rnd.randint(1, 10**6))
                    for _ in range(rnd.randint(0, 2))
                ]
                chain.reorg(depth, repl)
            if rnd.random() < 0.6:
                rig.sync()
        rig.sync()
        kwargs = {"confirmations": rig.confirmations, "reorg_window": 12}
        assert rig.ledger() == fresh_ledger(chain, tmp_path / "fresh", **kwargs)
    finally:
        rig.close()
