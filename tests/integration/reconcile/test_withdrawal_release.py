"""A withdrawal that fails for good gives its funds back at once (not after the exit hatch's
days): the buyer withdraws proceeds the chain does not hold yet (their fill is unsettled),
the simulation refuses it, and the engine releases the reservation — exactly once."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import select

from backend.chain.anvil import Anvil
from backend.db.models import WithdrawalRelease
from backend.db.session import make_engine
from backend.devstack.demo import Demo, DemoConfig
from backend.domain.types import PRICE_SCALE, Side
from backend.eip712.domain import Domain
from backend.eip712.messages import Withdrawal
from backend.eip712.parsing import message_to_json
from tests.integration.e2e.test_round_trip import DevStack
from tests.integration.reconcile.test_reconcile import _exchange_of, _reconcile

pytestmark = pytest.mark.integration


def _balance(demo: Demo, trader: str, token: str) -> dict[str, Any]:
    for b in demo.get(f"/v1/accounts/{trader}/balances", as_trader=trader)["balances"]:
        if b["token"].lower() == token.lower():
            return dict(b)
    return {"available": "0", "locked": "0"}


def _wait(what: str, probe: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while (got := probe()) is None:
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return got


def test_a_withdrawal_the_chain_refuses_releases_its_funds(tmp_path: Path, node: Anvil) -> None:
    database_url = f"sqlite:///{tmp_path / 'dev.db'}"
    stack = DevStack(
        tmp_path,
        node.port,
        HYBRIDEX_RPC_URL=node.url,
        HYBRIDEX_DATABASE_URL=database_url,
        HYBRIDEX_BATCH_MAX_AGE_S="3600",  # the trade stays unsettled for the whole test
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
        demo.deposit(cfg.seller_key, info["exchangeAddress"], base["address"], amount)
        demo.deposit(
            cfg.buyer_key, info["exchangeAddress"], quote["address"], amount * price // PRICE_SCALE
        )
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

        # The engine holds the proceeds; the chain will only once the fill settles.
        w = Withdrawal(buyer.address, base["address"], received, 1, int(time.time()) + 3_600)
        answer = demo.post(
            "/v1/withdrawals",
            {"withdrawal": message_to_json(w), "signature": demo.signed(cfg.buyer_key, w, domain)},
        )
        assert answer["status"] == "reserved"

        def failed() -> dict[str, Any] | None:
            for row in demo.get(
                f"/v1/accounts/{buyer.address}/withdrawals", as_trader=buyer.address
            )["withdrawals"]:
                if row["status"] == "failed":
                    return dict(row)
            return None

        _wait("the withdrawal fails in simulation", failed)

        def unlocked() -> dict[str, Any] | None:
            b = _balance(demo, buyer.address, base["address"])
            return b if b["locked"] == "0" else None

        released = _wait("the reservation released", unlocked)
        assert int(released["available"]) == received

        engine = make_engine(database_url)
        with engine.connect() as db:
            rows = db.execute(select(WithdrawalRelease)).all()
        engine.dispose()
        assert [(r.status, r.outcome) for r in rows] == [("done", "applied")]

        # The books still balance: the unsettled fill explains the buyer's ledger.
        code, report = _reconcile(tmp_path, stack, _exchange_of(stack), database_url)
        assert report["discrepancies"] == [], report
        assert report["inFlight"]["fills"] == 1
        assert code == 0
    finally:
        stack.stop()
