"""Reconciliation runs periodically wherever settlement's beat runs."""

from __future__ import annotations

import pytest

from backend.config import Settings
from backend.settlement.celery_app import make_app

pytestmark = pytest.mark.unit


def test_beat_schedules_the_reconcile_task_at_the_configured_interval() -> None:
    app = make_app(Settings(reconcile_interval_s=42.0))
    entry = app.conf.beat_schedule["reconcile"]
    assert entry["task"] == "reconcile.run"
    assert entry["schedule"] == 42.0
    app.loader.import_default_modules()
    assert "reconcile.run" in app.tasks
