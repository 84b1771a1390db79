"""EIP-1559 pricing: base fee of the latest block × 2 + tip, capped; replacement bumps."""

from __future__ import annotations

from dataclasses import dataclass

from backend.config import Settings


@dataclass(frozen=True, slots=True)
class Fees:
    max_fee_per_gas: int
    max_priority_fee_per_gas: int


def _ceil_percent(value: int, percent: int) -> int:
    return -((-value * (100 + percent)) // 100)


def initial_fees(base_fee: int, settings: Settings) -> Fees:
    """Twice the base fee (survives ~6 full blocks of +12.5%) plus the tip, within the cap."""
    cap = settings.max_fee_per_gas_wei
    tip = min(settings.max_priority_fee_per_gas_wei, cap)
    return Fees(min(2 * base_fee + tip, cap), tip)


def bumped_fees(old: Fees, base_fee: int, settings: Settings) -> Fees | None:
    """Fees of a replacement: both caps raised by at least `fee_bump_percent` (nodes demand
    ≥ 10–12.5%), and at least the fresh price; None when the cap leaves no room to bump."""
    pct = settings.fee_bump_percent
    cap = settings.max_fee_per_gas_wei
    tip = max(_ceil_percent(old.max_priority_fee_per_gas, pct), 1)
    max_fee = max(_ceil_percent(old.max_fee_per_gas, pct), 2 * base_fee + tip)
    max_fee = min(max_fee, cap)
    if max_fee < _ceil_percent(old.max_fee_per_gas, pct) or max_fee < tip:
        return None
    return Fees(max_fee, tip)
