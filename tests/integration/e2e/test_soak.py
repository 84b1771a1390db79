"""The crash loop (`bench/soak.py --quick`): one SIGKILL per process role, and after each round
nothing acknowledged is lost, nothing is settled twice, and reconcile finds nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SOAK = Path(__file__).resolve().parents[3] / "bench" / "soak.py"


def test_every_role_killed_mid_trading_loses_nothing_and_reconciles() -> None:
    done = subprocess.run(
        [sys.executable, str(SOAK), "--quick", "--json"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.stdout.strip(), done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["failed_rounds"] == [], result
    assert done.returncode == 0
    assert result["rounds_survived"] == result["rounds"] == 4
    assert result["kills"] == {"engine": 1, "api": 1, "indexer": 1, "worker": 1}
    assert (result["discrepancies"], result["double_settled"], result["missing"]) == (0, 0, 0)
    # Every round also compared the live engine's ledger with the database.
    assert result["engine_compared_rounds"] == result["rounds"], result
    # the rounds did trade, and the crashes did reach the traders
    assert result["orders_acknowledged"] > 0
    assert result["fills_acknowledged"] > 0
    assert result["withdrawals_acknowledged"] > 0
    assert result["accounts_reconciled"] >= 4
    assert result["answers_asked_again"] > 0
