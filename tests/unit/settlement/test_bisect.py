from __future__ import annotations

from collections.abc import Sequence

import pytest

from backend.domain.errors import RetryableError
from backend.settlement.bisect import isolate_failures
from backend.settlement.revert import Revert


def exited(bad: set[int]):  # type: ignore[no-untyped-def]
    calls: list[list[int]] = []

    def simulate(items: Sequence[int]) -> Revert | None:
        calls.append(list(items))
        for i in items:
            if i in bad:
                return Revert("TraderExited", (f"0x{i:040x}", 7), b"")
        return None

    return simulate, calls


@pytest.mark.parametrize("bad", [set(), {0}, {7}, {3, 4}, {0, 5, 9}, set(range(10))])
def test_isolates_exactly_the_failing_items_and_keeps_order(bad: set[int]) -> None:
    simulate, calls = exited(bad)
    result = isolate_failures(list(range(10)), simulate)
    assert result.good == [i for i in range(10) if i not in bad]
    assert [i for i, _ in result.failed] == sorted(bad)
    assert all(r.name == "TraderExited" for _, r in result.failed)
    if len(bad) == 1:
        assert len(calls) <= 2 * 4 + 1  # O(log n) per failure


def test_interacting_failure_is_attributed_to_the_later_fill() -> None:
    # 2 and 5 together overdraw a balance; each alone is fine.
    def simulate(items: Sequence[int]) -> Revert | None:
        return Revert("InsufficientBalance", (), b"") if {2, 5} <= set(items) else None

    result = isolate_failures(list(range(8)), simulate)
    assert [i for i, _ in result.failed] == [5]
    assert 2 in result.good


def test_a_global_revert_is_never_bisected() -> None:
    def simulate(items: Sequence[int]) -> Revert | None:
        return Revert("BatchIdMismatch", (3, 4), b"")

    with pytest.raises(RetryableError):
        isolate_failures([1, 2, 3], simulate)
