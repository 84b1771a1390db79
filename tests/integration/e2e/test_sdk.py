"""hybridex-client against `hybridex dev`: deposit, place, read back with a session, the book
over the WebSocket, a forced disconnect resumed, cancel-all."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hybridex_client import SELL, BookReset, Client, NotFoundError, Reconnected, Stream, Update

from backend.chain.anvil import free_port
from backend.config import DEV_PRIVATE_KEYS
from backend.devstack.demo import Demo, DemoConfig
from tests.integration.e2e.examples import until
from tests.integration.e2e.test_round_trip import DevStack

pytestmark = pytest.mark.integration


def test_sdk_round_trip_against_the_dev_stack(tmp_path: Path) -> None:
    stack = DevStack(tmp_path, free_port())
    try:
        key = DEV_PRIVATE_KEYS[3]
        c = Client(stack.api, key)
        m = c.market("WETH-USDC")
        amount = max(m.min_amount, m.lot_size) * 10
        demo = Demo(DemoConfig(api_url=stack.api, rpc_url=stack.rpc), echo=lambda _l: None)
        demo.deposit(key, c.info().exchange_address, m.base.address, amount * 3)
        deadline = time.monotonic() + 60
        while c.available(m.base.address) < amount * 3:
            assert time.monotonic() < deadline, "deposit not credited"
            time.sleep(0.3)

        stream = Stream(c.ws_url(), session=c.session_token())
        stream.subscribe("book:WETH-USDC")
        events = stream.events(timeout=1.5)
        assert any(isinstance(e, BookReset) for e in events)

        price = 3_000 * 10**6 - (3_000 * 10**6) % m.tick_size
        placed = c.place(m, SELL, price, amount)
        assert placed.status == "open"
        # REST reads what the persister wrote and the book what the feed sent: both follow the
        # engine's answer closely, not at once.
        until(lambda: [o.order_hash for o in c.open_orders("WETH-USDC")] == [placed.order_hash],
               "the order open on REST")  # fmt: skip

        def in_local_book() -> bool:
            stream.events(timeout=0.2)
            return stream.book("WETH-USDC").asks.get(price) == amount

        until(in_local_book, "the order in the local book")

        stream.disconnect()  # forced from the client side: the next read resumes from fromSeq
        c.place(m, SELL, price + m.tick_size, amount)
        events = stream.events(timeout=2.0)
        assert any(isinstance(e, Reconnected) for e in events), events
        assert any(isinstance(e, Update) for e in events), events
        assert stream.book("WETH-USDC").asks.get(price + m.tick_size) == amount

        done = c.cancel_all(m)
        assert done.cancelled == 2
        until(lambda: c.open_orders("WETH-USDC") == [], "cancelled orders gone from REST")
        with pytest.raises(NotFoundError) as err:
            c.cancel(placed.order_hash)
        assert err.value.code == "ORDER_NOT_FOUND"
        stream.close()
    finally:
        stack.stop()
