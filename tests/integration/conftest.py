"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from backend.chain.anvil import Anvil


@pytest.fixture
def node() -> Iterator[Anvil]:
    """A fresh anvil chain of this test's own, on a free port, stopped after it."""
    with Anvil() as anvil:
        yield anvil
