"""A market maker that quotes by batch over the WebSocket, with cancel-on-disconnect.

Every `interval` it replaces all its quotes in one `batch` message: the cancels of the
quotes it holds and the new quotes, applied in that order. The connection opts in to
cancel-on-disconnect, so if it drops (network, crash of this process) the API pulls the
resting quotes at once (journaled by the engine for the trader, so even if the API worker
holding the connection dies); on reconnecting it starts again from a clean book.

    python examples/market_maker_ws.py --api http://127.0.0.1:8000 --key 0x… --reference 3000000000
"""

from __future__ import annotations

import argparse
import time

from hybridex_client import BUY, POST_ONLY, SELL, Client, OrderEntry
from websockets.exceptions import ConnectionClosed


class BatchQuoter:
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
        self.quotes: list[str] = []
        """Order hashes of the quotes believed resting."""
        # With the trader's read Session the engine journals cancel-on-disconnect: the quotes
        # are pulled even if the API worker holding the connection dies.
        self.entry = OrderEntry(
            client.ws_url(), cancel_on_disconnect=True, session=client.session_token()
        )

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
        self.quotes = []
        self.entry.connect()
        self.requote()

    def requote(self) -> None:
        """Cancel every quote held and place the new ones, in one message."""
        orders = [
            self.c.order_message(self.market, side, price, self.size, time_in_force=POST_ONLY)
            for side, price in self.targets()
        ]
        items = [self.c.cancel_body(h) for h in self.quotes]
        items += [self.c.order_body(o) for o in orders]
        results = self.entry.batch(items)
        placed = results[len(self.quotes) :]
        self.quotes = [
            self.c.order_hash(o)
            for o, r in zip(orders, placed, strict=True)
            if r.ok and r.body.get("status") in ("open", "pending")
        ]
        for r in placed:
            if not r.ok:
                print(f"quote refused: {r.body['error']['code']} {r.body['error']['message']}")

    def step(self) -> None:
        try:
            self.requote()
        except (ConnectionClosed, TimeoutError):
            # The API pulled our quotes when the connection dropped: start clean.
            self.entry.close()
            self.start()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--api", default="http://127.0.0.1:8000")
    p.add_argument("--key", required=True)
    p.add_argument("--market", default="WETH-USDC")
    p.add_argument("--reference", type=int, required=True, help="price, 18-decimal fixed point")
    p.add_argument("--levels", type=int, default=3)
    p.add_argument("--interval", type=float, default=1.0)
    args = p.parse_args()
    quoter = BatchQuoter(Client(args.api, args.key), args.market, args.reference,
                         levels=args.levels)  # fmt: skip
    quoter.start()
    while True:
        time.sleep(args.interval)
        quoter.step()


if __name__ == "__main__":
    main()
