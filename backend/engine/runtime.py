"""Process settings of the engine: its service options and the garbage collector.

The books are long-lived: freezing what start-up (snapshot + replay) built keeps the collector
from walking it again (a full pass over 1M resting orders pauses ~100 ms), and a high
young-generation threshold keeps collections rare and outside the p99 of a command.
`bench/engine.py --gc tuned` measures the same regime.
"""

from __future__ import annotations

import gc
from typing import Any

from backend.config import Settings

ENGINE_GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*ENGINE_GC_THRESHOLDS)


def service_options(settings: Settings) -> dict[str, Any]:
    """`EngineService.open` keyword arguments that come from the settings (the process and
    `hybridex dev` open the same service)."""
    return {
        "snapshot_every": settings.engine_snapshot_every,
        "group_max": settings.engine_group_max,
        "sweep_interval": settings.engine_sweep_interval_s,
        "fee_recipient": settings.fee_recipient,
        "persist_lag_max": settings.engine_persist_lag_max,
        "engine": settings.engine,
        "stream": settings.stream_url is not None,  # the persister writes the stream's outbox
    }
