"""Prometheus metrics of the indexer (alert on `node_up == 0`, a growing `lag_blocks`, or a
large `node_head_age_seconds`). `hybridex indexer` serves them when
`HYBRIDEX_INDEXER_METRICS_PORT` is set."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INDEXED_BLOCK = Gauge("hybridex_indexer_indexed_block", "Highest block committed by the indexer.")
NODE_HEAD = Gauge("hybridex_indexer_node_head_block", "The node's latest block number.")
LAG_BLOCKS = Gauge(
    "hybridex_indexer_lag_blocks", "Blocks the indexer is behind the node's head (node − indexed)."
)
NODE_HEAD_AGE = Gauge(
    "hybridex_indexer_node_head_age_seconds",
    "Wall-clock age of the newest block indexed while following the head (a node that is "
    "behind the network, or a stalled chain, makes it grow).",
)
NODE_UP = Gauge("hybridex_indexer_node_up", "1 if the last RPC step succeeded, 0 if it failed.")
STEP_FAILURES = Counter(
    "hybridex_indexer_step_failures_total", "Indexer steps that failed and were retried.", ["code"]
)
RPC_RETRIES = Counter(
    "hybridex_indexer_rpc_retries_total", "JSON-RPC attempts that failed and were retried."
)
REORGS = Counter("hybridex_indexer_reorgs_total", "Reorgs rolled back.")
REORG_DEPTH = Histogram(
    "hybridex_indexer_reorg_depth",
    "Blocks orphaned per reorg rolled back.",
    buckets=(1, 2, 3, 5, 10, 20, 32, 64, 128),
)
CONFIRMATIONS_BACKLOG = Gauge(
    "hybridex_indexer_confirmations_backlog",
    "Deposits seen on chain and not yet credited (waiting for confirmations or the engine).",
)
HALTED = Gauge(
    "hybridex_indexer_halted",
    "1 once the indexer stopped on a mismatch between the chain and the recorded settlement.",
)
EVENTS = Counter("hybridex_indexer_events_total", "Exchange events indexed.")
