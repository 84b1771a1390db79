"""One node call simulates a batch and prices its gas (anvil + PostgreSQL, in-process sends).

Without history the worker asks `eth_estimateGas` (it reverts like `eth_call`); then an
`eth_call` at a budget — from that estimate until batches have settled, from the settled
batches after — both simulates and proves the gas limit; a budget that runs out of gas falls
back to the estimate — and the batch still settles.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3

from backend.settlement.batcher import form_batch
from backend.settlement.monitor import follow_up
from backend.settlement.sender import (
    GAS_BUDGET_FIXED,
    GAS_MARGIN_PERCENT,
    GAS_MODEL_MIN_ITEMS,
    send_batch,
)
from tests.integration.settlement.conftest import Stack
from tests.unit.contracts.harness import UNIT, USDC

pytestmark = pytest.mark.integration


class CountingProvider(HTTPProvider):
    """Counts the JSON-RPC methods sent while `recording()` is open."""

    def __init__(self, url: str) -> None:
        super().__init__(url, request_kwargs={"timeout": 60})
        self.counts: Counter[str] | None = None

    def make_request(self, method: Any, params: Any) -> Any:
        if self.counts is not None:
            self.counts[str(method)] += 1
        return super().make_request(method, params)

    @contextmanager
    def recording(self) -> Iterator[Counter[str]]:
        self.counts = Counter()
        try:
            yield self.counts
        finally:
            self.counts = None


def _signed_gas(stack: Stack, batch_id: int) -> int:
    ((raw,),) = stack.query(
        "SELECT raw_tx FROM settlement_transactions WHERE batch_id = :b", b=batch_id
    )
    return int(TypedTransaction.from_bytes(HexBytes(bytes(raw))).as_dict()["gas"])


def test_one_call_simulates_and_prices_and_a_short_budget_falls_back(stack: Stack) -> None:
    h = stack.h
    traders = h.traders[:4]
    commands = stack.listing()
    for t in traders:
        commands += stack.fund(t, weth=UNIT, usdc=100_000 * USDC)
    per_batch = GAS_MODEL_MIN_ITEMS
    pairs = [(traders[i % 2], traders[2 + i % 2], 1 + i % 3) for i in range(4 * per_batch)]
    assert stack.engine(commands + stack.trades(pairs)) == 4 * per_batch
    provider = CountingProvider(stack.node.url)
    ctx = stack.context(Web3(provider), batch_max_fills=per_batch, confirmations=1)

    def send(batch_id: int) -> Counter[str]:
        assert form_batch(ctx) == batch_id
        with provider.recording() as counts:
            assert send_batch(ctx, batch_id) == "submitted"
        return counts

    def budget(per_item: int) -> int:
        return GAS_BUDGET_FIXED + per_batch * per_item * (100 + GAS_MARGIN_PERCENT) // 100

    # 1. Fresh start, nothing settled: a single eth_estimateGas, no separate eth_call.
    first = send(1)
    assert first["eth_estimateGas"] == 1
    assert first["eth_call"] == 0
    hint = ctx.estimated_gas_per_item
    assert hint is not None

    # 2. Still nothing settled (not followed up yet): one eth_call at the estimate's budget.
    second = send(2)
    assert second["eth_estimateGas"] == 0
    assert second["eth_call"] == 1
    assert _signed_gas(stack, 2) == budget(hint)
    follow_up(ctx)  # automine: both mined at once, confirmed at depth 1
    rows = stack.query("SELECT gas_used, status FROM settlement_batches ORDER BY batch_id")
    assert [status for _, status in rows] == ["settled", "settled"]

    # 3. History: one eth_call at the budget the settled batches give.
    third = send(3)
    assert third["eth_estimateGas"] == 0
    assert third["eth_call"] == 1
    per_item = max(-(-int(gas) // per_batch) for gas, _ in rows)
    assert _signed_gas(stack, 3) == budget(per_item)
    follow_up(ctx)

    # 4. A model far too low: the budgeted call runs out of gas, the estimate decides.
    stack.execute("UPDATE settlement_batches SET gas_used = :g", g=per_batch * 1_000)
    fourth = send(4)
    assert fourth["eth_call"] == 1
    assert fourth["eth_estimateGas"] == 1
    assert _signed_gas(stack, 4) > budget(1_000)
    follow_up(ctx)
    assert stack.query("SELECT batch_id, status FROM settlement_batches ORDER BY 1") == [
        (n, "settled") for n in range(1, 5)
    ]
    assert h.exchange.last_batch_id() == 4
    stack.assert_chain_matches_engine()
