"""Process settings of the engine: the garbage collector.

The books are long-lived: freezing what start-up (snapshot + replay) built keeps the collector
from walking it again (a full pass over 1M resting orders pauses ~100 ms), and a high
young-generation threshold keeps collections rare and outside the p99 of a command.
`bench/engine.py --gc tuned` measures the same regime.
"""

from __future__ import annotations

import gc

ENGINE_GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*ENGINE_GC_THRESHOLDS)
