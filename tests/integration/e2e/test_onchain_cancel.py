"""A trader cancels on chain while their fill is in flight (`hybridex dev` on anvil).

The fill matched before the cancel (its batch not formed yet) still settles: the contract's
cancel waits `cancelDelay`. The indexer forwards `OrderCancelRequested` to the engine at once,
so the order's remainder is matched no more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3
from web3.logs import DISCARD

from backend.chain.anvil import Anvil
from backend.chain.artifacts import load
from backend.chain.deploy import Sender
from backend.devstack.demo import Demo, DemoConfig, DemoFailedError
from backend.domain.types import PRICE_SCALE, Side
from backend.eip712.domain import Domain
from backend.eip712.parsing import message_to_json
from tests.integration.e2e.test_round_trip import DevStack
from tests.integration.reconcile.test_withdrawal_release import _wait

pytestmark = pytest.mark.integration


def test_fill_in_flight_settles_and_the_engine_stops_matching_the_cancelled_order(
    tmp_path: Path, node: Anvil
) -> None:
    stack = DevStack(
        tmp_path,
        node.port,
        HYBRIDEX_RPC_URL=node.url,
        HYBRIDEX_DATABASE_URL=f"sqlite:///{tmp_path / 'dev.db'}",
        HYBRIDEX_BATCH_MAX_AGE_S="8",  # the fill stays in flight while the trader cancels
    )
    try:
        cfg = DemoConfig(api_url=stack.api, rpc_url=stack.rpc)
        demo = Demo(cfg, echo=lambda _line: None)
        seller, buyer = Account.from_key(cfg.seller_key), Account.from_key(cfg.buyer_key)
        info = demo.get("/v1/info")
        assert info["cancelDelaySeconds"] == 3_600
        domain = Domain(int(info["chainId"]), info["exchangeAddress"])
        market = demo.get(f"/v1/markets/{cfg.market}")
        base, quote = market["base"], market["quote"]
        lot = int(market["lotSize"]) * 1000
        price = 3000 * 10 ** quote["decimals"] * PRICE_SCALE // 10 ** base["decimals"]
        price -= price % int(market["tickSize"])
        notional = lot * price // PRICE_SCALE
        demo.deposit(cfg.seller_key, info["exchangeAddress"], base["address"], 3 * lot)
        demo.deposit(cfg.buyer_key, info["exchangeAddress"], quote["address"], 3 * notional)
        _wait("deposits credited", lambda: demo.available(buyer.address, quote["address"]) or None)
        _wait("deposits credited", lambda: demo.available(seller.address, base["address"]) or None)

        def place(key: str, trader: str, side: Side, amount: int) -> tuple[Any, str]:
            order = demo.order(trader, (base, quote), side, price=price, amount=amount)
            body = {"order": message_to_json(order), "signature": demo.signed(key, order, domain)}
            return order, str(demo.post("/v1/orders", body)["orderHash"])

        resting, resting_hash = place(cfg.seller_key, seller.address, Side.SELL, 3 * lot)
        place(cfg.buyer_key, buyer.address, Side.BUY, lot)  # matched: one lot in flight

        def fills() -> list[dict[str, Any]]:
            path = f"/v1/accounts/{buyer.address}/fills"
            return list(demo.get(path, as_trader=buyer.address)["fills"])

        (matched,) = _wait("the fill matched", lambda: fills() or None)
        assert matched["settlement"]["status"] in ("matched", "batched")

        # The seller cancels the rest on chain, front-running the fill's batch.
        w3 = Web3(Web3.HTTPProvider(node.url))
        exchange = w3.eth.contract(
            address=Web3.to_checksum_address(info["exchangeAddress"]), abi=load("Exchange").abi
        )
        o = resting
        receipt = Sender.from_key(w3, cfg.seller_key).transact(
            exchange.functions.cancelOrder(
                (
                    o.trader,
                    o.baseToken,
                    o.quoteToken,
                    int(o.side),
                    o.price,
                    o.amount,
                    int(o.timeInForce),
                    o.nonce,
                    o.expiry,
                    o.maxFeeBps,
                )
            )
        )
        (requested,) = exchange.events.OrderCancelRequested().process_receipt(
            receipt, errors=DISCARD
        )
        assert "0x" + bytes(requested["args"]["orderHash"]).hex() == resting_hash

        # The engine stops matching it at once (the indexer forwards the request).
        def cancelled() -> dict[str, Any] | None:
            row = demo.get(f"/v1/orders/{resting_hash}", as_trader=seller.address)
            return dict(row) if row["status"] == "cancelled" else None

        row = _wait("the engine cancels the order", cancelled, timeout=30)
        assert int(row["filled"]) == lot
        _, later_hash = place(cfg.buyer_key, buyer.address, Side.BUY, lot)

        # REST reads what the persister stored, a few ms after the engine's answer.
        def stored() -> dict[str, Any] | None:
            try:
                return dict(demo.get(f"/v1/orders/{later_hash}", as_trader=buyer.address))
            except DemoFailedError as exc:
                if "ORDER_NOT_FOUND" not in str(exc):
                    raise
                return None

        later = _wait("the later order is stored", stored)
        assert later["status"] == "open"
        assert later["filled"] == "0"
        assert len(fills()) == 1

        # The fill matched before the cancel settles on chain: the delay has not run out.
        def settled() -> dict[str, Any] | None:
            (f,) = fills()
            return f if f["settlement"]["status"] == "settled" else None

        _wait("the in-flight fill settles", settled, timeout=90)
        seller_quote = exchange.functions.balanceOf(seller.address, quote["address"]).call()
        assert seller_quote > 0
        buyer_base = exchange.functions.balanceOf(buyer.address, base["address"]).call()
        assert buyer_base > 0
        skipped = exchange.events.FillSkipped().get_logs(from_block=0)
        assert list(skipped) == []
    finally:
        stack.stop()
