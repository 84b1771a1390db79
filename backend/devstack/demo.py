"""`hybridex demo`: a scripted round trip against a running stack, as a trader's client does it.

Two dev accounts approve and deposit on chain, wait until the indexer has credited them, sign
crossing orders (EIP-712, through eth_account's typed-data encoder as a wallet would), watch
the fill go `matched → submitted → settled`, withdraw what the buyer received, and compare
on-chain balances before and after. Only public interfaces are used: the REST API and the
chain's JSON-RPC. Any step that does not happen within its timeout fails the demo.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hybridex_client import SELL as SDK_SELL
from hybridex_client import ApiError, Client
from web3 import Web3

from backend.chain.artifacts import load
from backend.chain.deploy import Sender
from backend.config import DEV_PRIVATE_KEYS
from backend.domain.types import PRICE_SCALE, Side, TimeInForce
from backend.eip712.domain import Domain
from backend.eip712.messages import Message, Order
from backend.eip712.signing import sign_typed

T = TypeVar("T")
SPINNER = "|/-\\"


class DemoFailedError(Exception):
    """A step did not happen in time, or the API refused something it should accept."""


@dataclass(frozen=True)
class DemoConfig:
    api_url: str = "http://127.0.0.1:8000"
    rpc_url: str = "http://127.0.0.1:8545"
    market: str = "WETH-USDC"
    step_timeout_s: float = 60.0
    seller_key: str = DEV_PRIVATE_KEYS[1]
    buyer_key: str = DEV_PRIVATE_KEYS[2]


class Demo:
    def __init__(self, config: DemoConfig, echo: Callable[[str], None]) -> None:
        self.config = config
        self.echo = echo
        self.http = httpx.Client(base_url=config.api_url, timeout=10.0)
        self.w3 = Web3(Web3.HTTPProvider(config.rpc_url, request_kwargs={"timeout": 30}))
        self.step_no = 0
        # Per-trader counters as nonces: increasing (CancelAll works) and dense (cheap on chain).
        self._nonce = itertools.count(time.time_ns() // 1_000_000)
        # The API is spoken through hybridex-client, one client per dev trader.
        # the configured traders, and the dev accounts (the keys `hybridex dev` prints)
        self.clients = {
            Account.from_key(k).address: Client(config.api_url, k)
            for k in dict.fromkeys((config.seller_key, config.buyer_key, *DEV_PRIVATE_KEYS))
        }

    # ------------------------------------------------------------------ plumbing

    def step(self, title: str) -> None:
        self.step_no += 1
        self.echo(f"[{self.step_no}] {title}")

    def wait(self, what: str, probe: Callable[[], T | None]) -> T:
        """Polls `probe` until it returns something, showing a spinner; fails on timeout."""
        deadline = time.monotonic() + self.config.step_timeout_s
        started = time.monotonic()
        for tick in itertools.count():
            value = probe()
            if value is not None:
                self.echo(f"    ✓ {what} ({time.monotonic() - started:.1f}s)")
                return value
            if time.monotonic() > deadline:
                raise DemoFailedError(f"timed out after {self.config.step_timeout_s:.0f}s: {what}")
            if tick % 10 == 0:
                self.echo(f"    {SPINNER[(tick // 10) % 4]} waiting: {what}")
            time.sleep(0.2)
        raise AssertionError("unreachable")

    def get(self, path: str, *, as_trader: str | None = None) -> Any:
        """GET `path`; `as_trader`: a private read with that trader's signed read Session."""
        client = next(iter(self.clients.values())) if as_trader is None else None
        if as_trader is not None:
            client = self.clients.get(Web3.to_checksum_address(as_trader))
            if client is None:
                raise DemoFailedError(f"no key for {as_trader}: its private data cannot be read")
        assert client is not None
        try:
            return client.get(path, private=as_trader is not None)
        except ApiError as exc:
            raise DemoFailedError(f"GET {path}: {exc}") from None

    def post(self, path: str, body: dict[str, Any]) -> Any:
        r = self.http.post(path, json=body)
        if r.status_code not in (200, 202):
            raise DemoFailedError(f"POST {path}: {r.status_code} {r.text}")
        return r.json()

    def signed(self, key: str, msg: Message, domain: Domain) -> str:
        return "0x" + sign_typed(msg, domain, key).to_bytes().hex()

    # ------------------------------------------------------------------ the round trip

    def run(self) -> None:
        cfg = self.config
        seller: LocalAccount = Account.from_key(cfg.seller_key)
        buyer: LocalAccount = Account.from_key(cfg.buyer_key)

        self.step(f"Connecting to the API at {cfg.api_url} and the chain at {cfg.rpc_url}")
        info = self.get("/v1/info")
        if int(self.w3.eth.chain_id) != int(info["chainId"]):
            raise DemoFailedError("the API and the RPC node are on different chains")
        market = self.get(f"/v1/markets/{cfg.market}")
        base, quote = market["base"], market["quote"]
        exchange = Web3.to_checksum_address(info["exchangeAddress"])
        self.echo(f"    Exchange {exchange}, market {cfg.market} ({market['state']})")

        lot, tick = int(market["lotSize"]), int(market["tickSize"])
        amount = max(int(market["minAmount"]), lot) * 1000  # 1 WETH with the demo's lot sizes
        amount -= amount % lot
        # 3000 quote tokens per whole base token, in price units, on the tick grid.
        price = 3000 * 10 ** quote["decimals"] * PRICE_SCALE // 10 ** base["decimals"]
        price -= price % tick
        quote_amount = amount * price // PRICE_SCALE

        before = self.chain_balances(exchange, [seller.address, buyer.address], [base, quote])
        self.print_balances("On-chain balances before", before, [base, quote])

        self.step("Approving and depositing on chain")
        self.deposit(cfg.seller_key, exchange, base["address"], amount)
        self.echo(f"    seller {seller.address} deposited {amount} {base['symbol']} base units")
        self.deposit(cfg.buyer_key, exchange, quote["address"], quote_amount)
        self.echo(f"    buyer  {buyer.address} deposited {quote_amount} {quote['symbol']} units")

        self.step("Waiting until the indexer has credited both deposits")
        self.wait(
            "seller credited",
            lambda: self.available(seller.address, base["address"]) >= amount or None,
        )
        self.wait(
            "buyer credited",
            lambda: self.available(buyer.address, quote["address"]) >= quote_amount or None,
        )

        self.step(f"Placing crossing signed orders: sell then buy {amount} at price {price}")
        sell_client, buy_client = self.clients[seller.address], self.clients[buyer.address]
        try:
            placed = sell_client.place(cfg.market, SDK_SELL, price, amount)
            self.echo(f"    ask {placed.order_hash}: {placed.status}")
            taken = buy_client.place(cfg.market, int(Side.BUY), price, amount)
        except ApiError as exc:
            raise DemoFailedError(f"POST /v1/orders: {exc}") from None
        self.echo(f"    bid {taken.order_hash}: {taken.status}, filled {taken.filled}")

        self.step("Following the fill: matched → submitted → settled")
        fill = self.follow_fill(buyer.address, taken.order_hash)
        settlement = fill["settlement"]
        self.echo(
            f"    batch {settlement['batchId']}, tx {settlement['txHash']}, "
            f"block {settlement['block']}"
        )

        self.step("Withdrawing what the buyer received")
        received = self.available(buyer.address, base["address"])
        try:
            posted = buy_client.withdraw(base["address"], received)
        except ApiError as exc:
            raise DemoFailedError(f"POST /v1/withdrawals: {exc}") from None
        answer = {"withdrawalHash": posted.withdrawal_hash, "status": posted.status}
        self.echo(f"    withdrawal {answer.get('withdrawalHash')}: {answer.get('status')}")
        done = self.wait(
            f"withdrawal of {received} {base['symbol']} units confirmed on chain",
            lambda: self.withdrawal_done(buyer.address, answer.get("withdrawalHash")),
        )
        self.echo(f"    tx {done.get('txHash')}, block {done.get('block')}")

        after = self.chain_balances(exchange, [seller.address, buyer.address], [base, quote])
        self.print_balances("On-chain balances after", after, [base, quote])
        gained = (
            after[(buyer.address, base["address"])][0] - before[(buyer.address, base["address"])][0]
        )
        if gained != received:
            raise DemoFailedError(f"buyer's wallet gained {gained}, expected {received}")
        self.echo("Round trip complete: deposit → trade → settle on chain → withdraw.")

    # ------------------------------------------------------------------ steps

    def order(
        self, trader: str, pair: tuple[Any, Any], side: Side, *, price: int, amount: int
    ) -> Order:
        base, quote = pair
        return Order(
            trader, base["address"], quote["address"], side, price, amount,
            TimeInForce.GTC, next(self._nonce), 0,
        )  # fmt: skip

    def deposit(self, key: str, exchange: str, token: str, amount: int) -> None:
        sender = Sender.from_key(self.w3, key)
        erc20 = self.w3.eth.contract(
            address=Web3.to_checksum_address(token), abi=load("DemoToken").abi
        )
        ex = self.w3.eth.contract(
            address=Web3.to_checksum_address(exchange), abi=load("Exchange").abi
        )
        sender.transact(erc20.functions.approve(exchange, amount))
        sender.transact(ex.functions.deposit(token, amount))

    def available(self, trader: str, token: str) -> int:
        balances = self.get(f"/v1/accounts/{trader}/balances", as_trader=trader)["balances"]
        for b in balances:
            if b["token"].lower() == token.lower():
                return int(b["available"])
        return 0

    def follow_fill(self, trader: str, order_hash: str) -> dict[str, Any]:
        seen: list[str] = []

        def probe() -> dict[str, Any] | None:
            for fill in self.get(f"/v1/accounts/{trader}/fills", as_trader=trader)["fills"]:
                if order_hash not in (fill.get("orderHash"), fill.get("takerOrderHash")):
                    continue
                status = fill["settlement"]["status"]
                if not seen or seen[-1] != status:
                    seen.append(status)
                    self.echo(f"    fill is {status}")
                if status == "failed":
                    raise DemoFailedError(f"settlement failed: {fill['settlement']}")
                return fill if status == "settled" else None
            return None

        return self.wait("fill settled on chain", probe)

    def withdrawal_done(self, trader: str, withdrawal_hash: str | None) -> dict[str, Any] | None:
        for w in self.get(f"/v1/accounts/{trader}/withdrawals", as_trader=trader)["withdrawals"]:
            if withdrawal_hash is not None and w.get("withdrawalHash") != withdrawal_hash:
                continue
            if w["status"] in ("failed", "rejected"):
                raise DemoFailedError(f"withdrawal {w['status']}: {w}")
            if w["status"] == "confirmed":
                return dict(w)
        return None

    def chain_balances(
        self, exchange: str, traders: list[str], tokens: list[Any]
    ) -> dict[tuple[str, str], tuple[int, int]]:
        """(wallet, inside the Exchange) per trader and token."""
        ex = self.w3.eth.contract(
            address=Web3.to_checksum_address(exchange), abi=load("Exchange").abi
        )
        out = {}
        for trader in traders:
            for token in tokens:
                erc20 = self.w3.eth.contract(
                    address=Web3.to_checksum_address(token["address"]), abi=load("DemoToken").abi
                )
                out[(trader, token["address"])] = (
                    int(erc20.functions.balanceOf(trader).call()),
                    int(ex.functions.balanceOf(trader, token["address"]).call()),
                )
        return out

    def print_balances(
        self, title: str, balances: dict[tuple[str, str], tuple[int, int]], tokens: list[Any]
    ) -> None:
        self.echo(f"    {title} (base units; wallet / in the Exchange):")
        for (trader, token), (wallet, inside) in balances.items():
            symbol = next(t["symbol"] for t in tokens if t["address"] == token)
            self.echo(f"      {trader}  {symbol:<5} {wallet:>28} / {inside}")
