"""A withdrawal end to end over HTTP: `POST /v1/withdrawals` → the engine's journaled
reservation → the Celery worker process submits `withdraw` → the indexer sees `Withdrawn` and
debits the engine → `GET /v1/accounts/{address}/withdrawals` and the balances show it. And the
clear 4xx answers: bad signature, more than available, reused nonce, exiting trader."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio.from_thread
import pytest
from starlette.testclient import TestClient

from backend.api.app import create_app
from backend.api.ratelimit import MemoryRateLimiter
from backend.api.sessions import HEADER, session_token
from backend.config import Settings
from backend.eip712.messages import Withdrawal
from backend.eip712.parsing import message_to_json
from backend.eip712.signing import sign
from backend.engine.client import Intake, Outcome
from backend.engine.feed_memory import MemoryFeedStore
from backend.engine.inprocess import InProcessEngineClient
from backend.engine.service import EngineService
from backend.matching.commands import Command
from indexer.daemon import Indexer, IndexerConfig
from indexer.engine_sink import JournalDirLookup
from indexer.projection import Outbox
from indexer.rpc import Backoff, RpcClient
from tests.integration.settlement.conftest import OPERATOR_KEY, Stack
from tests.unit.contracts.harness import UNIT, Account

pytestmark = pytest.mark.integration


@dataclass
class PortalSink:
    """The indexer's `CommandSink` over the engine running on the test's portal loop."""

    portal: anyio.from_thread.BlockingPortal
    client: InProcessEngineClient

    def submit(self, command: Command, *, ref: bytes) -> Outcome:
        return self.portal.call(
            functools.partial(
                self.client.submit, command, timeout=10.0, intake=Intake(signed_hash=ref)
            )
        )


@dataclass
class Live:
    stack: Stack
    service: EngineService
    http: TestClient
    indexer: Indexer

    def flush(self) -> None:
        sink = self.service.sink
        assert sink is not None
        sink.flush()  # type: ignore[attr-defined]

    def sync(self) -> None:
        self.stack.h.mine(2)  # the indexer's confirmation depth
        self.indexer.run_until_synced()
        self.flush()

    def post(self, w: Withdrawal, key: str) -> Any:
        sig = sign(w, self.stack.h.domain, key).to_bytes()
        body = {"withdrawal": message_to_json(w), "signature": "0x" + sig.hex()}
        return self.http.post("/v1/withdrawals", json=body)

    def as_trader(self, trader: Account) -> dict[str, str]:
        return {HEADER: session_token(trader.address, trader.key, self.stack.h.domain)}

    def withdrawals(self, trader: Account) -> list[dict[str, Any]]:
        answer = self.http.get(
            f"/v1/accounts/{trader.address}/withdrawals", headers=self.as_trader(trader)
        )
        assert answer.status_code == 200, answer.text
        rows: list[dict[str, Any]] = answer.json()["withdrawals"]
        return rows

    def balance(self, trader: Account, token: str) -> dict[str, Any]:
        answer = self.http.get(
            f"/v1/accounts/{trader.address}/balances", headers=self.as_trader(trader)
        )
        assert answer.status_code == 200, answer.text
        (row,) = [b for b in answer.json()["balances"] if b["token"] == token]
        return dict(row)


@contextmanager
def live(stack: Stack) -> Iterator[Live]:
    h = stack.h
    stack.engine(stack.listing())  # the market and its tokens, persisted
    settings = Settings(
        mode="dev",
        database_url=stack.db_url,
        chain_id=h.w3.eth.chain_id,
        exchange_address=h.exchange.address,
        api_rate_limiter="memory",
        api_engine_timeout_s=5.0,
        operator_key=OPERATOR_KEY,
    )
    with anyio.from_thread.start_blocking_portal() as portal:
        service = portal.call(
            functools.partial(
                EngineService.open,
                journal_dir=stack.tmp / "journal",
                session_factory=stack.factory,
                fee_recipient=h.fee_recipient.address,
                sweep_interval=3600,
            )
        )
        client = InProcessEngineClient(service)
        app = create_app(
            settings=settings,
            engine=client,
            feeds=MemoryFeedStore(),
            sessions=stack.factory,
            limiter=MemoryRateLimiter(),
        )
        http = TestClient(app, raise_server_exceptions=True)
        http.portal = portal  # the engine's loop
        rpc = RpcClient(stack.node.url, timeout_s=10, backoff=Backoff(base_s=0.01))
        outbox = Outbox(
            stack.factory, PortalSink(portal, client), JournalDirLookup(stack.tmp / "journal")
        )
        config = IndexerConfig(
            exchange_address=h.exchange.address,
            chain_id=int(h.w3.eth.chain_id),
            confirmations=2,
            reorg_window=16,
            poll_interval_s=0.05,
        )
        indexer = Indexer(config, rpc, stack.factory, outbox)
        indexer.check_chain()
        try:
            yield Live(stack, service, http, indexer)
        finally:
            http.portal = None
            rpc.close()
            portal.call(client.close)


def test_withdrawal_over_http_is_reserved_sent_confirmed_and_debited(stack: Stack) -> None:
    h = stack.h
    alice, mallory = h.traders[0], h.traders[1]
    weth = h.weth.address
    with live(stack) as s:
        h.fund(alice, h.weth, UNIT)  # on chain; the indexer credits the engine
        s.sync()
        assert s.balance(alice, weth)["available"] == str(UNIT)
        stack.start_worker()

        w = h.withdrawal(alice, h.weth, UNIT // 4)
        forged = s.post(w, mallory.key)
        assert forged.status_code == 401
        assert forged.json()["error"]["code"] == "INVALID_SIGNATURE"
        too_much = s.post(h.withdrawal(alice, h.weth, UNIT + 1), alice.key)
        assert too_much.status_code == 422
        assert too_much.json()["error"]["code"] == "INSUFFICIENT_BALANCE"

        ok = s.post(w, alice.key)
        assert ok.status_code == 200, ok.text
        assert ok.json()["status"] == "reserved"
        assert ok.json()["withdrawalId"] == f"{alice.address}:{w.nonce}"
        assert s.post(w, alice.key).json() == ok.json()  # the same signed withdrawal again
        reused = s.post(h.withdrawal(alice, h.weth, UNIT // 8, nonce=w.nonce), alice.key)
        assert reused.status_code == 409
        assert reused.json()["error"]["code"] == "NONCE_REUSED"
        s.flush()
        locked = s.balance(alice, weth)
        assert (locked["available"], locked["locked"]) == (str(UNIT - UNIT // 4), str(UNIT // 4))

        before = h.weth.functions.balanceOf(alice.address).call()
        stack.wait("withdrawal confirmed", lambda: s.withdrawals(alice)[0]["status"] == "confirmed")
        assert h.weth.functions.balanceOf(alice.address).call() == before + UNIT // 4
        (row,) = [r for r in s.withdrawals(alice) if r["nonce"] == str(w.nonce)]
        assert row["txHash"] is not None
        assert row["block"] is not None
        receipt = h.w3.eth.get_transaction_receipt(row["txHash"])
        assert receipt["blockNumber"] == row["block"]
        assert receipt["status"] == 1
        assert row["indexed"] is None  # the indexer has not seen it yet

        s.sync()  # Withdrawn → Debit(withdrawal_id): the reservation is consumed
        (row,) = [r for r in s.withdrawals(alice) if r["nonce"] == str(w.nonce)]
        assert row["indexed"] == {"block": row["block"], "debited": True}
        after = s.balance(alice, weth)
        left = str(UNIT - UNIT // 4)
        assert (after["total"], after["available"], after["locked"]) == (left, left, "0")
        assert after["onChain"] == left
        assert h.exchange.balance_of(alice.address, weth) == UNIT - UNIT // 4
        # the engine's refusal is listed with its code; a forged signature never reached it
        listed = sorted((r["nonce"], r["status"], r["rejectCode"]) for r in s.withdrawals(alice))
        assert listed == [("0", "confirmed", None), ("1", "rejected", "INSUFFICIENT_BALANCE")]

        # An exiting trader is refused (the indexer froze them in the engine).
        h.fund(mallory, h.weth, UNIT)
        h.send(h.contract.functions.requestExit(), mallory)
        s.sync()
        exiting = s.post(h.withdrawal(mallory, h.weth, UNIT // 2), mallory.key)
        assert exiting.status_code == 403
        assert exiting.json()["error"]["code"] == "ACCOUNT_EXITING"
        assert s.withdrawals(mallory) == []
    assert OPERATOR_KEY[2:].lower() not in stack.worker_log().lower()


def test_settled_trades_move_on_chain_balances_to_what_the_contract_holds(stack: Stack) -> None:
    """BatchSettled, confirmed: `onChain` follows the fills (not only deposits/withdrawals) and
    the fees, so `total = onChain + pendingSettlement` holds once nothing is left to settle,
    for the traders and for the fee recipient (found from the indexed `FeeRecipientSet`)."""
    h = stack.h
    seller, buyer = h.traders[2], h.traders[3]
    tokens = (h.weth.address, h.usdc.address)
    with live(stack) as s:
        h.fund(seller, h.weth, 10 * UNIT)
        h.fund(buyer, h.usdc, 10**13)
        s.sync()
        for cmd, intake in stack.trades([(seller, buyer, 3), (seller, buyer, 2)]):
            s.http.portal.call(functools.partial(s.service.submit, cmd, intake))  # type: ignore[union-attr]
        s.flush()
        pending = s.balance(buyer, h.weth.address)["pendingSettlement"]
        assert int(pending) > 0  # matched, not settled yet
        for token in tokens:  # maker and taker fees, each in the token its payer receives
            assert int(s.balance(h.fee_recipient, token)["pendingSettlement"]) > 0
        stack.start_worker()
        stack.wait("fills settled", stack.all_settled)
        s.sync()  # BatchSettled confirmed: the ledger takes the batch's fills and fees
        for trader in (seller, buyer, h.fee_recipient):
            for token in tokens:
                row = s.balance(trader, token)
                assert int(row["onChain"]) == h.exchange.balance_of(trader.address, token)
                assert row["pendingSettlement"] == "0"
                assert row["total"] == row["onChain"]
