"""Isolate the fills that make a batch revert, by simulating halves (`eth_call`).

Greedy and order-preserving: a chunk that simulates fine together with the fills already
accepted is accepted whole; a failing chunk is split in two; a failing single fill is failed
with the decoded revert. k failing fills among n cost O(k log n) simulations. A revert that
says nothing about fills (`BatchIdMismatch`, pause, role) is never bisected: it is retried.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from backend.domain.errors import ErrorCode, RetryableError
from backend.settlement.revert import Revert

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Bisection(Generic[T]):
    good: list[T]
    failed: list[tuple[T, Revert]]
    simulations: int


def isolate_failures(
    items: Sequence[T],
    simulate: Callable[[Sequence[T]], Revert | None],
    *,
    first_revert: Revert | None = None,
) -> Bisection[T]:
    """Splits `items` into those that settle together (in order) and the failing ones."""
    good: list[T] = []
    failed: list[tuple[T, Revert]] = []
    calls = 0

    def check(chunk: Sequence[T], known: Revert | None) -> None:
        nonlocal calls
        if not chunk:
            return
        revert = known
        if revert is None:
            calls += 1
            revert = simulate([*good, *chunk])
        if revert is None:
            good.extend(chunk)
            return
        if revert.is_global:
            raise RetryableError(
                ErrorCode.SETTLEMENT_REVERTED,
                f"batch simulation reverted with {revert.reason}: not a fill's fault",
                reason=revert.reason,
            )
        if len(chunk) == 1:
            failed.append((chunk[0], revert))
            return
        mid = len(chunk) // 2
        check(chunk[:mid], None)
        check(chunk[mid:], None)

    check(list(items), first_revert)
    return Bisection(good=good, failed=failed, simulations=calls)
