"""What the indexer writes is what the API shows: `seen` with confirmations left, then credited."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from backend.db import unit_of_work
from backend.db.models.indexer import Deposit, IndexerCursor
from backend.db.models.reference import Token
from backend.domain.types import DepositStatus
from tests.unit.api.harness import TRADERS, WETH, running_api


def test_deposits_route_shows_seen_with_confirmations_left_then_credited(tmp_path: Path) -> None:
    with running_api(tmp_path, confirmations=5) as api:
        with unit_of_work(api.sessions) as s:
            if s.scalar(select(Token.address).where(Token.address == WETH)) is None:
                s.add(Token(address=WETH, symbol="WETH", decimals=18))
            for i, (block, status) in enumerate(
                [
                    (100, DepositStatus.CREDITED),
                    (103, DepositStatus.SEEN),
                    (108, DepositStatus.SEEN),
                ]
            ):
                s.add(
                    Deposit(
                        block_hash=bytes([i + 1]) * 32,
                        log_index=0,
                        tx_hash=bytes([i + 9]) * 32,
                        block_number=block,
                        trader=TRADERS[0],
                        token=WETH,
                        amount=10**18 + i,
                        status=status,
                        credited_seq=7 if status is DepositStatus.CREDITED else None,
                    )
                )
            s.add(
                IndexerCursor(name="exchange", chain_id=1, block_number=106, block_hash=b"\0" * 32)
            )
        body = api.client.get(
            f"/v1/accounts/{TRADERS[0]}/deposits", headers=api.as_trader(0)
        ).json()
        assert body["indexedBlock"] == 106
        assert body["confirmations"] == 5
        rows = {d["blockNumber"]: d for d in body["deposits"]}
        assert rows[100]["status"] == "credited"
        assert rows[100]["confirmationsLeft"] is None
        assert rows[100]["creditedSeq"] == 7
        assert (rows[103]["status"], rows[103]["confirmationsLeft"]) == ("seen", 2)  # 106-103=3
        assert (rows[108]["status"], rows[108]["confirmationsLeft"]) == ("seen", 5)  # above tip
        assert rows[103]["amount"] == str(10**18 + 1)
