"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.chain.anvil import Anvil
from tests.integration.stream.conftest import NATS_SERVER, PrivateNats


@pytest.fixture
def node() -> Iterator[Anvil]:
    """A fresh anvil chain of this test's own, on a free port, stopped after it."""
    with Anvil() as anvil:
        yield anvil


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[PrivateNats]:
    """A NATS JetStream of this test's own (the shared one on :4222 is never ours to stop)."""
    if not Path(NATS_SERVER).exists():
        pytest.skip("nats-server is not installed")
    server = PrivateNats(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()
