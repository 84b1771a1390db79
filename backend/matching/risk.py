"""Per-market risk rules: price band and circuit breaker (SPEC §4 "Risk")."""

from __future__ import annotations

from collections import deque

BPS = 10_000


def outside_band(price: int, reference: int, band_bps: int) -> bool:
    """True if `price` is more than `band_bps` away from `reference` (exact integer test)."""
    return abs(price - reference) * BPS > reference * band_bps


class CircuitBreaker:
    """Trips when trade prices within `window_s` seconds span more than `move_bps` of the low.

    Sliding-window min and max with monotonic deques: O(1) amortised per trade, however many
    trades the window holds. A window of 0 or a move of 0 disables it.
    """

    __slots__ = ("highs", "lows", "move_bps", "window_s")

    def __init__(self, move_bps: int, window_s: int) -> None:
        self.move_bps = move_bps
        self.window_s = window_s
        self.highs: deque[tuple[int, int]] = deque()  # (time, price), prices decreasing
        self.lows: deque[tuple[int, int]] = deque()  # (time, price), prices increasing

    @property
    def enabled(self) -> bool:
        return self.move_bps > 0 and self.window_s > 0

    def record(self, now: int, price: int) -> tuple[int, int] | None:
        """Add a trade; return (low, high) of the window if the move exceeds the limit."""
        highs, lows = self.highs, self.lows
        while highs and highs[-1][1] <= price:
            highs.pop()
        highs.append((now, price))
        while lows and lows[-1][1] >= price:
            lows.pop()
        lows.append((now, price))
        horizon = now - self.window_s
        while highs[0][0] <= horizon:
            highs.popleft()
        while lows[0][0] <= horizon:
            lows.popleft()
        low, high = lows[0][1], highs[0][1]
        if (high - low) * BPS > low * self.move_bps:
            return low, high
        return None

    def reset(self) -> None:
        self.highs.clear()
        self.lows.clear()
