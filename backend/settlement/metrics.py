"""Prometheus metrics of the settlement worker (alert on `fills_failed`)."""

from __future__ import annotations

from prometheus_client import Counter

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
