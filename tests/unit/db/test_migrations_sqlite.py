"""The migrations build exactly the models' schema on SQLite, and tear it down again."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.db.base import Base
from backend.db.migrate import current, downgrade, upgrade
from tests.unit.db.dbchecks import (
    assert_no_drift,
    check_constraints_refuse_bad_rows,
    head_revision,
    roundtrip_every_model,
    table_names,
)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hybridex.db'}"


def test_upgrade_to_head_creates_every_table(url: str) -> None:
    assert current(url) is None
    upgrade(url)
    assert current(url) == head_revision()
    assert table_names(url) == set(Base.metadata.tables) | {"alembic_version"}


def test_autogenerate_finds_no_drift(url: str) -> None:
    upgrade(url)
    assert_no_drift(url)


def test_downgrade_to_base_leaves_only_alembic_version(url: str) -> None:
    upgrade(url)
    downgrade(url, "base")
    assert current(url) is None
    assert table_names(url) == {"alembic_version"}
    upgrade(url)  # and the way back up still works
    assert current(url) == head_revision()


def test_every_model_round_trips_max_values(url: str) -> None:
    upgrade(url)
    roundtrip_every_model(url)


def test_migrations_run_from_any_working_directory(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    upgrade(url)
    assert current(url) == head_revision()


def test_check_constraints_refuse_bad_rows(url: str) -> None:
    upgrade(url)
    check_constraints_refuse_bad_rows(url)
