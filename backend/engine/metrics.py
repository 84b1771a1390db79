"""Prometheus metrics of the engine process, sampled off the hot path.

A sampler reads the service's state once per interval (queue depths, sequence numbers, book
sizes), so the command loop carries no metrics code. `hybridex engine` serves them on
`HYBRIDEX_ENGINE_METRICS_HOST:HYBRIDEX_ENGINE_METRICS_PORT` when the port is set.
"""

from __future__ import annotations

import asyncio

from prometheus_client import Counter, Gauge

from backend.domain.types import Side
from backend.engine.service import EngineService

LAST_SEQ = Gauge(
    "hybridex_engine_last_seq", "Sequence number of the last applied command (rate = commands/s)."
)
QUEUE_DEPTH = Gauge(
    "hybridex_engine_queue_depth", "Commands received but not yet journaled and applied."
)
PERSIST_LAG = Gauge(
    "hybridex_engine_persist_lag_commands",
    "Commands applied but not yet stored in the database by the persister.",
)
FEED_BACKLOG = Gauge(
    "hybridex_engine_feed_backlog_groups",
    "Command groups whose feed messages are not yet published.",
)
REPLAYED = Gauge("hybridex_engine_replayed_commands", "Commands replayed at the last start-up.")
BOOK_LEVELS = Gauge(
    "hybridex_engine_book_levels",
    "Price levels on one side of a market's book.",
    ["market", "side"],
)
BOOK_ORDERS = Gauge(
    "hybridex_engine_book_orders",
    "Resting orders on one side of a market's book.",
    ["market", "side"],
)
BEST_PRICE = Gauge(
    "hybridex_engine_best_price",
    "Best bid / ask price (18-decimal fixed point; 0 = empty side). For display only.",
    ["market", "side"],
)
REFUSED_FRAMES = Counter(
    "hybridex_engine_refused_frames",
    "Frames the engine port refused: reason unauthenticated (no handshake), bad_key (wrong "
    "role key), bad_tag (forged or replayed frame), forbidden (outside the role's allow-list).",
    ["reason", "role"],
)
UP = Gauge("hybridex_engine_up", "1 while the command loop runs, 0 once it has failed.")
REFUSED_FOR_LAG = Counter(
    "hybridex_engine_refused_persistence_lagging",
    "Commands refused with PERSISTENCE_LAGGING because the database is behind the engine.",
    ["command"],
)
_refused_seen: dict[str, int] = {}


def sample(service: EngineService) -> None:
    engine = service.engine
    LAST_SEQ.set(engine.last_seq)
    QUEUE_DEPTH.set(service.queue_depth)
    PERSIST_LAG.set(engine.last_seq - service.sink.cursor() if service.sink is not None else 0)
    FEED_BACKLOG.set(service.feed_backlog)
    REPLAYED.set(service.replayed)
    UP.set(0 if service.failed is not None else 1)
    for kind, count in list(service.refused_for_lag.items()):
        REFUSED_FOR_LAG.labels(kind).inc(count - _refused_seen.get(kind, 0))
        _refused_seen[kind] = count
    for market_id in engine.market_ids():
        for side in (Side.BUY, Side.SELL):
            levels, orders, best = engine.side_stats(market_id, side)
            name = side.name.lower()
            BOOK_LEVELS.labels(market_id, name).set(levels)
            BOOK_ORDERS.labels(market_id, name).set(orders)
            BEST_PRICE.labels(market_id, name).set(best)


async def sample_forever(service: EngineService, interval_s: float = 1.0) -> None:
    while not service.stopped.is_set():
        sample(service)
        await asyncio.sleep(interval_s)
    sample(service)
