"""A real API over a real in-process engine (journal in a temp dir, DB persister, memory feeds),
driven through Starlette's TestClient on the same event loop as the engine."""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio.from_thread
import httpx
from eth_account import Account
from eth_utils.address import to_checksum_address
from sqlalchemy.orm import Session, sessionmaker

with warnings.catch_warnings():  # starlette suggests httpx2, which is not installed here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient, WebSocketTestSession

from backend.api.app import create_app
from backend.api.ratelimit import MemoryRateLimiter, RateLimiter
from backend.api.sessions import HEADER, session_token
from backend.config import Settings
from backend.db.base import Base
from backend.db.session import make_engine, session_factory
from backend.domain.types import Side, TimeInForce
from backend.eip712.domain import Domain
from backend.eip712.hashing import digest
from backend.eip712.messages import Cancel, CancelAll, Message, Order, ScheduleCancel
from backend.eip712.parsing import message_to_json
from backend.eip712.signing import sign
from backend.engine.client import BookSnapshot, Intake, Outcome, TokenInfo
from backend.engine.feed_memory import MemoryFeedStore
from backend.engine.inprocess import InProcessEngineClient
from backend.engine.service import EngineService
from backend.matching.commands import AddMarket, Command, Credit, MarketSpec
from tests.unit.api.contract import Contract
from tests.unit.api.wscontract import WsContract

T = TypeVar("T")

CHAIN_ID = 31337
EXCHANGE = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DOMAIN = Domain(CHAIN_ID, EXCHANGE)
WETH = to_checksum_address("0x" + "e1" * 20)
USDC = to_checksum_address("0x" + "c6" * 20)
MARKET = "WETH-USDC"
TICK = 10**4  # 0.01 USDC per WETH
LOT = 10**14  # 0.0001 WETH
ONE = 10**18  # 1 WETH
PRICE = 3_000 * 10**6  # 3000 USDC per WETH, 18-decimal fixed point of quote/base units
KEYS = ["0x" + f"{i + 1:064x}" for i in range(6)]
TRADERS = [Account.from_key(k).address for k in KEYS]
FUNDS = {WETH: 100 * ONE, USDC: 1_000_000 * 10**6}

FAST_LIMITS: dict[str, Any] = {
    "api_rate_ip_per_s": 10_000.0,
    "api_rate_ip_burst": 10_000,
    "api_rate_trader_per_s": 10_000.0,
    "api_rate_trader_burst": 10_000,
}


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "chain_id": CHAIN_ID,
        "exchange_address": EXCHANGE,
        "api_rate_limiter": "memory",
        "api_engine_timeout_s": 5.0,
        **FAST_LIMITS,
        **overrides,
    }
    return Settings(**values)


class Harness:
    def __init__(
        self,
        portal: anyio.from_thread.BlockingPortal,
        service: EngineService,
        engine: InProcessEngineClient,
        feeds: MemoryFeedStore,
        sessions: sessionmaker[Session],
        client: TestClient,
        cfg: Settings,
    ) -> None:
        self.portal = portal
        self.service = service
        self.engine = engine
        self.feeds = feeds
        self.sessions = sessions
        self.client = client
        self.settings = cfg
        self.nonce = 1_000
        self.contract: Contract | None = None
        """Every answer `client` gets is checked against the app's OpenAPI document."""

    @property
    def ctx(self) -> Any:
        return self.client.app.state.ctx  # type: ignore[attr-defined]

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        return self.portal.call(functools.partial(fn, *args, **kwargs))

    def submit(self, command: Command, intake: Intake | None = None) -> Outcome:
        return self.run(self.engine.submit, command, timeout=5.0, intake=intake)

    def book(self, depth: int = 100) -> BookSnapshot:
        return self.run(self.engine.book, MARKET, depth)

    def engine_balances(self) -> list[tuple[str, str, int, int]]:
        async def read() -> list[tuple[str, str, int, int]]:
            return self.service.engine.balance_rows()

        return self.run(read)

    def state(self) -> tuple[Any, Any]:
        book = self.book()
        return (book.bids, book.asks), self.engine_balances()

    def wait_feed(self, channel: str, seq: int, timeout: float = 5.0) -> None:
        """Until the feed store holds `channel` up to `seq` (the engine writes its feeds a
        few milliseconds after it answers)."""
        feeds = self.service.feeds
        assert feeds is not None
        deadline = time.monotonic() + timeout
        while self.run(feeds.latest_seq, channel) < seq:
            assert time.monotonic() < deadline, f"{channel} never reached seq {seq}"
            time.sleep(0.005)

    def flush(self) -> None:
        sink = self.service.sink
        assert sink is not None
        sink.flush()  # type: ignore[attr-defined]

    # -------------------------------------------------------------- signed messages

    def next_nonce(self) -> int:
        self.nonce += 1
        return self.nonce

    def order(
        self,
        who: int,
        side: Side,
        price: int = PRICE,
        amount: int = ONE,
        *,
        tif: TimeInForce = TimeInForce.GTC,
        nonce: int | None = None,
        expiry: int = 0,
        base: str = WETH,
        quote: str = USDC,
    ) -> Order:
        return Order(
            TRADERS[who], base, quote, side, price, amount, tif,
            self.next_nonce() if nonce is None else nonce, expiry,
        )  # fmt: skip

    @staticmethod
    def signed(msg: Message, key: str, domain: Domain = DOMAIN) -> str:
        return "0x" + sign(msg, domain, key).to_bytes().hex()

    @staticmethod
    def as_trader(who: int) -> dict[str, str]:
        """Headers of a private read as trader `who` (a signed read Session)."""
        return {HEADER: session_token(TRADERS[who], KEYS[who], DOMAIN)}

    def order_body(self, order: Order, key: str | None = None, **extra: Any) -> dict[str, Any]:
        key = key or KEYS[TRADERS.index(order.trader)]
        return {"order": message_to_json(order), "signature": self.signed(order, key), **extra}

    def place(self, order: Order, **extra: Any) -> Any:
        return self.client.post("/v1/orders", json=self.order_body(order, **extra))

    def cancel_body(self, order: Order, who: int | None = None) -> dict[str, Any]:
        who = TRADERS.index(order.trader) if who is None else who
        msg = Cancel(TRADERS[who], digest(order, DOMAIN))
        return {"cancel": message_to_json(msg), "signature": self.signed(msg, KEYS[who])}

    def cancel(self, order: Order, who: int | None = None) -> Any:
        h = digest(order, DOMAIN)
        body = self.cancel_body(order, who)
        return self.client.request("DELETE", f"/v1/orders/0x{h.hex()}", json=body)

    def batch(self, *items: dict[str, Any]) -> Any:
        return self.client.post("/v1/orders/batch", json={"items": list(items)})

    def cancel_all_body(
        self, who: int, nonce_below: int, *, every_market: bool = False
    ) -> dict[str, Any]:
        zero = "0x" + "00" * 20
        msg = CancelAll(
            TRADERS[who], zero if every_market else WETH, zero if every_market else USDC,
            nonce_below,
        )  # fmt: skip
        return {"cancelAll": message_to_json(msg), "signature": self.signed(msg, KEYS[who])}

    def cancel_all(self, who: int, nonce_below: int, *, every_market: bool = False) -> Any:
        body = self.cancel_all_body(who, nonce_below, every_market=every_market)
        return self.client.post("/v1/orders/cancel-all", json=body)

    def schedule_cancel_body(
        self, who: int, at: int, nonce: int, *, key: str | None = None
    ) -> dict[str, Any]:
        msg = ScheduleCancel(TRADERS[who], at, nonce)
        return {"scheduleCancel": message_to_json(msg),
                "signature": self.signed(msg, key or KEYS[who])}  # fmt: skip

    def schedule_cancel(self, who: int, at: int, nonce: int, *, key: str | None = None) -> Any:
        body = self.schedule_cancel_body(who, at, nonce, key=key)
        return self.client.post("/v1/orders/schedule-cancel", json=body)


# One document, parsed and compiled once for every harness.
WS_CONTRACT = WsContract()


class CheckedClient(TestClient):
    """A TestClient whose WebSocket sessions check every JSON message they receive against
    docs/asyncapi.yaml (as every HTTP answer is checked against the OpenAPI document)."""

    def websocket_connect(self, *args: Any, **kwargs: Any) -> WebSocketTestSession:
        session = super().websocket_connect(*args, **kwargs)
        receive_json = session.receive_json

        def checked(mode: Any = "text") -> Any:
            message = receive_json(mode)
            WS_CONTRACT.check_server(message)
            return message

        session.receive_json = checked  # type: ignore[method-assign]
        return session


def _check_answer(contract: Contract, response: httpx.Response) -> None:
    response.read()
    contract.check(
        response.request.method,
        response.request.url.path,
        response.status_code,
        response.headers.get("content-type", ""),
        response.content,
    )


def market_spec() -> MarketSpec:
    return MarketSpec(MARKET, WETH, USDC, TICK, LOT, LOT, maker_fee_bps=10, taker_fee_bps=20)


@contextmanager
def running_api(
    tmp_path: Path,
    *,
    limiter: RateLimiter | None = None,
    feeds: MemoryFeedStore | None = None,
    fund: bool = True,
    db_url: str | None = None,
    **overrides: Any,
) -> Iterator[Harness]:
    url = db_url or f"sqlite:///{tmp_path / 'api.db'}"
    db = make_engine(url)
    if db_url is None:
        Base.metadata.create_all(db)
    else:
        from backend.db.migrate import upgrade

        upgrade(db_url)
    sessions = session_factory(db)
    feeds = feeds or MemoryFeedStore()
    cfg = settings(database_url=url, **overrides)
    with anyio.from_thread.start_blocking_portal() as portal:
        service = portal.call(
            functools.partial(
                EngineService.open,
                journal_dir=tmp_path / "journal",
                session_factory=sessions,
                feeds=feeds,
            )
        )
        engine = InProcessEngineClient(service)
        app = create_app(
            settings=cfg,
            engine=engine,
            feeds=feeds,
            sessions=sessions,
            limiter=limiter or MemoryRateLimiter(),
        )
        client = CheckedClient(app, raise_server_exceptions=True)
        client.portal = portal
        contract = Contract(app.openapi())
        client.event_hooks = {"response": [functools.partial(_check_answer, contract)]}
        h = Harness(portal, service, engine, feeds, sessions, client, cfg)
        h.contract = contract
        tokens = (TokenInfo(WETH, "WETH", 18), TokenInfo(USDC, "USDC", 6))
        h.submit(AddMarket(0, 0, market_spec()), Intake(tokens=tokens))
        if fund:
            for trader in TRADERS[:4]:
                for token, amount in FUNDS.items():
                    h.submit(Credit(0, 0, trader, token, amount))
        h.flush()
        try:
            yield h
        finally:
            client.portal = None
            portal.call(engine.close)
            db.dispose()
