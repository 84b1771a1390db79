"""examples/market_maker_ws.py against `hybridex dev`: it quotes by batch over the WebSocket,
replaces every quote in one message, and when its connection drops the API pulls its quotes
(cancel-on-disconnect); reconnected, it quotes again."""

from __future__ import annotations

from pathlib import Path

import pytest
from hybridex_client import Client

from backend.chain.anvil import free_port
from backend.config import DEV_PRIVATE_KEYS
from backend.devstack.demo import Demo, DemoConfig
from tests.integration.e2e.examples import load_example, until
from tests.integration.e2e.test_market_maker import _fund
from tests.integration.e2e.test_round_trip import DevStack

pytestmark = pytest.mark.integration


def _open(c: Client) -> set[str]:
    return {o.order_hash for o in c.open_orders("WETH-USDC")}


def test_batch_quoter_replaces_quotes_in_one_message_and_is_pulled_on_disconnect(
    tmp_path: Path,
) -> None:
    stack = DevStack(tmp_path, free_port())
    try:
        demo = Demo(DemoConfig(api_url=stack.api, rpc_url=stack.rpc), echo=lambda _l: None)
        maker = Client(stack.api, DEV_PRIVATE_KEYS[5])
        m = maker.market("WETH-USDC")
        _fund(demo, maker, m.base.address, 10**19)
        _fund(demo, maker, m.quote.address, 10**11)

        quoter = load_example("market_maker_ws").BatchQuoter(
            maker, "WETH-USDC", 3_000 * 10**6, levels=2
        )
        quoter.start()
        first = set(quoter.quotes)
        assert len(first) == 4
        until(lambda: _open(maker) == first, "the quotes open on REST")
        quoter.step()  # cancel four, place four: one message
        second = set(quoter.quotes)
        assert len(second) == 4
        assert not second & first
        until(lambda: _open(maker) == second, "the new quotes open on REST")

        quoter.entry.close()  # the connection drops: the API pulls the quotes
        until(lambda: _open(maker) == set(), "quotes pulled on disconnect")
        quoter.start()  # back: a clean book, quoting again
        until(lambda: _open(maker) == set(quoter.quotes), "quoting again")
        assert len(quoter.quotes) == 4
        # The same items over REST: a batch of cancels, each answered on its own.
        results = maker.batch([maker.cancel_body(h) for h in quoter.quotes])
        assert [r.cancelled().status for r in results] == ["cancelled"] * 4
        until(lambda: _open(maker) == set(), "the batch of cancels on REST")
        quoter.entry.close()
    finally:
        stack.stop()
