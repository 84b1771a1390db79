"""Per (trader, token) balances: `total` owned, `locked` reserved by open orders and withdrawals."""

from __future__ import annotations

from collections.abc import Iterator


class Balance:
    """Mutable cell; identity-hashed so a command can collect the cells it touched."""

    __slots__ = ("locked", "token", "total", "trader")

    def __init__(self, trader: str, token: str, total: int = 0, locked: int = 0) -> None:
        self.trader = trader
        self.token = token
        self.total = total
        self.locked = locked

    @property
    def available(self) -> int:
        return self.total - self.locked

    def __repr__(self) -> str:
        return f"Balance({self.trader}, {self.token}, total={self.total}, locked={self.locked})"


class Balances:
    __slots__ = ("accounts",)

    def __init__(self) -> None:
        # Nested by trader so the hot path does two dict lookups and builds no tuple key.
        self.accounts: dict[str, dict[str, Balance]] = {}

    def get(self, trader: str, token: str) -> Balance | None:
        per_trader = self.accounts.get(trader)
        return None if per_trader is None else per_trader.get(token)

    def cell(self, trader: str, token: str) -> Balance:
        """The cell for (trader, token), created empty on first use."""
        per_trader = self.accounts.get(trader)
        if per_trader is None:
            per_trader = self.accounts[trader] = {}
        bal = per_trader.get(token)
        if bal is None:
            bal = per_trader[token] = Balance(trader, token)
        return bal

    def total(self, trader: str, token: str) -> int:
        bal = self.get(trader, token)
        return 0 if bal is None else bal.total

    def locked(self, trader: str, token: str) -> int:
        bal = self.get(trader, token)
        return 0 if bal is None else bal.locked

    def available(self, trader: str, token: str) -> int:
        bal = self.get(trader, token)
        return 0 if bal is None else bal.total - bal.locked

    def __iter__(self) -> Iterator[Balance]:
        """Every cell in canonical (trader, token) order."""
        for trader in sorted(self.accounts):
            per_trader = self.accounts[trader]
            for token in sorted(per_trader):
                yield per_trader[token]

    def token_total(self, token: str) -> int:
        return sum(per[token].total for per in self.accounts.values() if token in per)

    def token_totals(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for per_trader in self.accounts.values():
            for token, bal in per_trader.items():
                out[token] = out.get(token, 0) + bal.total
        return out
