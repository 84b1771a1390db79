"""Fixtures of the stream tests: a NATS JetStream server of the test's own (the shared one on
:4222 is never ours to stop), outboxes on SQLite and PostgreSQL, and a reader of what arrived."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from backend.db import make_engine, session_factory, unit_of_work
from backend.db.migrate import upgrade
from backend.stream import outbox
from backend.stream.consume import JetStreamReader
from backend.stream.outbox import StreamEvent

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateNats:
    """nats-server -js on a free port with its own store; `stop()` / `start()` keep both, so a
    restart is the same broker with the same stream."""

    def __init__(self, store: Path) -> None:
        self.port = free_port()
        self.store = store
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def outbox_url(request: pytest.FixtureRequest) -> str:
    """The relay's database on both engines it runs on."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("db_url"))


@pytest.fixture
def factory(outbox_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(outbox_url)
    yield session_factory(engine)
    engine.dispose()


KEYS = ["WETH-USDC", "WBTC-USDC", "0x" + "ab" * 20, "0x" + "cd" * 20, "risk.breaker"]


def add_events(factory: sessionmaker[Session], start: int, count: int, chunk: int = 500) -> None:
    """Events start..start+count-1, round robin over KEYS; `n` is each key's order."""
    for base in range(start, start + count, chunk):
        with unit_of_work(factory) as session:
            outbox.add(
                session,
                [
                    StreamEvent(
                        f"ev-{n}",
                        "trade" if n % 3 else "risk",  # no payload the consumer reads
                        KEYS[n % len(KEYS)],
                        {"n": n, "amount": str(10**30 + n)},
                    )
                    for n in range(base, min(base + chunk, start + count))
                ],
            )


def outbox_rows(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return outbox.lag(session)[0]


async def read_all(url: str, prefix: str, expected: int, timeout_s: float = 30.0) -> list[dict]:
    """Every message of the stream, in stream order, once `expected` distinct ids arrived."""
    reader = JetStreamReader(url, prefix, f"check-{uuid.uuid4().hex[:6]}")
    await reader.start()
    got: list[dict] = []
    ids: set[str] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while len(ids) < expected and time.monotonic() < deadline:
            messages = await reader.fetch(1000, timeout=1.0)
            for msg in messages:
                envelope = json.loads(msg.data)
                got.append(envelope)
                ids.add(envelope["id"])
            await reader.ack(messages)
    finally:
        await reader.close()
    return got


def assert_in_order_per_key(envelopes: list[dict], expected: int) -> None:
    """Each id exactly `expected` distinct, and each key's first deliveries in `n` order."""
    seen: set[str] = set()
    last: dict[str, int] = {}
    for e in envelopes:
        if e["id"] in seen:
            continue
        seen.add(e["id"])
        n = e["data"]["n"]
        assert n > last.get(e["key"], -1), f"key {e['key']}: {n} after {last[e['key']]}"
        last[e["key"]] = n
    assert len(seen) == expected
