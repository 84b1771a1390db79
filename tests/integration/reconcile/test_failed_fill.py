"""A fill the chain refuses for good has a defined end: the seller leaves through the exit
hatch between the match and its batch, the simulation refuses the fill (`TraderExited`), the
fill ends `failed`, the engine undoes it (RevertFill, exactly once), and the books balance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import select
from web3 import Web3

from backend.chain.anvil import Anvil, rpc_call
from backend.chain.artifacts import load
from backend.chain.deploy import Sender
from backend.db.models import FillRevert
from backend.db.session import make_engine
from backend.devstack.chain import DEV_EXIT_DELAY_BLOCKS
from backend.devstack.demo import Demo, DemoConfig
from backend.domain.types import PRICE_SCALE, Side
from backend.eip712.domain import Domain
from backend.eip712.parsing import message_to_json
from tests.integration.e2e.test_round_trip import DevStack
from tests.integration.reconcile.test_reconcile import _exchange_of, _reconcile
from tests.integration.reconcile.test_withdrawal_release import _balance, _wait

pytestmark = pytest.mark.integration


def test_a_fill_the_chain_refuses_ends_failed_and_is_undone(tmp_path: Path, node: Anvil) -> None:
    database_url = f"sqlite:///{tmp_path / 'dev.db'}"
    stack = DevStack(
        tmp_path,
        node.port,
        HYBRIDEX_RPC_URL=node.url,
        HYBRIDEX_DATABASE_URL=database_url,
        HYBRIDEX_BATCH_MAX_AGE_S="6",  # time for the seller's exit to take effect first
    )
    try:
        cfg = DemoConfig(api_url=stack.api, rpc_url=stack.rpc)
        demo = Demo(cfg, echo=lambda _line: None)
        seller, buyer = Account.from_key(cfg.seller_key), Account.from_key(cfg.buyer_key)
        info = demo.get("/v1/info")
        domain = Domain(int(info["chainId"]), info["exchangeAddress"])
        market = demo.get(f"/v1/markets/{cfg.market}")
        base, quote = market["base"], market["quote"]
        amount = int(market["lotSize"]) * 1000
        price = 3000 * 10 ** quote["decimals"] * PRICE_SCALE // 10 ** base["decimals"]
        price -= price % int(market["tickSize"])
        notional = amount * price // PRICE_SCALE
        demo.deposit(cfg.seller_key, info["exchangeAddress"], base["address"], amount)
        demo.deposit(cfg.buyer_key, info["exchangeAddress"], quote["address"], notional)
        _wait("deposits credited", lambda: demo.available(buyer.address, quote["address"]) or None)
        _wait("deposits credited", lambda: demo.available(seller.address, base["address"]) or None)
        for key, trader, side in ((cfg.seller_key, seller.address, Side.SELL),
                                  (cfg.buyer_key, buyer.address, Side.BUY)):  # fmt: skip
            order = demo.order(trader, (base, quote), side, price=price, amount=amount)
            body = {"order": message_to_json(order), "signature": demo.signed(key, order, domain)}
            demo.post("/v1/orders", body)
        received = _wait(
            "the buyer's proceeds", lambda: demo.available(buyer.address, base["address"]) or None
        )
        assert received > 0

        # The seller leaves through the exit hatch before the fill's batch is formed.
        w3 = Web3(Web3.HTTPProvider(node.url))
        exchange = w3.eth.contract(
            address=Web3.to_checksum_address(info["exchangeAddress"]), abi=load("Exchange").abi
        )
        Sender.from_key(w3, cfg.seller_key).transact(exchange.functions.requestExit())
        rpc_call(node.url, "anvil_mine", [hex(DEV_EXIT_DELAY_BLOCKS + 1)])

        def failed_fill() -> dict[str, Any] | None:
            for row in demo.get(f"/v1/accounts/{buyer.address}/fills", as_trader=buyer.address)[
                "fills"
            ]:
                if row["settlement"]["status"] == "failed":
                    return dict(row)
            return None

        fill = _wait("the fill fails in simulation", failed_fill)
        assert fill["settlement"]["failureReason"].startswith("TraderExited(")

        def undone() -> dict[str, Any] | None:
            b = _balance(demo, buyer.address, base["address"])
            return b if b["available"] == "0" and b["locked"] == "0" else None

        _wait("the buyer's proceeds taken back", undone)
        assert _balance(demo, buyer.address, quote["address"])["available"] == str(notional)
        assert _balance(demo, seller.address, base["address"])["available"] == str(amount)
        assert _balance(demo, seller.address, quote["address"])["available"] == "0"

        engine = make_engine(database_url)
        with engine.connect() as db:
            rows = db.execute(select(FillRevert)).all()
        engine.dispose()
        assert [(r.status, r.outcome, r.attempts) for r in rows] == [("done", "applied", 1)]

        # The books balance, and the failed fill is counted as resolved.
        code, report = _reconcile(tmp_path, stack, _exchange_of(stack), database_url)
        assert report["discrepancies"] == [], report
        assert report["revertedFills"] == 1
        assert code == 0
    finally:
        stack.stop()
