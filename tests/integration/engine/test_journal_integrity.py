"""The `hybridex engine` process refuses a damaged journal, and one behind its consumers.

A real engine process persists to a real PostgreSQL and publishes to a real Redis, and is
stopped gracefully. Then its journal is damaged as a disk or an operator would damage it:
- one flipped bit in an early record: the engine exits non-zero with `JournalCorruptError` and
  leaves every journal byte as it was (it used to cut the journal there and start at seq 0);
- the journal's last groups deleted, so it ends before the persister's cursor: the engine
  refuses to start (it used to start, reuse those seqs, and the persister skipped them).
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from backend.cli.engine import JOURNAL_REFUSED
from backend.db.session import make_engine
from backend.engine.auth import Role
from tests.integration.engine.test_crash import FEE_RECIPIENT, free_port, start_engine, wait_ready
from tests.unit.engine.helpers import RoleClients, key_env, setup, workload

pytestmark = pytest.mark.integration

SEGMENT_HEADER = 20
TRAILER = struct.Struct("<IIIQI")
TAG = 0xFFFFFFFF


def engine_env(db_url: str, redis_prefix: tuple[str, str], journal_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HYBRIDEX_DATABASE_URL": db_url,
        "HYBRIDEX_REDIS_URL": redis_prefix[0],
        "HYBRIDEX_REDIS_KEY_PREFIX": redis_prefix[1],
        "HYBRIDEX_ENGINE_TRANSPORT": "tcp",
        "HYBRIDEX_ENGINE_PORT": str(free_port()),
        **key_env(),
        "HYBRIDEX_ENGINE_JOURNAL_DIR": str(journal_dir),
        "HYBRIDEX_ENGINE_GROUP_MAX": "64",
        "HYBRIDEX_FEE_RECIPIENT": FEE_RECIPIENT,
    }


def run_and_stop(env: dict[str, str], log: Path, commands: int) -> int:
    """Start the engine, have it journal and persist `commands` commands, stop it (SIGTERM).
    Returns the last acknowledged seq."""

    async def main() -> int:
        proc = start_engine(env, log)
        client = RoleClients(("127.0.0.1", int(env["HYBRIDEX_ENGINE_PORT"])))
        try:
            await wait_ready(client[Role.API], proc)
            for cmd, intake in setup(6):
                await client.submit(cmd, timeout=5, intake=intake)
            outcomes = await asyncio.gather(
                *(client.submit(c, timeout=5, intake=i) for c, i in workload(commands, 6))
            )
        finally:
            await client.close()
            proc.terminate()
            assert proc.wait(30) == 0
        return max(o.seq for o in outcomes)

    return asyncio.run(main())


def start_and_wait_exit(env: dict[str, str], log: Path) -> int:
    """The engine's exit code; fails if it is still running (it started) after 60 s."""
    proc = start_engine(env, log)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)
        raise AssertionError("the engine started on a bad journal:\n" + log.read_text()[-3000:])
    return proc.returncode


def persister_cursor(db_url: str) -> int:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        cursor = conn.execute(text("SELECT seq FROM engine_cursors WHERE name = 'persister'"))
        seq = int(cursor.scalar_one())
    engine.dispose()
    return seq


def header_size(data: bytes) -> int:
    # Format 2 segments start with a header; format 1 (before the group trailer) did not,
    # which lets this test run unchanged against the code before it.
    return SEGMENT_HEADER if data[:8] == b"HXJRNL02" else 0


def clean_cuts(data: bytes) -> list[int]:
    """Offsets where the segment can end without a torn tail: past each group trailer (format
    2), past each record (format 1)."""
    ends, pos = [], header_size(data)
    while pos < len(data):
        (length,) = struct.unpack_from("<I", data, pos)
        if length == TAG:
            pos += TRAILER.size
            ends.append(pos)
        else:
            pos += 8 + length
            if not header_size(data):
                ends.append(pos)
    return ends


def test_flipped_bit_in_an_early_record_stops_the_engine(
    db_url: str, redis_prefix: tuple[str, str], tmp_path: Path
) -> None:
    journal_dir, log = tmp_path / "journal", tmp_path / "engine.log"
    env = engine_env(db_url, redis_prefix, journal_dir)
    last = run_and_stop(env, log, 3_000)
    (segment,) = journal_dir.glob("journal-*.log")
    data = bytearray(segment.read_bytes())
    head = header_size(data)
    (first_length,) = struct.unpack_from("<I", data, head)
    data[head + 8 + first_length + 8 + 5] ^= 0x01  # inside record 2's payload
    segment.write_bytes(bytes(data))
    before = {p.name: p.read_bytes() for p in journal_dir.iterdir() if p.is_file()}

    code = start_and_wait_exit(env, log)

    assert code == JOURNAL_REFUSED
    output = log.read_text()
    assert "JournalCorruptError" in output
    assert segment.name in output
    assert "seq 1" in output
    assert {p.name: p.read_bytes() for p in journal_dir.iterdir() if p.is_file()} == before
    assert persister_cursor(db_url) == last  # nothing was persisted past it, nothing redone


def test_journal_behind_the_persister_cursor_refuses_to_start(
    db_url: str, redis_prefix: tuple[str, str], tmp_path: Path
) -> None:
    journal_dir, log = tmp_path / "journal", tmp_path / "engine.log"
    env = engine_env(db_url, redis_prefix, journal_dir)
    last = run_and_stop(env, log, 3_000)
    cursor = persister_cursor(db_url)
    assert cursor == last
    # Lose the last groups cleanly (a restore from an older copy of the journal volume), and
    # the snapshots with them: the database's cursor alone must stop the engine.
    (segment,) = journal_dir.glob("journal-*.log")
    data = segment.read_bytes()
    ends = clean_cuts(data)
    segment.write_bytes(data[: ends[len(ends) // 2]])
    for snap in (journal_dir / "snapshots").glob("*"):
        snap.unlink()

    code = start_and_wait_exit(env, log)

    assert code == JOURNAL_REFUSED
    output = log.read_text()
    assert "JournalBehindError" in output
    assert f"persister cursor is {cursor}" in output
    assert f"feed store's engine seq is {cursor}" in output  # Redis holds them too
    assert segment.read_bytes() == data[: ends[len(ends) // 2]]  # nothing appended
    assert persister_cursor(db_url) == cursor
