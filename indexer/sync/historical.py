"""Historical backfill: `eth_getLogs` over adaptive block ranges (ponder's sync-historical).

The range halves on a range-limit error ("too many results", "block range too large", a
timeout) and doubles while answers stay sparse, within [min_size, max_size]. Only blocks at
least `reorg_window` deep are backfilled this way: they are final, so a chunk's logs and its
end block's hash can be committed with the cursor without keeping every header.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import structlog

from indexer.events import ChainLog, EventCodec
from indexer.rpc import BlockHeader, LogRangeError, RpcClient

log = structlog.get_logger("indexer.sync.historical")


@dataclass
class AdaptiveRange:
    size: int = 2_000
    min_size: int = 1
    max_size: int = 100_000
    target_logs: int = 5_000
    """Grow while a chunk holds fewer than a quarter of this; shrink above it."""

    def shrink(self) -> None:
        self.size = max(self.min_size, self.size // 2)

    def observe(self, n_logs: int) -> None:
        if n_logs > self.target_logs:
            self.size = max(self.min_size, self.size // 2)
        elif n_logs < self.target_logs // 4:
            self.size = min(self.max_size, self.size * 2)


@dataclass(frozen=True, slots=True)
class Chunk:
    """Every followed log of blocks [from_block, to_block], and the header of `to_block`."""

    from_block: int
    to_block: int
    end: BlockHeader
    logs: list[ChainLog]


def backfill(
    rpc: RpcClient,
    codec: EventCodec,
    address: str,
    *,
    start: int,
    end: int,
    ranges: AdaptiveRange,
) -> Iterator[Chunk]:
    """Chunks covering [start, end] in order; the caller commits each with its cursor."""
    cur = start
    while cur <= end:
        to = min(end, cur + ranges.size - 1)
        try:
            raw = rpc.get_logs(
                address=address,
                topics=codec.topics,
                from_block=cur,
                to_block=to,
                shrinkable=to > cur,
            )
        except LogRangeError as exc:
            ranges.shrink()
            log.info(
                "log range refused, shrinking",
                from_block=cur,
                to_block=to,
                new_size=ranges.size,
                error=exc.message,
            )
            continue
        ranges.observe(len(raw))
        if len(raw) > ranges.target_logs and to > cur:
            # Too dense for one transaction: keep whole blocks up to about target_logs logs.
            numbers = sorted(r.block_number for r in raw)
            cut = max(cur, numbers[ranges.target_logs - 1])
            if cut < to:
                to = cut
                raw = [r for r in raw if r.block_number <= to]
        header = rpc.header(to)
        if header is None:
            raise LogRangeError(f"block {to} not available on the node", block_number=to)
        logs = [e for e in (codec.decode(r) for r in raw) if e is not None]
        logs.sort(key=lambda e: (e.block_number, e.log_index))
        yield Chunk(from_block=cur, to_block=to, end=header, logs=logs)
        cur = to + 1
