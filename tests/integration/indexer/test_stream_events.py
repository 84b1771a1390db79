"""The indexer's stream events on a real anvil: a deposit is `seen`, then `confirmed` once deep
enough, and `reorged` when its block leaves the chain; each valid against its schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.chain.anvil import Anvil
from tests.integration.indexer.rig import Chain, Rig
from tests.stream_schemas import check_conformance, check_key_order, outbox_rows

pytestmark = pytest.mark.integration


@pytest.fixture
def chain() -> Iterator[Chain]:
    with Anvil() as node:
        yield Chain.start(node)


def test_deposits_seen_confirmed_and_reorged(chain: Chain, tmp_path: Path) -> None:
    rig = Rig(chain, tmp_path / "live", stream=True)
    try:
        alice, bob = (t.address for t in chain.h.traders[:2])
        token = chain.tokens[0]
        chain.deposit(alice, token, 5 * 10**18)
        rig.sync()  # seen, not yet deep enough
        chain.mine(rig.confirmations + 1)
        rig.sync()  # confirmed
        chain.deposit(bob, token, 7 * 10**18)
        rig.sync()  # seen
        chain.reorg(1)  # bob's block is gone
        chain.mine(1)
        rig.sync()
        messages = check_conformance(outbox_rows(rig.factory))
    finally:
        rig.close()
    check_key_order(messages)
    deposits = [m for m in messages if m["type"] == "deposit"]
    by_trader = {
        who: [m["data"]["status"] for m in deposits if m["key"] == who] for who in (alice, bob)
    }
    assert by_trader[alice] == ["seen", "confirmed"]
    assert by_trader[bob] == ["seen", "reorged"]
    confirmed = next(m["data"] for m in deposits if m["data"]["status"] == "confirmed")
    assert confirmed["confirmations"] >= rig.confirmations
    assert confirmed["amount"] == str(5 * 10**18)
