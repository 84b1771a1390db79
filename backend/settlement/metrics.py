"""Prometheus metrics of the settlement worker (alert on `fills_failed` and `oldest_unsettled`).

The names are fixed: `docker/prometheus/alerts.yml` and the Grafana dashboard use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from threading import Lock

from prometheus_client import Counter, Gauge, Histogram

FILLS_FAILED = Counter(
    "hybridex_settlement_fills_failed_total",
    "Fills dropped from settlement because the contract refuses them (alert on this).",
    ["reason"],
)
FILLS_SETTLED = Counter("hybridex_settlement_fills_settled_total", "Fills settled on chain.")
BATCHES_SENT = Counter("hybridex_settlement_batches_sent_total", "settleBatch transactions signed.")
BATCHES_SETTLED = Counter("hybridex_settlement_batches_settled_total", "Batches confirmed.")
TX_REPLACED = Counter(
    "hybridex_settlement_tx_replacements_total", "Stuck transactions replaced with bumped fees."
)
TX_REVERTED = Counter("hybridex_settlement_tx_reverted_total", "Mined transactions that reverted.")
REORGED = Counter("hybridex_settlement_tx_reorged_total", "Mined transactions a reorg removed.")
RELEASES_OWED = Gauge(
    "hybridex_settlement_withdrawal_releases_owed",
    "Failed withdrawals whose funds the engine has not released yet (sent each tick).",
)
CANCELS_REFUSED = Counter(
    "hybridex_settlement_cancels_refused_total",
    "Signed cancels the contract's simulation refused; kept out of every later batch.",
)
REVERTS_OWED = Gauge(
    "hybridex_settlement_fill_reverts_owed",
    "Failed fills the engine has not reverted yet: not sent, or waiting for later reverts.",
)
FILLS_REVERTED = Counter(
    "hybridex_settlement_fills_reverted_total",
    "Failed fills undone in the engine by RevertFill.",
)
HALTED = Gauge(
    "hybridex_settlement_halted",
    "1 while settlement is stopped because a settled batch does not match the recorded one.",
)
OLDEST_UNSETTLED = Gauge(
    "hybridex_settlement_oldest_unsettled_seconds",
    "Age of the oldest fill neither settled nor failed (0 when none); from the database, per tick.",
)
# Gauges are floats: these are for alerting, never for accounting.
OPERATOR_BALANCE = Gauge(
    "hybridex_settlement_operator_balance_wei",
    "ETH balance of the operator account that pays settlement gas, read once per tick.",
)
OPERATOR_BALANCE_ALERT = Gauge(
    "hybridex_settlement_operator_balance_alert_wei",
    "HYBRIDEX_OPERATOR_BALANCE_ALERT_WEI: below it, HybridexOperatorBalanceLow fires.",
)
LAST_TICK = Gauge(
    "hybridex_settlement_last_tick_timestamp_seconds",
    "Unix time of the last settlement tick: it stops moving when beat or every worker is down.",
)
UNSETTLED_EXPOSURE = Gauge(
    "hybridex_settlement_unsettled_exposure",
    "Base units of `token` moving in fills not settled yet (base: amount, quote: quote amount).",
    ["token"],
)
BATCH_GAS = Histogram(
    "hybridex_settlement_batch_gas",
    "gasUsed of each settled batch.",
    buckets=(
        100_000,
        250_000,
        500_000,
        1_000_000,
        2_000_000,
        3_000_000,
        4_000_000,
        5_000_000,
        6_000_000,
        8_000_000,
        10_000_000,
        12_000_000,
        16_000_000,
    ),
)

_exposed: set[str] = set()
_exposed_lock = Lock()


def set_exposure(by_token: Mapping[str, int]) -> None:
    """Sets every token's exposure; a token seen before and absent now goes to 0 (not stale)."""
    with _exposed_lock:
        for token in _exposed - set(by_token):
            UNSETTLED_EXPOSURE.labels(token=token).set(0)
        for token, amount in by_token.items():
            UNSETTLED_EXPOSURE.labels(token=token).set(amount)
        _exposed.update(by_token)
