"""Pure, deterministic matching engine: `Engine.apply(command) -> events` (SPEC §4, §5).

`Engine` is the native core (`backend.matching.native.NativeEngine`, Rust) unless
`HYBRIDEX_ENGINE=python` selects the reference model (`backend.matching.engine.Engine`, also
importable as `PythonEngine`). Both implement `EngineView`, all the runtime reads of them.
"""

import os

from backend.matching.commands import (
    AddMarket,
    CancelAll,
    CancelOrder,
    Command,
    Credit,
    Debit,
    FreezeTrader,
    MarketSpec,
    PlaceOrder,
    ReleaseWithdrawal,
    ReserveWithdrawal,
    SetMarketState,
    SweepExpired,
)
from backend.matching.engine import FEE_ACCOUNT, PythonEngine
from backend.matching.invariants import InvariantError
from backend.matching.native import NativeEngine
from backend.matching.view import EngineView

ENGINE_KINDS = ("native", "python")


def engine_class(kind: str | None = None) -> type[NativeEngine] | type[PythonEngine]:
    """The engine `kind` names ("native" or "python"; default: `HYBRIDEX_ENGINE`, else native)."""
    kind = (kind or os.environ.get("HYBRIDEX_ENGINE") or "native").strip().lower()
    if kind == "native":
        return NativeEngine
    if kind == "python":
        return PythonEngine
    raise ValueError(f"HYBRIDEX_ENGINE must be one of {', '.join(ENGINE_KINDS)}, not {kind!r}")


Engine = engine_class()

__all__ = [
    "ENGINE_KINDS",
    "FEE_ACCOUNT",
    "AddMarket",
    "CancelAll",
    "CancelOrder",
    "Command",
    "Credit",
    "Debit",
    "Engine",
    "EngineView",
    "FreezeTrader",
    "InvariantError",
    "MarketSpec",
    "NativeEngine",
    "PlaceOrder",
    "PythonEngine",
    "ReleaseWithdrawal",
    "ReserveWithdrawal",
    "SetMarketState",
    "SweepExpired",
    "engine_class",
]
