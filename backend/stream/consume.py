"""The reference consumer of the event stream (`hybridex consume`): a durable JetStream consumer
that rebuilds every trader's balances and open orders (its positions on the book) from the
`balance` and `order` events alone, and compares them with the API's.

- Durable: a named pull consumer with explicit acks; after a restart it resumes after the last
  event it acknowledged (JetStream keeps the cursor), so nothing is skipped or read twice
  except events delivered and not yet acknowledged.
- Exactly once in effect: the book is saved (with the ids it applied) before the events are
  acknowledged, and an id already applied is ignored, so a redelivery (a crash between save and
  ack, a relay re-send) changes nothing.
- A `balance` event carries the trader's absolute `total` and `locked` of one token after a
  change, in the trader's order (its partition key): the last one applied is the balance. An
  `order` event carries the order's status and `remaining` after a change: the order rests
  while the last one says `open` or `partially_filled`.
- The ids kept for deduplication are the last `RECENT_IDS` applied, not all of them: a
  redelivery or a relay re-send comes soon after the original (JetStream itself drops re-sends
  within its duplicate window), and a set of every id ever seen would grow without end.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.stream.publish import stream_name

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.js.client import JetStreamContext


RECENT_IDS = 100_000
RESTING = frozenset({"open", "partially_filled"})


@dataclass
class BalanceBook:
    """(trader, token) → (total, locked) and order hash → (trader, market, remaining), rebuilt
    from balance and order events; and the ids applied most recently."""

    balances: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    orders: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    recent: OrderedDict[str, None] = field(default_factory=OrderedDict)
    events: int = 0  # events applied (duplicates excluded)
    duplicates: int = 0

    def apply(self, envelope: Mapping[str, Any]) -> bool:
        """Apply one published event; False if its id was applied already (a duplicate)."""
        event_id = envelope["id"]
        if event_id in self.recent:
            self.duplicates += 1
            return False
        self.recent[event_id] = None
        if len(self.recent) > RECENT_IDS:
            self.recent.popitem(last=False)
        self.events += 1
        kind, data = envelope["type"], envelope["data"]
        if kind == "balance":
            key = (data["trader"].lower(), data["token"].lower())
            self.balances[key] = (int(data["total"]), int(data["locked"]))
        elif kind == "order":
            h = data["order_hash"].lower()
            if data["status"] in RESTING and data.get("remaining") is not None:
                self.orders[h] = (data["trader"].lower(), data["market_id"], int(data["remaining"]))
            else:
                self.orders.pop(h, None)
        return True

    def traders(self) -> set[str]:
        return {trader for trader, _ in self.balances} | {o[0] for o in self.orders.values()}

    def save(self, path: Path) -> None:
        """Atomically (a crash leaves the old file or the new one, never half of one)."""
        doc = {
            "balances": [[t, k, str(v[0]), str(v[1])] for (t, k), v in self.balances.items()],
            "orders": [[h, t, m, str(r)] for h, (t, m, r) in self.orders.items()],
            "recent": list(self.recent),
            "events": self.events,
            "duplicates": self.duplicates,
        }
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> BalanceBook:
        if not path.exists():
            return cls()
        doc = json.loads(path.read_text())
        return cls(
            balances={(t, k): (int(total), int(locked)) for t, k, total, locked in doc["balances"]},
            orders={h: (t, m, int(r)) for h, t, m, r in doc.get("orders", [])},
            recent=OrderedDict.fromkeys(doc.get("recent", doc.get("applied", []))),
            events=doc["events"],
            duplicates=doc["duplicates"],
        )


class JetStreamReader:
    """A durable pull consumer on every subject of the stream (or `subjects`)."""

    def __init__(self, url: str, prefix: str, durable: str, *, subjects: str | None = None) -> None:
        self.url = url
        self.stream = stream_name(prefix)
        self.durable = durable
        self.subjects = subjects or f"{prefix}.>"
        self._nc: NatsClient | None = None
        self._sub: JetStreamContext.PullSubscription | None = None

    async def start(self) -> None:
        import nats
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        self._nc = await nats.connect(self.url, name=f"hybridex-consumer-{self.durable}")
        js = self._nc.jetstream()
        self._sub = await js.pull_subscribe(
            self.subjects,
            durable=self.durable,
            stream=self.stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=30,
                max_ack_pending=20_000,
            ),
        )

    async def fetch(self, batch: int = 500, timeout: float = 1.0) -> list[Msg]:
        """Up to `batch` messages, [] when none came within `timeout`."""
        from nats.errors import TimeoutError as NatsTimeout

        assert self._sub is not None, "start() first"
        try:
            return await self._sub.fetch(batch, timeout=timeout)
        except (NatsTimeout, TimeoutError):
            return []

    @staticmethod
    async def ack(messages: list[Msg]) -> None:
        for msg in messages:
            await msg.ack()  # a fire-and-forget publish; the flush below sends them all

    async def flush(self) -> None:
        if self._nc is not None:
            await self._nc.flush()

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.flush()  # the acks sent so far reach the server
            await self._nc.close()
        self._nc = None


async def rebuild(
    reader: JetStreamReader,
    book: BalanceBook,
    state: Path | None,
    *,
    idle_s: float = 2.0,
    limit: int | None = None,
) -> BalanceBook:
    """Apply events until none came for `idle_s` (or `limit` were applied): each fetched batch
    is applied, saved to `state`, then acknowledged."""
    idle_since = asyncio.get_running_loop().time()
    while limit is None or book.events < limit:
        want = 500 if limit is None else max(1, min(500, limit - book.events))
        messages = await reader.fetch(want, timeout=min(1.0, idle_s))
        now = asyncio.get_running_loop().time()
        if not messages:
            if now - idle_since >= idle_s:
                break
            continue
        idle_since = now
        for msg in messages:
            book.apply(json.loads(msg.data))
        if state is not None:
            book.save(state)
        await reader.ack(messages)
        await reader.flush()
    return book


def api_balances(
    api_url: str, trader: str, headers: Mapping[str, str]
) -> dict[str, tuple[int, int]]:
    """token (lower-case) → (total, locked) of one trader, from GET /v1/accounts/{a}/balances."""
    import httpx

    r = httpx.get(f"{api_url}/v1/accounts/{trader}/balances", headers=dict(headers), timeout=10)
    r.raise_for_status()
    return {b["token"].lower(): (int(b["total"]), int(b["locked"])) for b in r.json()["balances"]}


def api_open_orders(
    api_url: str, trader: str, headers: Mapping[str, str]
) -> dict[str, tuple[str, int]]:
    """order hash (lower-case) → (market, remaining) of one trader's resting orders, from
    GET /v1/orders (each resting status, newest first, paged by `before`)."""
    import httpx

    out: dict[str, tuple[str, int]] = {}
    for status in sorted(RESTING):
        before: int | None = None
        while True:
            params: dict[str, str | int] = {"trader": trader, "status": status, "limit": 500}
            if before is not None:
                params["before"] = before
            r = httpx.get(f"{api_url}/v1/orders", params=params, headers=dict(headers), timeout=10)
            r.raise_for_status()
            page = r.json()["orders"]
            for o in page:
                out[o["orderHash"].lower()] = (o["market"], int(o["remaining"]))
            if len(page) < 500:
                break
            before = min(int(o["acceptedSeq"]) for o in page)
    return out


def order_differences(
    book: BalanceBook, api: Mapping[str, Mapping[str, tuple[str, int]]]
) -> list[str]:
    """Every order the stream and the API disagree on (resting or not, remaining), in words."""
    out = []
    for trader in sorted(api):
        theirs = api[trader]
        ours = {h: (m, r) for h, (t, m, r) in book.orders.items() if t == trader}
        for h in sorted(set(theirs) | set(ours)):
            a, s = theirs.get(h), ours.get(h)
            if a != s:
                out.append(
                    f"{trader} order {h}: stream {s or 'not resting'}, API {a or 'not resting'}"
                )
    return out


def differences(book: BalanceBook, api: Mapping[str, Mapping[str, tuple[int, int]]]) -> list[str]:
    """Every (trader, token) where the stream and the API disagree, in words; [] if none.
    A token the API lists at zero and the stream never mentioned is no difference."""
    out = []
    for trader in sorted(set(api) | book.traders()):
        theirs = api.get(trader, {})
        ours = {k: v for (t, k), v in book.balances.items() if t == trader}
        for token in sorted(set(theirs) | set(ours)):
            a, s = theirs.get(token, (0, 0)), ours.get(token, (0, 0))
            if a != s:
                out.append(
                    f"{trader} {token}: stream total={s[0]} locked={s[1]}, "
                    f"API total={a[0]} locked={a[1]}"
                )
    return out
