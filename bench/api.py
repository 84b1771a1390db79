"""API benchmark (SPEC §12, issue "order intake"): signed orders through HTTP and WebSocket on
loopback, deployed as in production, against the bare HTTP route and the signature limit.

    python bench/api.py --json             # every phase, 20 s each (≤ 60 s)
    python bench/api.py --quick --json     # smoke run (CI's make bench-smoke): 3 s phases
    python bench/api.py --phases max --no-floor --duration 30   # one phase, e.g. to profile

What runs (all bound to 127.0.0.1, torn down afterwards):
- `bench/sig.py --json` first, on a quiet machine: the signature check and libsecp256k1
  recovery alone; `sig_limit_orders_per_s` = cores ÷ recovery time (every order needs one
  recovery, so no design passes it);
- `hybridex engine` (journal in a temp dir, persister to a fresh PostgreSQL database, feeds to
  Redis under a fresh key prefix) and `hybridex api --workers N` (`production_app`:
  TcpEngineClient, RedisFeedStore, Redis rate limiter with limits raised above the load);
- the market is listed and the traders credited through the engine's command path
  (`AddMarket` / `Credit` over TcpEngineClient), never into the tables;
- a load generator in its own process: it pre-signs every order of a phase before the phase
  starts (coincurve, low-s, 64 traders, unique nonces; GTC limit orders around the mid, about
  a third crossing), then drives keep-alive connections with prepared request bytes.

Intake phases (fixed duration each):
1. `max` — single orders (`POST /v1/orders`), closed loop, `--connections` requests in flight;
   orders/s = 200 answers / wall;
2. `half` — open loop at half the measured max rate; a request's latency counts from its
   scheduled send time (no coordinated omission);
3. `batch` — `POST /v1/orders/batch` with 20 orders a request, closed loop on a quarter of the
   connections; orders/s = items answered 200 / wall;
4. `ws` — `place` messages over `/v1/ws` order entry on `--connections` WebSockets, up to 8
   unanswered on each; orders/s = `result` messages with status 200 / wall.
Then the floor: the same load generator against `bench/_floor_app.py` (the same server and
worker count, FastAPI with nothing behind the route: no signature check, rate limit, engine or
database): closed loop (`floor_requests_per_s`), then open loop at the `half` phase's very
rate (`floor_half_load_p99_ms`). Latency is from the first byte written to the last byte read.

Every target is a ratio of two figures of this run (`RATIO_TARGETS`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import machine, print_machine

from backend.config import ENGINE_ROLES

if TYPE_CHECKING:
    from backend.engine.tcp_client import TcpEngineClient

ROOT = Path(__file__).resolve().parents[1]

CHAIN_ID = 31337
EXCHANGE = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
MARKET = "WETH-USDC"
TICK = 10_000  # 0.01 USDC per WETH
LOT = 10**14  # 0.0001 WETH
# production mode refuses the built-in placeholder fee account
FEE_RECIPIENT = "0x1000000000000000000000000000000000000001"
MID = 3_000 * 10**6
N_TRADERS = 64
PG_ADMIN_URL = os.environ.get(
    "HYBRIDEX_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("HYBRIDEX_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def trader_key(i: int) -> bytes:
    return (0xB0B0_0000 + i + 1).to_bytes(32, "big")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    """`hybridex engine` + `hybridex api --workers N` on loopback, over a fresh database,
    Redis prefix and journal directory (all removed by `close`)."""

    workers: int = 2
    log_level: str = "WARNING"
    pg_admin_url: str = PG_ADMIN_URL
    redis_url: str = REDIS_URL
    extra_env: dict[str, str] = field(default_factory=dict)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hybridex-api-")))
    engine_port: int = field(default_factory=free_port)
    # fresh role keys per stack (production mode refuses to run without them)
    engine_keys: dict[str, str] = field(
        default_factory=lambda: {role: secrets.token_hex(32) for role in ENGINE_ROLES}
    )
    api_port: int = field(default_factory=free_port)
    engine: subprocess.Popen[bytes] | None = None
    api: subprocess.Popen[bytes] | None = None
    db_name: str = field(default_factory=lambda: f"hybridex_bench_{uuid.uuid4().hex[:10]}")
    redis_prefix: str = field(default_factory=lambda: f"hybridex-bench:{uuid.uuid4().hex[:10]}:")

    @property
    def journal_dir(self) -> Path:
        return self.workdir / "journal"

    @property
    def db_url(self) -> str:
        from sqlalchemy.engine import make_url

        url = make_url(self.pg_admin_url).set(database=self.db_name)
        return url.render_as_string(hide_password=False)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "HYBRIDEX_CHAIN_ID": str(CHAIN_ID),
            "HYBRIDEX_EXCHANGE_ADDRESS": EXCHANGE,
            "HYBRIDEX_DATABASE_URL": self.db_url,
            "HYBRIDEX_REDIS_URL": self.redis_url,
            "HYBRIDEX_REDIS_KEY_PREFIX": self.redis_prefix,
            "HYBRIDEX_ENGINE_HOST": "127.0.0.1",
            "HYBRIDEX_ENGINE_PORT": str(self.engine_port),
            "HYBRIDEX_ENGINE_JOURNAL_DIR": str(self.journal_dir),
            **{f"HYBRIDEX_ENGINE_KEY_{r.upper()}": k for r, k in self.engine_keys.items()},
            "HYBRIDEX_FEE_RECIPIENT": FEE_RECIPIENT,
            "HYBRIDEX_API_HOST": "127.0.0.1",
            "HYBRIDEX_API_PORT": str(self.api_port),
            "HYBRIDEX_API_WORKERS": str(self.workers),
            "HYBRIDEX_API_RATE_LIMITER": "redis",
            "HYBRIDEX_API_RATE_IP_PER_S": "1000000",
            "HYBRIDEX_API_RATE_IP_BURST": "1000000",
            "HYBRIDEX_API_RATE_TRADER_PER_S": "1000000",
            "HYBRIDEX_API_RATE_TRADER_BURST": "1000000",
            "HYBRIDEX_API_WS_MSG_PER_S": "1000000",
            "HYBRIDEX_API_WS_MSG_BURST": "1000000",
            "HYBRIDEX_API_WS_MAX_CONNECTIONS_PER_IP": "1000",
            "HYBRIDEX_LOG_LEVEL": self.log_level,
            **self.extra_env,
        }

    def _spawn(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        with (self.workdir / log).open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "backend.cli.main", *args],
                cwd=ROOT, env=self.env(), stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def create_database(self) -> None:
        from sqlalchemy import create_engine, text

        from backend.db.migrate import upgrade

        admin = create_engine(self.pg_admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.db_name}"'))
        admin.dispose()
        upgrade(self.db_url)

    def start_engine(self, timeout: float = 60) -> None:
        self.engine = self._spawn("engine", log="engine.log")
        asyncio.run(self._wait_engine(timeout))

    def engine_client(self, role: str) -> TcpEngineClient:
        """A client of the stack's engine (its unix socket) as `role`."""
        from backend.engine.auth import Role
        from backend.engine.tcp_client import TcpEngineClient

        key = self.engine_keys[role].encode()
        if self.extra_env.get("HYBRIDEX_ENGINE_TRANSPORT") == "tcp":
            return TcpEngineClient(("127.0.0.1", self.engine_port), role=Role(role), key=key)
        return TcpEngineClient(self.journal_dir / "engine.sock", role=Role(role), key=key)

    async def _wait_engine(self, timeout: float) -> None:
        from backend.engine.client import EngineUnavailableError

        client = self.engine_client("operator")
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.engine is None or self.engine.poll() is not None:
                    raise RuntimeError(
                        f"engine exited during start-up:\n{self.log_tail('engine.log')}"
                    )
                try:
                    await client.state(timeout=2)
                    return
                except EngineUnavailableError:
                    await asyncio.sleep(0.1)
        finally:
            await client.close()
        raise RuntimeError("engine did not start in time")

    def start_api(self, timeout: float = 60) -> None:
        self.api = self._spawn("api", log="api.log")
        self.wait_api(timeout)

    def wait_api(self, timeout: float = 60) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.api is None or self.api.poll() is not None:
                raise RuntimeError(f"api exited during start-up:\n{self.log_tail('api.log')}")
            with contextlib.suppress(httpx.HTTPError, ValueError):
                r = httpx.get(f"http://127.0.0.1:{self.api_port}/ready", timeout=2)
                last = f"/ready {r.status_code} {r.text[:200]}"
                checks = r.json().get("checks", {})
                # what order intake needs (a chain node, if /ready checks one, is not used here)
                needed = all(checks.get(k) == "ok" for k in ("database", "redis", "engine"))
                if needed and len(self.api_worker_pids()) >= self.workers:
                    return
            time.sleep(0.2)
        raise RuntimeError(
            f"api not ready in {timeout} s ({last}, workers {self.api_worker_pids()}):\n"
            + self.log_tail("api.log")
        )

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / name
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def api_worker_pids(self) -> list[int]:
        """The uvicorn worker processes (children of the supervisor, not its resource
        tracker)."""
        if self.api is None:
            return []
        pids: list[int] = []
        for task in Path(f"/proc/{self.api.pid}/task").iterdir():
            with contextlib.suppress(OSError):
                for pid in (task / "children").read_text().split():
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if b"resource_tracker" not in cmdline:
                        pids.append(int(pid))
        return sorted(pids)

    def kill_engine(self) -> None:
        assert self.engine is not None
        self.engine.send_signal(signal.SIGKILL)
        self.engine.wait(10)

    def stop_engine(self) -> int:
        """SIGTERM (flush the persister, snapshot) and the exit code."""
        assert self.engine is not None
        self.engine.send_signal(signal.SIGTERM)
        return self.engine.wait(60)

    def close(self) -> None:
        from sqlalchemy import create_engine, text

        for proc in (self.api, self.engine):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        admin = create_engine(self.pg_admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'))
        admin.dispose()
        import redis

        client = redis.Redis.from_url(self.redis_url)
        keys = list(client.scan_iter(match=f"{self.redis_prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class FloorStack:
    """`bench/_floor_app.py` under uvicorn with the stack's worker count, nothing else."""

    workers: int = 2
    server: str = "uvicorn"
    api_port: int = field(default_factory=free_port)
    api: subprocess.Popen[bytes] | None = None
    engine: None = None

    def start(self, timeout: float = 60) -> None:
        import httpx

        if self.server == "granian":
            args = ["-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
                    "--port", str(self.api_port), "--workers", str(self.workers),
                    "--log-level", "warning", "_floor_app:app"]  # fmt: skip
        else:
            args = ["-m", "uvicorn", "_floor_app:app", "--host", "127.0.0.1",
                    "--port", str(self.api_port), "--workers", str(self.workers),
                    "--no-access-log", "--log-level", "warning"]  # fmt: skip
        self.api = subprocess.Popen(
            [sys.executable, *args], cwd=Path(__file__).resolve().parent,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                up = httpx.get(f"http://127.0.0.1:{self.api_port}/ready", timeout=2).is_success
                if up and len(self.api_worker_pids()) >= self.workers:
                    return
            time.sleep(0.2)
        raise RuntimeError("the floor app did not start in time")

    api_worker_pids = Stack.api_worker_pids

    def close(self) -> None:
        if self.api is not None and self.api.poll() is None:
            self.api.send_signal(signal.SIGTERM)
            self.api.wait(30)


@contextlib.contextmanager
def floor_stack(workers: int = 2, server: str = "uvicorn") -> Iterator[FloorStack]:
    stack = FloorStack(workers=workers, server=server)
    try:
        stack.start()
        yield stack
    finally:
        stack.close()


@contextlib.contextmanager
def running_stack(workers: int = 2, **kwargs: Any) -> Iterator[Stack]:
    """A started stack with the market listed and every trader funded."""
    stack = Stack(workers=workers, **kwargs)
    try:
        stack.create_database()
        stack.start_engine()
        asyncio.run(list_and_fund(stack))
        stack.start_api()
        wait_market_listed(stack.api_port)
        yield stack
    finally:
        stack.close()


async def list_and_fund(stack: Stack, n_traders: int = N_TRADERS) -> None:
    """`AddMarket` (as the operator) and `Credit`s (as the indexer would, when deposits
    arrive) through the engine's command path."""
    from eth_account import Account

    from backend.engine.client import Intake, TokenInfo
    from backend.matching.commands import AddMarket, Credit, MarketSpec

    spec = MarketSpec(MARKET, WETH, USDC, TICK, LOT, LOT, maker_fee_bps=5, taker_fee_bps=20)
    tokens = (TokenInfo(WETH, "WETH", 18), TokenInfo(USDC, "USDC", 6))
    operator, indexer = stack.engine_client("operator"), stack.engine_client("indexer")
    try:
        await operator.submit(AddMarket(0, 0, spec), timeout=10, intake=Intake(tokens=tokens))
        for i in range(n_traders):
            trader = Account.from_key(trader_key(i)).address
            for token in (WETH, USDC):
                await indexer.submit(Credit(0, 0, trader, token, 10**30), timeout=10)
    finally:
        await operator.close()
        await indexer.close()


def wait_market_listed(api_port: int, timeout: float = 30) -> None:
    """The API maps token pairs to markets from the persisted `markets` rows."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(f"http://127.0.0.1:{api_port}/v1/markets", timeout=5)
        if r.status_code == 200 and any(m["id"] == MARKET for m in r.json()["markets"]):
            return
        time.sleep(0.2)
    raise RuntimeError("the market never appeared on the API")


# ------------------------------------------------------------------------- pre-signed orders


def presign(n: int, *, seed: int, first_nonce: int, port: int) -> list[tuple[bytes, bytes]]:
    """`n` ready-to-send HTTP requests of signed orders: (order hash, request bytes).

    Signed with coincurve directly over our EIP-712 digest (the libsecp256k1 signer emits
    low-s), which is ~5x faster than eth_account and changes nothing the API sees."""
    import coincurve
    import orjson
    from eth_account import Account

    from backend.domain.types import Side, TimeInForce
    from backend.eip712.domain import Domain
    from backend.eip712.hashing import digest
    from backend.eip712.messages import Order
    from backend.eip712.parsing import message_to_json

    domain = Domain(CHAIN_ID, EXCHANGE)
    rng = random.Random(seed)
    keys = [coincurve.PrivateKey(trader_key(i)) for i in range(N_TRADERS)]
    addresses = [Account.from_key(trader_key(i)).address for i in range(N_TRADERS)]
    head = (
        f"POST /v1/orders HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    out: list[tuple[bytes, bytes]] = []
    for k in range(n):
        t = rng.randrange(N_TRADERS)
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        offset = rng.randint(-6, 12) * TICK  # negative: through the mid, likely to cross
        price = MID - offset if side is Side.BUY else MID + offset
        order = Order(
            addresses[t], WETH, USDC, side, price, LOT * rng.randint(1, 20),
            TimeInForce.GTC, first_nonce + k, 0,
        )  # fmt: skip
        h = digest(order, domain)
        sig = keys[t].sign_recoverable(h, hasher=None)
        signature = sig[:64] + bytes([27 + sig[64]])
        body = orjson.dumps({"order": message_to_json(order), "signature": "0x" + signature.hex()})
        out.append((h, head + str(len(body)).encode() + b"\r\n\r\n" + body))
    return out


# ------------------------------------------------------------------------- HTTP load


@dataclass
class PhaseResult:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    answers: list[tuple[bytes, int, bytes]] = field(default_factory=list)
    """(order hash, status, body) when `keep_answers`."""
    wall_s: float = 0.0
    errors: int = 0


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    body = await reader.readexactly(length) if length else b""
    return status, body


async def drive(
    port: int,
    requests: list[tuple[bytes, bytes]],
    *,
    connections: int,
    duration_s: float,
    rate: float | None = None,
    keep_answers: bool = False,
    result: PhaseResult | None = None,
    on_answer: Callable[[int, bytes], None] | None = None,
) -> PhaseResult:
    """Send `requests` in order over `connections` keep-alive connections until they run out
    or `duration_s` passes. Closed loop when `rate` is None, else open loop at `rate`/s.
    A connection that fails is counted in `errors` and reopened. Pass `result` to watch it
    fill while the load runs; `on_answer(status, body)` sees every answer."""
    result = PhaseResult() if result is None else result
    indices = itertools.count()
    # Not loop.time(): uvloop's ticks in whole milliseconds, as coarse as the bare route's p99.
    clock = time.perf_counter
    start = clock() + 0.05
    end = start + duration_s

    async def worker() -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                i = next(indices)
                if i >= len(requests):
                    return
                scheduled = start + i / rate if rate else None
                now = clock()
                if (scheduled or now) >= end:
                    return
                if scheduled is not None and scheduled > now:
                    await asyncio.sleep(scheduled - now)
                    # Woken late by the timer's granularity: the server is not the cause.
                    # A request late because its connection was busy keeps its scheduled
                    # time, so the server's queueing is counted (no coordinated omission).
                    scheduled = max(scheduled, clock())
                if conn is None:
                    try:
                        conn = await asyncio.open_connection("127.0.0.1", port)
                    except OSError:
                        result.errors += 1
                        await asyncio.sleep(0.05)
                        continue
                order_hash, request = requests[i]
                t0 = clock()
                result.sent += 1
                try:
                    status, body = await asyncio.wait_for(_exchange(*conn, request), 30)
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
                    result.errors += 1
                    conn[1].close()
                    conn = None
                    continue
                t1 = clock()
                result.statuses[status] += 1
                if status == 200:
                    result.latencies_s.append(t1 - (scheduled if scheduled is not None else t0))
                if keep_answers:
                    result.answers.append((order_hash, status, body))
                if on_answer is not None:
                    on_answer(status, body)
        finally:
            if conn is not None:
                conn[1].close()

    await asyncio.sleep(max(0.0, start - clock()))
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    result.wall_s = time.perf_counter() - t0
    return result


def summarize(r: PhaseResult) -> dict[str, Any]:
    lat = sorted(r.latencies_s)

    def pct(q: float) -> float:
        return round(1000 * lat[min(len(lat) - 1, int(q * len(lat)))], 2) if lat else 0.0

    ok = r.statuses.get(200, 0)
    return {
        "orders_per_s": round(ok / r.wall_s) if r.wall_s else 0,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "p999_ms": pct(0.999),
        "sent": r.sent,
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(r.statuses.items())},
        "connection_errors": r.errors,
        "wall_s": round(r.wall_s, 2),
    }


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def phase_window() -> Iterator[dict[str, float]]:
    """The phase's wall-clock window (for the parent's CPU sampler) and this process's CPU."""
    out: dict[str, float] = {"t_start": time.time()}
    cpu0 = time.process_time()
    yield out
    out["t_end"] = time.time()
    out["loadgen_cpu_s"] = round(time.process_time() - cpu0, 3)


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (every process, others' too)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def pids_where(match: Callable[[bytes], bool]) -> list[int]:
    """The processes whose command line (NULs as spaces) `match`es."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if match((entry / "cmdline").read_bytes().replace(b"\0", b" ")):
                    found.append(int(entry.name))
    return found


def database_pids(db_name: str) -> Callable[[], list[int]]:
    """The PostgreSQL backends serving `db_name` (connections open during the run, too)."""
    needle = f" {db_name} ".encode()
    return lambda: pids_where(lambda cmd: cmd.startswith(b"postgres: ") and needle in cmd)


def redis_pids() -> list[int]:
    """redis-server (shared: its CPU includes any other user's)."""
    return pids_where(lambda cmd: cmd.startswith(b"redis-server"))


class CpuSampler:
    """Polls the CPU time of the stack's processes, so the CPU spent during a phase (reported
    by the load generator as a wall-clock window) can be split per process. A group is a pid
    list or a function giving the current one (a process gone keeps its last figure); the
    `machine` group is the whole machine's busy time, whoever spent it."""

    def __init__(
        self, pids: dict[str, list[int] | Callable[[], list[int]]], every_s: float = 0.1
    ) -> None:
        import threading

        self.pids = pids
        self.every_s = every_s
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._seen: dict[str, dict[int, float]] = {name: {} for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        cpu: dict[str, float] = {}
        for name, group in self.pids.items():
            seen = self._seen[name]
            for pid in group() if callable(group) else group:
                seen[pid] = max(seen.get(pid, 0.0), process_cpu_s(pid))
            cpu[name] = sum(seen.values())
        cpu["machine"] = machine_busy_s()
        self.samples.append((time.time(), cpu))

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._sample()

    def __enter__(self) -> CpuSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def between(self, t0: float, t1: float) -> dict[str, float]:
        """CPU seconds per process group between the samples nearest `t0` and `t1`."""
        first = min(self.samples, key=lambda s: abs(s[0] - t0))
        last = min(self.samples, key=lambda s: abs(s[0] - t1))
        return {k: last[1][k] - first[1][k] for k in first[1]}


def cpu_breakdown(phase: dict[str, Any], sampler: CpuSampler) -> dict[str, Any]:
    """µs of CPU per answered order and share of the machine's cores, per process group (the
    API workers, the engine, the run's PostgreSQL backends, redis-server, the load generator
    and the rest of the machine)."""
    used = sampler.between(phase["t_start"], phase["t_end"])
    used["loadgen"] = phase["loadgen_cpu_s"]
    machine = used.pop("machine")
    # What the machine spent besides the processes above: other users of a shared machine,
    # the kernel's network and disk work for no process in particular, PostgreSQL's WAL writer.
    used["machine_other"] = max(0.0, machine - sum(used.values()))
    ok = max(1, phase["ok"])
    wall = max(1e-9, phase["t_end"] - phase["t_start"])
    cores = os.cpu_count() or 1
    return {
        "cpu_us_per_order": {k: round(1e6 * v / ok) for k, v in used.items()},
        "cpu_share_of_machine": {k: round(v / (wall * cores), 3) for k, v in used.items()},
    }


# ------------------------------------------------------------------------- batches, WebSocket


def presign_batches(
    n_batches: int, size: int, *, seed: int, first_nonce: int, port: int
) -> list[tuple[bytes, bytes]]:
    """`n_batches` ready-to-send `POST /v1/orders/batch` requests of `size` signed orders each
    (the first order's hash stands for the request)."""
    import orjson

    singles = presign(n_batches * size, seed=seed, first_nonce=first_nonce, port=port)
    head = (
        f"POST /v1/orders/batch HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    out: list[tuple[bytes, bytes]] = []
    for b in range(n_batches):
        chunk = singles[b * size : (b + 1) * size]
        items = [orjson.loads(request.split(b"\r\n\r\n", 1)[1]) for _h, request in chunk]
        body = orjson.dumps({"items": items})
        out.append((chunk[0][0], head + str(len(body)).encode() + b"\r\n\r\n" + body))
    return out


def ws_frame(payload: bytes) -> bytes:
    """A client text frame. Client frames must be masked; the all-zero key is a valid mask
    that leaves the payload as it is, so frames are built once, before the phase."""
    n = len(payload)
    if n < 126:
        head = bytes([0x81, 0x80 | n])
    elif n < 1 << 16:
        head = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x81, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + b"\x00\x00\x00\x00" + payload


def presign_ws(n: int, *, seed: int, first_nonce: int, port: int) -> list[bytes]:
    """`n` WebSocket `place` frames of signed orders (request id = position)."""
    import orjson

    out = []
    for k, (_h, request) in enumerate(presign(n, seed=seed, first_nonce=first_nonce, port=port)):
        body = orjson.loads(request.split(b"\r\n\r\n", 1)[1])
        out.append(ws_frame(orjson.dumps({"op": "place", "id": k, **body})))
    return out


async def _ws_open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    import base64

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    writer.write(
        f"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .encode()
    )  # fmt: skip
    head = await reader.readuntil(b"\r\n\r\n")
    if head[9:12] != b"101":
        writer.close()
        raise OSError(f"WebSocket handshake refused: {head[:60]!r}")
    return reader, writer


async def _ws_read(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    return b0 & 0x0F, await reader.readexactly(n)


async def drive_ws(
    port: int, frames: list[bytes], *, connections: int, duration_s: float, window: int = 8
) -> PhaseResult:
    """Send `frames` over `connections` WebSockets, `window` unanswered messages at most on
    each (the server pipelines a connection's order messages and answers them in order), until they
    run out or `duration_s` passes. `statuses` counts the `result` messages' statuses."""
    import orjson

    result = PhaseResult()
    indices = itertools.count()
    loop = asyncio.get_running_loop()
    conns = [await _ws_open(port) for _ in range(connections)]
    end = loop.time() + duration_s

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        outstanding = 0

        def send_more() -> None:
            nonlocal outstanding
            while outstanding < window and loop.time() < end:
                i = next(indices)
                if i >= len(frames):
                    return
                writer.write(frames[i])
                outstanding += 1
                result.sent += 1

        send_more()
        try:
            while outstanding:
                opcode, payload = await asyncio.wait_for(_ws_read(reader), 30)
                if opcode == 0x9:  # ping: answer with the payload, masked
                    writer.write(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
                elif opcode == 0x8:
                    result.errors += outstanding
                    return
                elif opcode == 0x1:
                    message = orjson.loads(payload)
                    if message.get("type") == "result":
                        outstanding -= 1
                        result.statuses[message["status"]] += 1
                        send_more()
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            result.errors += outstanding
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(*conn) for conn in conns))
    result.wall_s = time.perf_counter() - t0
    return result


# ------------------------------------------------------------------------- the phases

BATCH_SIZE = 20


def loadgen(config: dict[str, Any]) -> dict[str, Any]:
    """The load generator's work (in its own process): for each phase, pre-sign, then drive.

    Phases (`config["phases"]`): `max` (single orders, closed loop), `half` (single orders,
    open loop at `config["rate"]` or half the `max` phase's rate), `batch` (`BATCH_SIZE` orders
    a request, closed loop), `ws` (WebSocket `place` messages). Nonces never repeat across
    phases, so every order is new to the engine."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency of uvicorn[standard]
        pass
    port, duration, connections = config["port"], config["duration"], config["connections"]
    cap = config["max_orders"]
    out: dict[str, Any] = {}
    warm = presign(200, seed=3, first_nonce=10**12, port=port)
    asyncio.run(drive(port, warm, connections=connections, duration_s=10))
    for k, name in enumerate(config["phases"]):
        nonce = 1 + k * 10**9
        t0 = time.perf_counter()
        if name == "max":
            requests = presign(cap, seed=1, first_nonce=nonce, port=port)
            sign_s = time.perf_counter() - t0
            with phase_window() as window:
                phase = summarize(
                    asyncio.run(drive(port, requests, connections=connections,
                                      duration_s=duration))
                )  # fmt: skip
            out["presign_us_per_order"] = round(1e6 * sign_s / max(1, len(requests)), 1)
        elif name == "half":
            rate = config.get("rate") or max(1.0, out["max"]["orders_per_s"] / 2)
            requests = presign(int(rate * duration * 1.05) + 10, seed=2, first_nonce=nonce,
                               port=port)  # fmt: skip
            with phase_window() as window:
                phase = summarize(
                    asyncio.run(drive(port, requests, connections=connections,
                                      duration_s=duration, rate=rate))
                )  # fmt: skip
            phase["target_rate"] = round(rate)
        elif name == "batch":
            batches = presign_batches(max(1, cap // BATCH_SIZE), BATCH_SIZE, seed=4,
                                      first_nonce=nonce, port=port)  # fmt: skip
            items: Counter[int] = Counter()

            def count_items(_status: int, body: bytes, items: Counter[int] = items) -> None:
                import orjson

                for item in orjson.loads(body).get("results", ()):
                    items[item["status"]] += 1

            with phase_window() as window:
                raw = asyncio.run(
                    drive(port, batches, connections=max(1, connections // 4),
                          duration_s=duration, on_answer=count_items)
                )  # fmt: skip
                phase = summarize(raw)
            phase["requests_per_s"] = phase["orders_per_s"]
            phase["orders_per_s"] = round(items[200] / raw.wall_s) if raw.wall_s else 0
            phase["ok"] = items[200]
            phase["item_statuses"] = {str(s): v for s, v in sorted(items.items())}
        elif name == "ws":
            frames = presign_ws(cap, seed=5, first_nonce=nonce, port=port)
            with phase_window() as window:
                raw = asyncio.run(drive_ws(port, frames, connections=connections,
                                           duration_s=duration))  # fmt: skip
                phase = summarize(raw)
        else:
            raise ValueError(f"unknown phase {name!r}")
        phase.update(window)
        out[name] = phase
    return out


def run_loadgen(stack: Stack | FloorStack, config: dict[str, Any]) -> dict[str, Any]:
    """The load generator in its own process against `stack`, with the CPU of the stack's
    processes per phase."""
    pids: dict[str, list[int] | Callable[[], list[int]]] = {"api_workers": stack.api_worker_pids()}
    if isinstance(stack, Stack):
        assert stack.engine is not None
        pids["engine"] = [stack.engine.pid]
        pids["postgres"] = database_pids(stack.db_name)
        pids["redis"] = redis_pids()
    timeout = 300 + 3 * config["duration"] * len(config["phases"])
    with CpuSampler(pids) as sampler:
        child = subprocess.run(
            [sys.executable, __file__, "--loadgen-child", json.dumps(config)],
            check=True, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
    phases: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    for name in config["phases"]:
        phases[name].update(cpu_breakdown(phases[name], sampler))
    if stack.engine is not None:
        assert stack.engine.poll() is None, "the engine died under load"
    return phases


def signature_figures(quick: bool) -> dict[str, Any]:
    """`bench/sig.py --json` in this run: the signature check and recovery alone, timed
    while nothing else of the benchmark runs."""
    args = [sys.executable, str(Path(__file__).with_name("sig.py")), "--json"]
    if quick:
        args.append("--quick")
    else:
        args += ["--n", "5000"]
    child = subprocess.run(args, check=True, capture_output=True, text=True, timeout=600)
    figures: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return figures


# The targets, each a ratio of two figures from one run: (numerator, denominator,
# bound, "le" | "ge").
RATIO_TARGETS: dict[str, tuple[str, str, float, str]] = {
    "sig_check_vs_recovery": ("sig_fast_mean_us", "sig_recover_mean_us", 1.15, "le"),
    "http_orders_vs_floor": ("orders_per_s", "floor_requests_per_s", 0.5, "ge"),
    "batch_orders_vs_sig_limit": ("batch_orders_per_s", "sig_limit_orders_per_s", 0.4, "ge"),
    "ws_orders_vs_sig_limit": ("ws_orders_per_s", "sig_limit_orders_per_s", 0.3, "ge"),
    "half_load_p99_vs_floor": ("half_load_p99_ms", "floor_half_load_p99_ms", 2.0, "le"),
}

ALL_PHASES = ("max", "half", "batch", "ws")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="API worker processes")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase (≤ 60)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections")
    parser.add_argument(
        "--max-orders", type=int, default=200_000,
        help="pre-signed for each closed-loop phase (a phase ends early if they run out)",
    )  # fmt: skip
    parser.add_argument(
        "--rate", type=float, help="open-loop rate of the half phase (default: half the max)"
    )
    parser.add_argument(
        "--phases", default=",".join(ALL_PHASES),
        help="intake phases to run (max,half,batch,ws); the ratios need all of them",
    )  # fmt: skip
    parser.add_argument("--no-floor", action="store_true", help="skip the bare-route phases")
    parser.add_argument(
        "--server", choices=("uvicorn", "granian"),
        default=os.environ.get("HYBRIDEX_API_SERVER", "uvicorn"),
        help="the HTTP server of the API workers and of the floor (HYBRIDEX_API_SERVER)",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 s phases")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--loadgen-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen_child:
        print(json.dumps(loadgen(json.loads(args.loadgen_child))))
        return
    duration = 3.0 if args.quick else min(60.0, args.duration)
    max_orders = 20_000 if args.quick else args.max_orders
    phases = [p for p in args.phases.split(",") if p]
    if "half" in phases and "max" not in phases and not args.rate:
        parser.error("the half phase needs the max phase or --rate")

    sig = signature_figures(args.quick)
    cores = os.cpu_count() or 1
    config: dict[str, Any] = {
        "duration": duration,
        "connections": args.connections,
        "max_orders": max_orders,
        "rate": args.rate,
    }
    server_env = {"HYBRIDEX_API_SERVER": args.server}
    with running_stack(workers=args.workers, extra_env=server_env) as stack:
        real = run_loadgen(stack, {**config, "port": stack.api_port, "phases": phases})
    floor: dict[str, Any] = {}
    if not args.no_floor:
        # The bare route at its max, then open loop at the very rate of the intake's half phase.
        half_rate = real["half"]["target_rate"] if "half" in real else None
        floor_phases = ["max", "half"] if half_rate else ["max"]
        with floor_stack(workers=args.workers, server=args.server) as bare:
            floor = run_loadgen(
                bare, {**config, "port": bare.api_port, "phases": floor_phases, "rate": half_rate}
            )

    def get(phase: dict[str, Any], name: str, key: str) -> Any:
        return phase.get(name, {}).get(key)

    figures: dict[str, Any] = {
        "floor_requests_per_s": get(floor, "max", "orders_per_s"),
        "orders_per_s": get(real, "max", "orders_per_s"),
        "half_load_p99_ms": get(real, "half", "p99_ms"),
        "floor_half_load_p99_ms": get(floor, "half", "p99_ms"),
        "batch_orders_per_s": get(real, "batch", "orders_per_s"),
        "ws_orders_per_s": get(real, "ws", "orders_per_s"),
        "sig_limit_orders_per_s": round(cores * 1e6 / sig["floor_recover_mean_us"]),
        "sig_fast_mean_us": sig["fast_mean_us"],
        "sig_recover_mean_us": sig["floor_recover_mean_us"],
    }
    ratios: dict[str, Any] = {}
    for name, (num, den, bound, sense) in RATIO_TARGETS.items():
        a, b = figures[num], figures[den]
        value = round(a / b, 3) if a is not None and b else None
        met = None if value is None else (value <= bound if sense == "le" else value >= bound)
        ratios[name] = {"value": value, "target": f"{'≤' if sense == 'le' else '≥'} {bound}",
                        "met": met}  # fmt: skip
    result = {
        "machine": machine(),
        "server": args.server,
        "workers": args.workers,
        "connections": args.connections,
        "duration_s": duration,
        **{k: v for k, v in figures.items() if k != "half_load_p99_ms"},
        "p50_ms": get(real, "max", "p50_ms"),
        "p99_ms": get(real, "max", "p99_ms"),
        "half_load": {
            "orders_per_s": get(real, "half", "orders_per_s"),
            "target_rate": get(real, "half", "target_rate"),
            "p50_ms": get(real, "half", "p50_ms"),
            "p99_ms": get(real, "half", "p99_ms"),
        },
        "ratios": ratios,
        "cpu_us_per_order": {
            name: p["cpu_us_per_order"] for name, p in real.items() if isinstance(p, dict)
        },
        "cpu_share": {
            name: p["cpu_share_of_machine"] for name, p in real.items() if isinstance(p, dict)
        },
        "presign_us_per_order": real.get("presign_us_per_order"),
        "detail": {"intake": real, "floor": floor, "sig": sig},
    }

    print("Order intake (engine + API workers + PostgreSQL + Redis, loopback) against the bare")
    print("route (bench/_floor_app.py) and the signature limit, one run")
    print_machine()
    print(f"{args.workers} {args.server} API workers, {args.connections} connections, "
          f"{duration:g} s a phase")  # fmt: skip
    print()
    print(f"{'phase':<16}{'orders/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}"
          f"{'sent':>9}{'non-200':>9}")  # fmt: skip
    rows = [(f"intake {k}", p) for k, p in real.items() if isinstance(p, dict)]
    rows += [(f"floor {k}", p) for k, p in floor.items() if isinstance(p, dict)]
    for name, p in rows:
        bad = sum(v for s, v in p["statuses"].items() if s != "200") + p["connection_errors"]
        print(f"{name:<16}{p['orders_per_s']:>10,}{p['p50_ms']:>9}{p['p99_ms']:>9}"
              f"{p['p999_ms']:>10}{p['sent']:>9,}{bad:>9,}")  # fmt: skip
    for name, p in real.items():
        if isinstance(p, dict):
            cpu, share = p["cpu_us_per_order"], p["cpu_share_of_machine"]
            print(f"CPU per order, {name}: " + ", ".join(
                f"{k} {v} µs ({100 * share[k]:.0f}%)" for k, v in cpu.items()
            ))  # fmt: skip
    print(f"signature check {sig['fast_mean_us']} µs, recovery alone "
          f"{sig['floor_recover_mean_us']} µs: limit {figures['sig_limit_orders_per_s']:,} "
          f"orders/s on {cores} cores")  # fmt: skip
    for name, r in ratios.items():
        mark = {True: "✓", False: "✗", None: "-"}[r["met"]]
        print(f"{name:<28}{r['value']!s:>8}  target {r['target']}  {mark}")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
