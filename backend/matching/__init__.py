"""Pure, deterministic matching engine: `Engine.apply(command) -> events` (SPEC §4, §5)."""

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
from backend.matching.engine import FEE_ACCOUNT, Engine
from backend.matching.invariants import InvariantError

__all__ = [
    "FEE_ACCOUNT",
    "AddMarket",
    "CancelAll",
    "CancelOrder",
    "Command",
    "Credit",
    "Debit",
    "Engine",
    "FreezeTrader",
    "InvariantError",
    "MarketSpec",
    "PlaceOrder",
    "ReleaseWithdrawal",
    "ReserveWithdrawal",
    "SetMarketState",
    "SweepExpired",
]
