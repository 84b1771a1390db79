"""A market maker on hybridex-client alone: quotes `levels` bids and asks around a reference
price and keeps them through disconnects.

On start it cancels everything it may have left resting (cancel-all), then loops: read the
WebSocket (`orders:` of the maker, `book:` of the market); after a reconnect or a `Resync`
it reloads its open orders over REST; every `interval` it re-places quotes that are missing
(filled, cancelled, or never confirmed).

    python examples/market_maker.py --api http://127.0.0.1:8000 --key 0x… --reference 3000000000
"""

from __future__ import annotations

import argparse
import time

from hybridex_client import BUY, POST_ONLY, SELL, ApiError, Client, Reconnected, Resync, Stream


class MarketMaker:
    def __init__(
        self, client: Client, market: str, reference: int, *, levels: int = 3,
        spread_ticks: int = 5, step_ticks: int = 5, size_lots: int = 10,
    ) -> None:  # fmt: skip
        self.c = client
        self.market = client.market(market)
        self.reference = reference
        self.levels = levels
        self.spread_ticks = spread_ticks
        self.step_ticks = step_ticks
        self.size = max(self.market.min_amount, self.market.lot_size * size_lots)
        self.quotes: dict[tuple[int, int], str] = {}
        """(side, price) → order hash of the quote believed resting."""
        self.stream = Stream(client.ws_url(), session=client.session_token())
        self.stream.subscribe(f"book:{market}")
        self.stream.subscribe(f"orders:{client.address}")

    def targets(self) -> list[tuple[int, int]]:
        tick = self.market.tick_size
        mid = self.reference - self.reference % tick
        out = []
        for i in range(self.levels):
            off = (self.spread_ticks + i * self.step_ticks) * tick
            out += [(BUY, mid - off), (SELL, mid + off)]
        return out

    def start(self) -> None:
        self.c.cancel_all(self.market)
        self.quotes.clear()
        self.stream.connect()
        self.requote()

    def reload(self) -> None:
        """Believe only what the API says is resting."""
        resting = {o.order_hash for o in self.c.open_orders(self.market.id)}
        self.quotes = {k: h for k, h in self.quotes.items() if h in resting}

    def requote(self) -> None:
        self.reload()
        for side, price in self.targets():
            if (side, price) in self.quotes:
                continue
            try:
                placed = self.c.place(self.market, side, price, self.size, time_in_force=POST_ONLY)
            except ApiError as exc:
                print(f"quote {side}@{price} refused: {exc.code} {exc.message}")
                continue
            if placed.status in ("open", "pending"):
                self.quotes[(side, price)] = placed.order_hash

    def step(self, timeout: float = 1.0) -> None:
        events = self.stream.events(timeout=timeout)
        if any(isinstance(e, Reconnected | Resync) for e in events):
            self.reload()
        self.requote()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--api", default="http://127.0.0.1:8000")
    p.add_argument("--key", required=True)
    p.add_argument("--market", default="WETH-USDC")
    p.add_argument("--reference", type=int, required=True, help="price, 18-decimal fixed point")
    p.add_argument("--levels", type=int, default=3)
    p.add_argument("--interval", type=float, default=1.0)
    args = p.parse_args()
    mm = MarketMaker(Client(args.api, args.key), args.market, args.reference, levels=args.levels)
    mm.start()
    while True:
        mm.step(args.interval)
        time.sleep(0)


if __name__ == "__main__":
    main()
