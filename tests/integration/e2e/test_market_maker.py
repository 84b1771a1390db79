"""examples/market_maker.py against `hybridex dev`: it quotes, survives a forced disconnect,
a second trader takes one quote, and its beliefs match the API (open orders, fills)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hybridex_client import BUY, SELL, Client

from backend.chain.anvil import free_port
from backend.config import DEV_PRIVATE_KEYS
from backend.devstack.demo import Demo, DemoConfig
from tests.integration.e2e.examples import load_example, until
from tests.integration.e2e.test_round_trip import DevStack

pytestmark = pytest.mark.integration


def _fund(demo: Demo, c: Client, token: str, amount: int) -> None:
    demo.deposit(c._key, c.info().exchange_address, token, amount)  # type: ignore[arg-type]
    deadline = time.monotonic() + 60
    while c.available(token) < amount:
        assert time.monotonic() < deadline, "deposit not credited"
        time.sleep(0.3)


def test_market_maker_keeps_its_quotes_and_its_fill_shows(tmp_path: Path) -> None:
    stack = DevStack(tmp_path, free_port())
    try:
        demo = Demo(DemoConfig(api_url=stack.api, rpc_url=stack.rpc), echo=lambda _l: None)
        maker = Client(stack.api, DEV_PRIVATE_KEYS[3])
        taker = Client(stack.api, DEV_PRIVATE_KEYS[4])
        m = maker.market("WETH-USDC")
        _fund(demo, maker, m.base.address, 10**19)
        _fund(demo, maker, m.quote.address, 10**11)
        _fund(demo, taker, m.quote.address, 10**11)

        example = load_example("market_maker")
        mm = example.MarketMaker(maker, "WETH-USDC", 3_000 * 10**6, levels=2)
        mm.start()
        assert len(mm.quotes) == 4
        believed = set(mm.quotes.values())
        until(lambda: {o.order_hash for o in maker.open_orders("WETH-USDC")} == believed,
              "the quotes open on REST")  # fmt: skip

        mm.stream.disconnect()  # forced from the client side
        mm.step(timeout=1.5)
        assert mm.stream.reconnects >= 1
        best_ask = min(p for (side, p) in mm.quotes if side == SELL)
        taken = taker.place(m, BUY, best_ask, mm.size)
        assert taken.status == "filled"
        for _ in range(3):
            mm.step(timeout=1.0)
        assert len(mm.quotes) == 4  # the taken quote is back
        until(lambda: {o.order_hash for o in maker.open_orders("WETH-USDC")}
              == set(mm.quotes.values()), "the quotes open on REST")  # fmt: skip
        assert {f.order_hash for f in maker.fills()} == {taken.fills[0].maker_order_hash}
        assert mm.stream.book("WETH-USDC").best_ask() == best_ask
        mm.stream.close()
    finally:
        stack.stop()
