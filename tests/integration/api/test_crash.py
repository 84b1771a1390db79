"""Crash test through HTTP (SPEC §5, §9): the production deployment of `bench/api.py`
(`hybridex engine` + `hybridex api --workers 2`, PostgreSQL, Redis), signed orders at load.

1. SIGKILL the engine mid-stream, restart it;
2. SIGKILL one API worker mid-stream (uvicorn replaces it).

Every order answered 200 is in the database with every fill it reported, re-posting one
answers the same, and the restarted engine's state hash equals a clean replay of the journal.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text

from backend.db.session import make_engine
from tests.conftest import PG_ADMIN_URL, REDIS_URL
from tests.load import bench_api

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def ok_answers(result: Any) -> list[tuple[bytes, dict[str, Any]]]:
    return [(h, orjson.loads(body)) for h, status, body in result.answers if status == 200]


def run_until_killed(
    b: ModuleType, port: int, requests: list[Any], acked_before_kill: int, kill: Any
) -> tuple[Any, int]:
    """Drive `requests` at load; once `acked_before_kill` are answered 200, call `kill`.
    Returns the result and how many answers had arrived at the kill."""
    result = b.PhaseResult()

    async def go() -> int:
        task = asyncio.create_task(
            b.drive(port, requests, connections=24, duration_s=90, keep_answers=True,
                    result=result)
        )  # fmt: skip
        while result.statuses.get(200, 0) < acked_before_kill:
            assert not task.done(), f"load ended early: {result.statuses}"
            await asyncio.sleep(0.005)
        at_kill = len(result.answers)
        await asyncio.to_thread(kill)
        await task
        return at_kill

    return result, asyncio.run(go())


def test_sigkill_engine_and_api_worker_under_http_load_lose_nothing_acknowledged() -> None:
    b = bench_api()
    with b.running_stack(workers=2, pg_admin_url=PG_ADMIN_URL, redis_url=REDIS_URL) as stack:
        port = stack.api_port
        requests = b.presign(7_000, seed=5, first_nonce=1, port=port)

        # 1. the engine dies mid-stream: the API answers 503 (or 202) until it is back
        engine_phase, _ = run_until_killed(b, port, requests[:4_000], 1_500, stack.kill_engine)
        assert engine_phase.statuses[200] >= 1_500
        assert set(engine_phase.statuses) <= {200, 202, 503}, engine_phase.statuses
        assert engine_phase.statuses[503] > 0, "the kill landed after the load"
        assert engine_phase.statuses[202] <= 24  # at most the requests in flight at the kill
        stack.start_engine()

        # 2. an API worker dies mid-stream: the other serves, the supervisor replaces it
        victim = stack.api_worker_pids()[0]
        worker_phase, at_kill = run_until_killed(
            b, port, requests[4_000:], 1_000, lambda: os.kill(victim, signal.SIGKILL)
        )
        after_kill = [s for _, s, _ in worker_phase.answers[at_kill:]]
        assert after_kill.count(200) > 0, "nothing was served after the worker died"
        refused = [body for _, s, body in worker_phase.answers if s not in (200, 202)]
        assert set(worker_phase.statuses) <= {200, 202}, (worker_phase.statuses, refused[:3])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pids = stack.api_worker_pids()
            if len(pids) == 2 and victim not in pids:
                break
            time.sleep(0.2)
        assert victim not in stack.api_worker_pids()
        assert len(stack.api_worker_pids()) == 2

        acked = ok_answers(engine_phase) + ok_answers(worker_phase)
        assert all(a["orderHash"] == "0x" + h.hex() for h, a in acked)

        # re-posting acknowledged orders (after both crashes) answers the same order and fills
        by_hash = dict(requests)
        for h, answer in acked[:: max(1, len(acked) // 20)]:
            body = by_hash[h].split(b"\r\n\r\n", 1)[1]
            again = httpx.post(
                f"http://127.0.0.1:{port}/v1/orders", content=body,
                headers={"content-type": "application/json"}, timeout=10,
            ).json()  # fmt: skip
            assert (again["orderHash"], again["seq"], again["fills"]) == (
                answer["orderHash"], answer["seq"], answer["fills"],
            )  # fmt: skip

        # a retry of an order answered 202 (sent, engine died: maybe journaled) or 503 (not
        # sent) is safe either way: the same order, never a second one
        unanswered = [h for h, status, _ in engine_phase.answers if status != 200]
        retried: set[bytes] = set()
        for h in unanswered[:: max(1, len(unanswered) // 50)]:
            body = by_hash[h].split(b"\r\n\r\n", 1)[1]
            r = httpx.post(
                f"http://127.0.0.1:{port}/v1/orders", content=body,
                headers={"content-type": "application/json"}, timeout=10,
            )  # fmt: skip
            assert r.status_code == 200, r.text
            acked.append((h, r.json()))
            retried.add(h)
        assert retried

        async def state() -> tuple[int, str]:
            client = stack.engine_client("api")
            try:
                result: tuple[int, str] = await client.state()
                return result
            finally:
                await client.close()

        seq, digest = asyncio.run(state())
        assert seq >= max(a["seq"] for _, a in acked)
        assert stack.stop_engine() == 0  # graceful: the persister is flushed

        verify = subprocess.run(
            [sys.executable, "-m", "backend.cli.main", "engine", "--verify-journal",
             str(stack.journal_dir)],
            cwd=ROOT, env=stack.env(), capture_output=True, check=True,
        )  # fmt: skip
        clean = json.loads(verify.stdout.decode().strip().splitlines()[-1])
        assert (clean["seq"], clean["state_hash"]) == (seq, digest)

        fills = {(f["seq"], f["fillIndex"]) for _, a in acked for f in a["fills"]}
        assert fills, "the workload crossed nothing"
        db = make_engine(stack.db_url)
        with db.connect() as conn:
            orders = {bytes(r[0]) for r in conn.execute(text("SELECT order_hash FROM orders"))}
            db_fills = {tuple(r) for r in conn.execute(text("SELECT seq, fill_index FROM fills"))}
            cursor = conn.execute(text("SELECT seq FROM engine_cursors")).scalar_one()
        db.dispose()
        # 503 means the engine could not take it: such an order left no trace unless retried
        refused = {h for h, status, _ in engine_phase.answers if status == 503} - retried
        assert refused
        assert not refused & orders
        assert {h for h, _ in acked} <= orders
        assert fills <= db_fills
        assert cursor == seq
