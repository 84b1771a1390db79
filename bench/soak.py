"""Crash loop: traders place, cancel and withdraw while one process is SIGKILLed and restarted.

The stack runs as in production, one OS process per role (`hybridex engine`, `api` with two
uvicorn workers, `indexer`, `worker`, `beat`) on anvil, PostgreSQL and Redis. Each round kills
one of engine, an API worker, the indexer and the settlement worker, in turn, at a random moment
of the round, and starts it again. Traders act as a real client would: an answer lost to the
crash is asked again with the same signed message, which must give the same order, never a
second one.

After each round, once what is in flight has landed, it checks:
- every acknowledged order, fill and withdrawal is in the database;
- nothing is settled twice: for every order, the contract's `filledAmount` equals the sum of
  its settled fills, and no fill is recorded twice;
- `hybridex reconcile --json` reports no discrepancy.

It prints rounds survived, kills, orders, fills, withdrawals and discrepancies. `--quick` (CI)
runs one round per process. Needs PostgreSQL (HYBRIDEX_BENCH_PG_ADMIN_URL) and Redis
(HYBRIDEX_BENCH_REDIS_URL); exits 1 if any round breaks a check.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
from eth_account import Account
from sqlalchemy import text
from web3 import Web3

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _db import fresh_database
from _machine import machine, print_machine

from backend.chain.anvil import Anvil, free_port, rpc_call
from backend.chain.artifacts import load
from backend.config import DEV_PRIVATE_KEYS
from backend.db.session import make_engine
from backend.devstack.chain import deploy_demo_tokens, deploy_dev_exchange, dev_accounts
from backend.devstack.demo import Demo, DemoConfig
from backend.devstack.markets import demo_markets, listing_commands
from backend.domain.types import PRICE_SCALE, Side
from backend.eip712.domain import Domain
from backend.eip712.messages import Cancel, Withdrawal
from backend.eip712.parsing import message_to_json

if TYPE_CHECKING:
    from backend.engine.tcp_client import TcpEngineClient

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("HYBRIDEX_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
TARGETS = ("engine", "api", "indexer", "worker")
TRADER_KEYS = DEV_PRIVATE_KEYS[1:5]
MARKET = "WETH-USDC"
RETRY_FOR_S = 45.0  # a client re-asks a lost answer this long (the killed process restarts)
SETTLE_FOR_S = 120.0  # what is in flight after a round lands within this


@dataclass
class Tally:
    """What the exchange acknowledged to the traders (all rounds so far)."""

    orders: dict[str, str] = field(default_factory=dict)  # order hash -> trader
    open_orders: dict[str, list[str]] = field(default_factory=dict)  # trader -> order hashes
    fills: set[tuple[int, int]] = field(default_factory=set)
    withdrawals: set[str] = field(default_factory=set)
    refused: int = 0
    refusals: dict[str, int] = field(default_factory=dict)  # error code -> count
    retried: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Stack:
    """Anvil, the database, and one process per role, each restartable."""

    def __init__(self, workdir: Path, db_url: str, node: Anvil) -> None:
        self.workdir = workdir
        self.db_url = db_url
        self.node = node
        self.w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 30}))
        self.exchange = deploy_dev_exchange(self.w3)
        self.tokens = deploy_demo_tokens(self.w3, fund_accounts=len(TRADER_KEYS) + 1)
        self.markets = demo_markets(self.tokens)
        self.engine_port = free_port()
        self.api_port = free_port()
        self.redis_prefix = f"hybridex-soak-{uuid.uuid4().hex[:8]}:"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.db = make_engine(db_url)

    def env(self) -> dict[str, str]:
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("HYBRIDEX_")},
            "HYBRIDEX_MODE": "dev",  # anvil's well-known operator key
            "HYBRIDEX_DATABASE_URL": self.db_url,
            "HYBRIDEX_REDIS_URL": REDIS_URL,
            "HYBRIDEX_REDIS_KEY_PREFIX": self.redis_prefix,
            "HYBRIDEX_RPC_URL": self.node.url,
            "HYBRIDEX_CHAIN_ID": str(self.w3.eth.chain_id),
            "HYBRIDEX_EXCHANGE_ADDRESS": self.exchange,
            "HYBRIDEX_OPERATOR_KEY": DEV_PRIVATE_KEYS[0],
            "HYBRIDEX_FEE_RECIPIENT": dev_accounts(1)[0],
            "HYBRIDEX_CONFIRMATIONS": "2",
            "HYBRIDEX_ENGINE_PORT": str(self.engine_port),
            "HYBRIDEX_ENGINE_JOURNAL_DIR": str(self.workdir / "journal"),
            "HYBRIDEX_API_HOST": "127.0.0.1",
            "HYBRIDEX_API_PORT": str(self.api_port),
            "HYBRIDEX_API_WORKERS": "2",
            # one client machine is every trader here: limits are tested elsewhere
            "HYBRIDEX_API_RATE_IP_PER_S": "100000",
            "HYBRIDEX_API_RATE_IP_BURST": "100000",
            "HYBRIDEX_API_RATE_TRADER_PER_S": "100000",
            "HYBRIDEX_API_RATE_TRADER_BURST": "100000",
            "HYBRIDEX_INDEXER_POLL_INTERVAL_S": "0.1",
            "HYBRIDEX_BATCH_MAX_FILLS": "32",
            "HYBRIDEX_BATCH_MAX_AGE_S": "0.5",
            "HYBRIDEX_SETTLEMENT_TICK_S": "0.25",
            "HYBRIDEX_LOG_LEVEL": "INFO",
        }

    # --- processes ------------------------------------------------------------------------
    ARGS: ClassVar[dict[str, tuple[str, ...]]] = {
        "engine": ("engine", "--feeds", "redis"),
        "api": ("api",),
        "indexer": ("indexer",),
        "worker": ("worker",),
        "beat": ("beat", "--schedule", "beat-schedule"),
    }

    def start(self, role: str) -> None:
        with (self.workdir / f"{role}.log").open("ab") as log:
            self.procs[role] = subprocess.Popen(
                [sys.executable, "-m", "backend.cli.main", *self.ARGS[role]],
                cwd=self.workdir, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def kill(self, role: str) -> int:
        """SIGKILL: the role's process, or for the API one of its workers (the supervisor starts
        a new one). Returns the pid killed."""
        if role == "api":
            pid = random.choice(self.api_worker_pids())
            os.kill(pid, signal.SIGKILL)
            return pid
        proc = self.procs[role]
        proc.kill()
        proc.wait(10)
        return proc.pid

    def api_worker_pids(self) -> list[int]:
        api = self.procs["api"]
        pids: list[int] = []
        for task in Path(f"/proc/{api.pid}/task").iterdir():
            with contextlib.suppress(OSError):
                for pid in (task / "children").read_text().split():
                    if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                        pids.append(int(pid))
        return pids

    def check_alive(self) -> None:
        for role, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{role} exited with {proc.returncode}:\n{self.log(role)}")

    def log(self, role: str) -> str:
        path = self.workdir / f"{role}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.db.dispose()

    def engine_client(self, role: str) -> TcpEngineClient:
        """A client of the engine's unix socket as `role`, with its dev-mode key."""
        from backend.config import dev_engine_key
        from backend.engine.auth import Role
        from backend.engine.tcp_client import TcpEngineClient

        socket_path = self.workdir / "journal" / "engine.sock"
        return TcpEngineClient(socket_path, role=Role(role), key=dev_engine_key(role).encode())

    def wait_engine(self) -> None:
        async def ping() -> None:
            client = self.engine_client("operator")
            try:
                await client.state(timeout=2)
            finally:
                await client.close()

        until(lambda: _quietly(lambda: asyncio.run(ping()) or True), "engine answers", 60, self)

    def list_markets(self) -> None:
        async def submit() -> None:
            client = self.engine_client("operator")
            try:
                for command, intake in listing_commands(self.markets):
                    await client.submit(command, timeout=10, intake=intake)
            finally:
                await client.close()

        asyncio.run(submit())

    def wait_api(self) -> None:
        url = f"http://127.0.0.1:{self.api_port}/ready"
        until(
            lambda: _quietly(lambda: httpx.get(url, timeout=2).status_code == 200),
            "API ready",
            60,
            self,
        )

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with self.db.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]

    def reconcile(self) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "backend.cli.main", "reconcile", "--json"],
            cwd=self.workdir, env=self.env() | {"HYBRIDEX_LOG_LEVEL": "WARNING"},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if done.returncode not in (0, 1) or not done.stdout.startswith("{"):
            raise RuntimeError(f"reconcile failed ({done.returncode}): {done.stderr[-2000:]}")
        report: dict[str, Any] = json.loads(done.stdout)
        return report


def _quietly(probe: Callable[[], object]) -> bool:
    try:
        return bool(probe())
    except Exception:  # not up yet
        return False


def until(probe: Callable[[], bool], what: str, timeout: float, stack: Stack) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check_alive()
        if probe():
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out: {what}")


class Trader:
    """One trader's client: signs, sends, and re-sends a lost answer with the same message."""

    def __init__(self, key: str, stack: Stack, demo: Demo, tally: Tally, seed: int) -> None:
        self.key = key
        self.address = Account.from_key(key).address
        self.demo = demo
        self.tally = tally
        self.rng = random.Random(seed)
        self.withdrawal_nonces = itertools.count(1)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{stack.api_port}", timeout=10)
        info = demo.get("/v1/info")
        self.domain = Domain(int(info["chainId"]), info["exchangeAddress"])
        market = demo.get(f"/v1/markets/{MARKET}")
        self.base, self.quote = market["base"], market["quote"]
        self.tick, self.min_amount = int(market["tickSize"]), int(market["minAmount"])
        mid = 3000 * 10 ** self.quote["decimals"] * PRICE_SCALE // 10 ** self.base["decimals"]
        self.mid = mid - mid % self.tick

    def send(self, method: str, path: str, body: dict[str, Any]) -> httpx.Response | None:
        """The definite answer (200 or 4xx), asked again while the answer is lost or pending."""
        deadline = time.monotonic() + RETRY_FOR_S
        while True:
            try:
                r = self.http.request(method, path, json=body)
                if r.status_code < 500 and r.status_code != 202:
                    return r
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                return None
            with self.tally.lock:
                self.tally.retried += 1
            time.sleep(0.2)

    def step(self) -> None:
        roll = self.rng.random()
        if roll < 0.1:
            self.cancel()
        elif roll < 0.14:
            self.withdraw()
        else:
            self.place()

    def place(self) -> None:
        side = self.rng.choice((Side.BUY, Side.SELL))
        offset = self.rng.randint(-3, 3) * self.tick
        price = self.mid + (offset if side is Side.BUY else -offset)
        amount = self.min_amount * self.rng.randint(1, 5)
        order = self.demo.order(
            self.address, (self.base, self.quote), side, price=price, amount=amount
        )
        signature = self.demo.signed(self.key, order, self.domain)
        r = self.send(
            "POST", "/v1/orders", {"order": message_to_json(order), "signature": signature}
        )
        self._record(r, self._acked_order)

    def _acked_order(self, answer: dict[str, Any]) -> None:
        h = answer["orderHash"]
        self.tally.orders[h] = self.address
        self.tally.fills.update((int(f["seq"]), int(f["fillIndex"])) for f in answer["fills"])
        if answer["status"] in ("open", "partially_filled"):
            self.tally.open_orders.setdefault(self.address, []).append(h)

    def cancel(self) -> None:
        with self.tally.lock:
            mine = self.tally.open_orders.get(self.address, [])
            if not mine:
                return
            h = mine.pop(self.rng.randrange(len(mine)))
        cancel = Cancel(self.address, bytes.fromhex(h.removeprefix("0x")))
        body = {
            "cancel": message_to_json(cancel),
            "signature": self.demo.signed(self.key, cancel, self.domain),
        }
        self._record(self.send("DELETE", f"/v1/orders/{h}", body), None)

    def withdraw(self) -> None:
        token = self.rng.choice((self.base, self.quote))
        amount = 10 ** (token["decimals"] - 2)  # a hundredth of a token
        nonce, expiry = next(self.withdrawal_nonces), int(time.time()) + 3_600
        w = Withdrawal(self.address, token["address"], amount, nonce, expiry)
        body = {
            "withdrawal": message_to_json(w),
            "signature": self.demo.signed(self.key, w, self.domain),
        }
        self._record(
            self.send("POST", "/v1/withdrawals", body),
            lambda a: self.tally.withdrawals.add(a["withdrawalHash"]),
        )

    def _record(
        self, r: httpx.Response | None, on_ok: Callable[[dict[str, Any]], None] | None
    ) -> None:
        with self.tally.lock:
            if r is None or r.status_code != 200:
                self.tally.refused += 1
                code = "unanswered" if r is None else str(r.json()["error"]["code"])
                self.tally.refusals[code] = self.tally.refusals.get(code, 0) + 1
            elif on_ok is not None:
                on_ok(r.json())


@dataclass
class RoundResult:
    round: int
    killed: str
    kill_at_s: float
    settle_s: float
    missing_orders: int
    missing_fills: int
    missing_withdrawals: int
    double_settled: int
    discrepancies: list[dict[str, Any]]
    reverted_fills: int
    accounts: int
    engine_compared: bool
    """The live engine's ledger was compared with the database (not skipped)."""

    @property
    def ok(self) -> bool:
        return not (
            self.missing_orders
            or self.missing_fills
            or self.missing_withdrawals
            or self.double_settled
            or self.discrepancies
        )


def run_round(
    n: int, stack: Stack, traders: list[Trader], tally: Tally, round_s: float, rng: random.Random
) -> RoundResult:
    target = TARGETS[n % len(TARGETS)]
    kill_at = rng.uniform(0.2, 0.8) * round_s
    stop = threading.Event()

    def trade(t: Trader) -> None:
        while not stop.is_set():
            t.step()

    threads = [threading.Thread(target=trade, args=(t,), daemon=True) for t in traders]
    for th in threads:
        th.start()
    time.sleep(kill_at)
    stack.kill(target)
    if target != "api":  # the API's supervisor starts a new worker by itself
        stack.start(target)
    time.sleep(max(0.0, round_s - kill_at))
    stop.set()
    for th in threads:
        th.join(RETRY_FOR_S + 15)
    started = time.monotonic()
    settle(stack, tally)
    settle_s = time.monotonic() - started
    return check(n, target, kill_at, settle_s, stack, tally)


PENDING_FILLS = """SELECT count(*) FROM fills f LEFT JOIN fill_settlements s ON s.fill_id = f.id
                   WHERE s.status IS NULL OR s.status NOT IN ('settled', 'failed')"""
PENDING_WITHDRAWALS = """SELECT count(*) FROM withdrawals w
    LEFT JOIN withdrawal_settlements s ON s.withdrawal_id = w.id
    WHERE w.status <> 'rejected'
      AND (s.status IS NULL OR s.status NOT IN ('confirmed', 'failed'))"""


def settle(stack: Stack, tally: Tally) -> None:
    """Until every acknowledged thing is persisted and every fill and withdrawal has landed."""

    def landed() -> bool:
        missing = missing_rows(stack, tally)
        return (
            not any(missing)
            and stack.query(PENDING_FILLS)[0][0] == 0
            and stack.query(PENDING_WITHDRAWALS)[0][0] == 0
        )

    with contextlib.suppress(TimeoutError):  # what is still missing is reported by `check`
        until(landed, "in-flight fills and withdrawals landed", SETTLE_FOR_S, stack)


def missing_rows(stack: Stack, tally: Tally) -> tuple[int, int, int]:
    orders = {"0x" + bytes(r[0]).hex() for r in stack.query("SELECT order_hash FROM orders")}
    fills = {(int(s), int(i)) for s, i in stack.query("SELECT seq, fill_index FROM fills")}
    withdrawals = {
        "0x" + bytes(r[0]).hex() for r in stack.query("SELECT withdrawal_hash FROM withdrawals")
    }
    with tally.lock:
        return (
            len(set(tally.orders) - orders),
            len(tally.fills - fills),
            len(tally.withdrawals - withdrawals),
        )


def double_settled(stack: Stack) -> int:
    """Orders whose on-chain fill state is not what their settled fills add up to, plus fills
    recorded twice. The contract keeps a partly filled order's amount; for one filled whole or
    cancelled on chain, only its used nonce (`filledAmount` reads 0)."""
    settled: dict[bytes, int] = {}
    for maker, taker, amount in stack.query(
        """SELECT f.maker_order_hash, f.taker_order_hash, f.amount FROM fills f
           JOIN fill_settlements s ON s.fill_id = f.id WHERE s.status = 'settled'"""
    ):
        for h in (bytes(maker), bytes(taker)):
            settled[h] = settled.get(h, 0) + int(amount)
    orders = {
        bytes(h): (t, int(n), int(a), status)
        for h, t, n, a, status in stack.query(
            "SELECT order_hash, trader, nonce, amount, status FROM orders"
        )
    }
    exchange = stack.w3.eth.contract(
        address=Web3.to_checksum_address(stack.exchange), abi=load("Exchange").abi
    )
    wrong = 0
    for h, total in settled.items():
        trader, nonce, amount, status = orders[h]
        on_chain = int(exchange.functions.filledAmount(h).call())
        used = bool(exchange.functions.isNonceUsed(trader, nonce).call())
        allowed = {total if total < amount else 0}
        if status in ("cancelled", "expired"):  # a signed cancel on chain clears the amount
            allowed.add(0)
        bad = total > amount or not used or on_chain not in allowed
        if bad:
            print(
                f"order 0x{h.hex()}: settled {total} of {amount}, on chain {on_chain}, "
                f"nonce used {used}",
                file=sys.stderr,
            )
        wrong += bad
    ((dupes,),) = stack.query("SELECT count(*) - count(DISTINCT (seq, fill_index)) FROM fills")
    return wrong + int(dupes)


def check(
    n: int, target: str, kill_at: float, settle_s: float, stack: Stack, tally: Tally
) -> RoundResult:
    orders, fills, withdrawals = missing_rows(stack, tally)
    report = stack.reconcile()
    for _ in range(5):  # a deposit or a batch confirming right now is in flight, not an error
        if not report["discrepancies"]:
            break
        time.sleep(2)
        report = stack.reconcile()
    return RoundResult(
        round=n, killed=target, kill_at_s=round(kill_at, 2), settle_s=round(settle_s, 1),
        missing_orders=orders, missing_fills=fills, missing_withdrawals=withdrawals,
        double_settled=double_settled(stack), discrepancies=report["discrepancies"],
        reverted_fills=int(report["revertedFills"]),
        accounts=int(report["accounts"]),
        engine_compared=bool(report["engine"]) and report["engine"]["skipped"] is None,
    )  # fmt: skip


def miner(node: Anvil, stop: threading.Event) -> None:
    """Blocks keep coming (confirmations), as on a real chain."""
    while not stop.wait(0.5):
        with contextlib.suppress(Exception):
            rpc_call(node.url, "evm_mine", [])


def soak(rounds: int, round_s: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    started = time.monotonic()
    results: list[RoundResult] = []
    tally = Tally()
    stop_mining = threading.Event()
    with (
        tempfile.TemporaryDirectory(prefix="hybridex-soak-") as tmp,
        fresh_database("soak") as db_url,
        Anvil() as node,
    ):
        stack = Stack(Path(tmp), db_url, node)
        threading.Thread(target=miner, args=(node, stop_mining), daemon=True).start()
        try:
            stack.start("engine")
            stack.wait_engine()
            stack.list_markets()
            for role in ("api", "indexer", "worker", "beat"):
                stack.start(role)
            stack.wait_api()
            demo = Demo(
                DemoConfig(api_url=f"http://127.0.0.1:{stack.api_port}", rpc_url=node.url),
                echo=lambda _line: None,
            )
            fund(demo, stack)
            traders = [Trader(k, stack, demo, tally, seed + i) for i, k in enumerate(TRADER_KEYS)]
            for n in range(rounds):
                result = run_round(n, stack, traders, tally, round_s, rng)
                results.append(result)
                print(
                    json.dumps(
                        {
                            "round": n,
                            "killed": result.killed,
                            "ok": result.ok,
                            "settle_s": result.settle_s,
                            "discrepancies": len(result.discrepancies),
                        }
                    ),
                    file=sys.stderr,
                    flush=True,
                )
                if not result.ok:
                    break
        finally:
            stop_mining.set()
            stack.stop_all()
    failed = [r for r in results if not r.ok]
    return {
        "rounds": rounds,
        "rounds_survived": sum(r.ok for r in results),
        "kills": {t: sum(r.killed == t for r in results) for t in TARGETS},
        "orders_acknowledged": len(tally.orders),
        "fills_acknowledged": len(tally.fills),
        "withdrawals_acknowledged": len(tally.withdrawals),
        "refused_or_unanswered": tally.refused,
        "answers_asked_again": tally.retried,
        "refusals": tally.refusals,
        "accounts_reconciled": results[-1].accounts if results else 0,
        "discrepancies": sum(len(r.discrepancies) for r in results),
        "engine_compared_rounds": sum(r.engine_compared for r in results),
        "double_settled": sum(r.double_settled for r in results),
        "missing": sum(r.missing_orders + r.missing_fills + r.missing_withdrawals for r in results),
        "max_settle_s": max((r.settle_s for r in results), default=0.0),
        "failed_rounds": [r.__dict__ for r in failed],
        "seconds": round(time.monotonic() - started, 1),
    }


def fund(demo: Demo, stack: Stack) -> None:
    base = next(t for t in stack.tokens if t.spec.symbol == "WETH")
    quote = next(t for t in stack.tokens if t.spec.symbol == "USDC")
    for key in TRADER_KEYS:
        demo.deposit(key, stack.exchange, base.address, 100 * 10**18)
        demo.deposit(key, stack.exchange, quote.address, 300_000 * 10**6)
    for key in TRADER_KEYS:
        trader = Account.from_key(key).address
        until(
            lambda t=trader: (
                demo.available(t, quote.address) > 0  # type: ignore[misc]
                and demo.available(t, base.address) > 0
            ),
            "deposits credited",
            60,
            stack,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--round-s", type=float, default=6.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="one round per process (CI)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = parser.parse_args()
    rounds, round_s = (len(TARGETS), 4.0) if args.quick else (args.rounds, args.round_s)
    result = soak(rounds, round_s, args.seed)
    if args.json:
        print(json.dumps({**machine(), **result}))
    else:
        print_machine()
        for key, value in result.items():
            print(f"{key:>26}: {value}")
    sys.exit(0 if result["rounds_survived"] == rounds else 1)


if __name__ == "__main__":
    main()
