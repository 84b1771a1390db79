"""The reconciliation result's event matches its schema (clean, and with discrepancies)."""

from __future__ import annotations

import json

from backend.reconcile.compare import Discrepancy, Report
from backend.reconcile.tasks import reconciliation_event
from tests.stream_schemas import validator

TRADER = "0x" + "Ab" * 20


def test_reconciliation_event_matches_its_schema() -> None:
    bad = Discrepancy("balance_mismatch", TRADER, TRADER, {"engine": 5, "chain": -2})
    for found in ([], [bad]):
        report = Report(7, 40, 3, 6, {}, 1, 0, found)
        e = reconciliation_event(12, 34, report)
        message = {"id": e.event_id, "type": e.type, "version": 1, "key": e.key, "data": e.payload}
        message = json.loads(json.dumps(message))
        assert not list(validator("reconciliation", 1).iter_errors(message))
        assert e.event_id == "recon-12"
        assert e.payload["clean"] is (not found)
