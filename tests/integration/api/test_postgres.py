"""The API over PostgreSQL (the production database): intake, order state, balances, fills."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.domain.types import Side
from tests.unit.api.harness import ONE, PRICE, TRADERS, USDC, running_api

pytestmark = pytest.mark.integration


def test_trade_and_read_back_over_postgres(tmp_path: Path, pg_url: str) -> None:
    with running_api(tmp_path, db_url=pg_url) as h:
        maker = h.place(h.order(0, Side.SELL, PRICE, ONE)).json()
        taker = h.place(h.order(1, Side.BUY, PRICE, ONE)).json()
        assert taker["status"] == "filled"
        h.flush()
        assert (
            h.client.get(f"/v1/orders/{maker['orderHash']}", headers=h.as_trader(0)).json()[
                "status"
            ]
            == "filled"
        )
        balances = h.client.get(f"/v1/accounts/{TRADERS[1]}/balances", headers=h.as_trader(1))
        balances = balances.json()["balances"]
        usdc = next(b for b in balances if b["token"] == USDC)
        assert usdc["pendingSettlement"] == str(-PRICE)
        fills = h.client.get(f"/v1/accounts/{TRADERS[0]}/fills", headers=h.as_trader(0))
        fills = fills.json()["fills"]
        assert fills[0]["settlement"]["status"] == "matched"
        candles = h.client.get("/v1/markets/WETH-USDC/candles", params={"interval": "1d"})
        assert candles.json()["candles"][0]["volume"] == str(ONE)
        assert h.client.get("/ready").json()["status"] == "ok"
