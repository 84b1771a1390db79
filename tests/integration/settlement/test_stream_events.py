"""The settlement worker's stream events in a real flow (anvil, PostgreSQL, the Celery worker):
every fill goes matched → submitted → settled, or failed when the chain skips it, each event
valid against its schema, in order per trader."""

from __future__ import annotations

import pytest

from tests.integration.settlement.conftest import Stack
from tests.integration.settlement.test_settlement_worker import _market_with_fills
from tests.stream_schemas import check_conformance, check_key_order, outbox_rows

pytestmark = pytest.mark.integration


def test_fill_states_reach_the_outbox(stack: Stack) -> None:
    stack.stream = True
    pairs = [(0, 1, 2), (2, 3, 3), (0, 1, 1), (0, 3, 1)]
    assert _market_with_fills(stack, pairs) == 4
    h = stack.h
    h.send(h.contract.functions.requestExit(), h.traders[2])  # its fill is skipped on chain
    h.mine(h.exit_delay + 1)
    stack.start_worker(HYBRIDEX_BATCH_MAX_FILLS="10")
    stack.wait("three settled, one failed", lambda: stack.all_settled(failed=1))
    messages = check_conformance(outbox_rows(stack.factory))
    check_key_order(messages)
    states: dict[tuple[str, str], list[str]] = {}
    for m in messages:
        if m["type"] == "fill":
            d = m["data"]
            assert m["key"] == d["trader"]
            states.setdefault((d["fill_id"], d["side"]), []).append(d["state"])
            if d["state"] in ("submitted", "settled"):
                assert d["tx_hash"]
                assert d["batch_id"]
            if d["state"] == "settled":
                assert d["block"]
    assert len(states) == 8  # four fills, two sides
    finals = sorted(s[-1] for s in states.values())
    assert finals == ["failed"] * 2 + ["settled"] * 6
    assert all(s[:2] == ["matched", "submitted"] for s in states.values())
