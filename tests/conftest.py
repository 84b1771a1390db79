"""Shared fixtures: real PostgreSQL, Redis, anvil and eth-tester (no mocks).

Services are shared with other users of this machine, so every fixture makes its own
database / key prefix and cleans up after itself. Connection parameters come from
HYBRIDEX_TEST_PG_ADMIN_URL and HYBRIDEX_TEST_REDIS_URL (defaults: the local servers).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from backend.chain.anvil import Anvil

PG_ADMIN_URL = os.environ.get(
    "HYBRIDEX_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("HYBRIDEX_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything not marked otherwise is a unit test, so `-m unit` / `-m integration` split all.
    for item in items:
        if not any(item.iter_markers(name="integration")):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database for this test session, dropped afterwards."""
    name = f"hybridex_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def db_url(pg_url: str) -> Iterator[str]:
    """A fresh, migrated database next to the session's `pg_url`, dropped after the test."""
    from backend.db.migrate import upgrade

    name = f"{make_url(pg_url).database}_t{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def redis_prefix() -> Iterator[tuple[str, str]]:
    """(url, key prefix) on a shared Redis; every key under the prefix is deleted afterwards."""
    import redis

    prefix = f"hybridex-test:{uuid.uuid4().hex[:12]}:"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        yield REDIS_URL, prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    """A fresh anvil child process on a free loopback port, stopped after the test."""
    with Anvil() as node:
        yield node


@pytest.fixture(scope="session")
def anvil_session() -> Iterator[Anvil]:
    """One anvil for a whole session, for tests that isolate themselves with evm_snapshot."""
    with Anvil() as node:
        yield node


@pytest.fixture
def eth_tester_w3() -> Any:
    """An in-process py-evm chain through web3 (fast unit tests; explicit gas, SPEC §13)."""
    from eth_tester import EthereumTester, PyEVMBackend
    from web3 import Web3
    from web3.providers.eth_tester import EthereumTesterProvider

    tester = EthereumTester(PyEVMBackend())
    return Web3(EthereumTesterProvider(tester))
