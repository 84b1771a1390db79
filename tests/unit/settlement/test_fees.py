from __future__ import annotations

from backend.config import Settings
from backend.settlement.fees import Fees, bumped_fees, initial_fees

GWEI = 10**9


def settings(**kw: object) -> Settings:
    return Settings(mode="dev", **kw)  # type: ignore[arg-type]


def test_initial_fee_is_twice_the_base_fee_plus_tip_within_the_cap() -> None:
    s = settings(max_fee_per_gas_wei=100 * GWEI, max_priority_fee_per_gas_wei=2 * GWEI)
    assert initial_fees(10 * GWEI, s) == Fees(22 * GWEI, 2 * GWEI)
    assert initial_fees(80 * GWEI, s) == Fees(100 * GWEI, 2 * GWEI)


def test_replacement_bumps_both_fees_by_at_least_the_percent() -> None:
    s = settings(max_fee_per_gas_wei=1000 * GWEI, fee_bump_percent=13)
    old = Fees(20 * GWEI, 2 * GWEI)
    new = bumped_fees(old, 1 * GWEI, s)
    assert new is not None
    assert new.max_fee_per_gas * 1000 >= old.max_fee_per_gas * 1125
    assert new.max_priority_fee_per_gas * 1000 >= old.max_priority_fee_per_gas * 1125


def test_replacement_follows_a_risen_base_fee() -> None:
    s = settings(max_fee_per_gas_wei=1000 * GWEI)
    new = bumped_fees(Fees(3 * GWEI, 1 * GWEI), 50 * GWEI, s)
    assert new is not None
    assert new.max_fee_per_gas >= 100 * GWEI


def test_no_replacement_when_the_cap_leaves_no_room() -> None:
    s = settings(max_fee_per_gas_wei=21 * GWEI)
    assert bumped_fees(Fees(20 * GWEI, 2 * GWEI), 1 * GWEI, s) is None
