"""The event stream after a trading session on the dev stack: the reference consumer
(`hybridex consume`), restarted in the middle, rebuilds every trader's balances from the
stream alone, and they equal the API's; every message on the broker is valid against its
schema (docs/events), each key's events in order, every fill reaches `settled` and the
withdrawal is seen by all three writers."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from backend.db import make_engine, session_factory
from backend.stream import outbox
from backend.stream.consume import JetStreamReader
from tests.integration.e2e.test_round_trip import DevStack, _env
from tests.integration.stream.conftest import PrivateNats, free_port, read_all
from tests.stream_schemas import check_key_order, validator

pytestmark = pytest.mark.integration

ADMIN = "stream-test-admin-token-" + "x" * 16


def consume(tmp_path: Path, stack: DevStack, env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "backend.cli.main", "consume", "--state",
         str(tmp_path / "balances.json"), "--idle-s", "2", *args],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env=_env(tmp_path, stack.api_port, **env), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def withdrawal_states(messages: list[dict]) -> set[tuple[str, str]]:
    return {(m["data"]["source"], m["data"]["status"]) for m in messages
            if m["type"] == "withdrawal"}  # fmt: skip


async def read_until(
    url: str, prefix: str, done: Callable[[list[dict]], bool], timeout_s: float = 30.0
) -> list[dict]:
    """The stream's messages from the start, read until `done(messages)` or the timeout."""
    reader = JetStreamReader(url, prefix, f"until-{uuid.uuid4().hex[:6]}")
    await reader.start()
    got: list[dict] = []
    deadline = time.monotonic() + timeout_s
    try:
        while not done(got) and time.monotonic() < deadline:
            messages = await reader.fetch(1000, timeout=1.0)
            got += [json.loads(m.data) for m in messages]
            await reader.ack(messages)
    finally:
        await reader.close()
    return got


def test_consumer_rebuilds_the_api_balances_across_a_restart(
    tmp_path: Path, nats_server: PrivateNats
) -> None:
    env = {
        "HYBRIDEX_STREAM_URL": nats_server.url,
        "HYBRIDEX_STREAM_SUBJECT_PREFIX": f"e2e{uuid.uuid4().hex[:8]}",
        "HYBRIDEX_ADMIN_TOKEN": ADMIN,
    }
    stack = DevStack(tmp_path, free_port(), **env)
    try:
        assert f"Stream    {nats_server.url}" in stack.banner
        result = stack.demo(tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        factory = session_factory(make_engine(f"sqlite:///{tmp_path / 'dev.db'}"))
        deadline = time.monotonic() + 60
        while True:  # the relay has published everything written so far
            with factory() as session:
                if outbox.lag(session)[0] == 0:
                    break
            assert time.monotonic() < deadline, "the relay did not drain the outbox"
            time.sleep(0.2)

        first = consume(tmp_path, stack, env, "--limit", "5")  # stops in the middle
        assert first.startswith("5 events applied"), first
        second = consume(tmp_path, stack, env, "--compare", stack.api)
        assert "balances and open orders" in second, second
        assert "equal to the API's" in second, second
        counts = re.match(
            r"(\d+) events applied \((\d+) duplicates ignored\), (\d+) traders", second
        )
        assert counts, second
        events, duplicates, traders = map(int, counts.groups())
        assert events > 5
        assert duplicates == 0  # the restart resumed from the durable cursor
        assert traders >= 2  # the demo's buyer and seller at least

        # What arrived on the broker is what the schemas describe, each key in engine order.
        got = asyncio.run(read_all(nats_server.url, env["HYBRIDEX_STREAM_SUBJECT_PREFIX"], events))
        assert len({m["id"] for m in got}) == events
        for message in got:
            errors = list(validator(message["type"], message["version"]).iter_errors(message))
            assert not errors, (message, [e.message for e in errors[:3]])
        check_key_order(got)
        types = {m["type"] for m in got}
        assert {"trade", "fill", "order", "balance", "deposit", "withdrawal"} <= types, types
        # Every fill of the session reached the chain, and its withdrawal too, on the stream.
        states = {(m["data"]["fill_id"], m["data"]["side"], m["data"]["state"])
                  for m in got if m["type"] == "fill"}  # fmt: skip
        fills = {(f, s) for f, s, _ in states}
        assert fills
        assert {(f, s, "settled") for f, s in fills} <= states, states
        # The indexer may record the withdrawal after the demo saw it confirmed: read on.
        expected = {
            ("engine", "reserved"),
            ("settlement", "submitted"),
            ("settlement", "confirmed"),
            ("chain", "seen"),
            ("chain", "confirmed"),
        }
        later = asyncio.run(read_until(nats_server.url, env["HYBRIDEX_STREAM_SUBJECT_PREFIX"],
                                       lambda ms: withdrawal_states(ms) >= expected))  # fmt: skip
        assert withdrawal_states(later) == expected
    finally:
        stack.stop()
