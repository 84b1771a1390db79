"""Historical backfill: `eth_getLogs` over adaptive block ranges (ponder's sync-historical).

The range halves on a range-limit error ("too many results", "block range too large", a
timeout), doubles while answers stay sparse, and when an answer is dense it is set to the range
that holds about `target_logs` at the density just seen, all within [min_size, max_size]. Only
blocks at least `reorg_window` deep are backfilled this way: they are final, so a chunk's logs
and its end block's hash can be committed with the cursor without keeping every header — and
the logs of a too-dense answer past the chunk's cut are kept (`Prefetched`) for the next chunk
instead of being fetched and parsed again.
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

    def observe(self, n_logs: int, blocks: int | None = None) -> None:
        """Adapts to an answer of `n_logs` logs over `blocks` blocks (default: `size`)."""
        blocks = self.size if blocks is None else blocks
        if n_logs > self.target_logs:
            self.size = max(self.min_size, min(self.size // 2, blocks * self.target_logs // n_logs))
        elif n_logs < self.target_logs // 4:
            self.size = min(self.max_size, self.size * 2)


@dataclass
class Prefetched:
    """Decoded logs of final blocks [from_block, to_block] fetched beyond a chunk's cut."""

    from_block: int
    to_block: int
    logs: list[ChainLog]

    def take(self, start: int, end: int, limit: int) -> tuple[int, list[ChainLog]] | None:
        """(last block, logs) of whole blocks from `start` holding about `limit` logs, and
        forgets them; None unless the carry begins exactly at `start` and ends by `end`."""
        if start != self.from_block or start > self.to_block or self.to_block > end:
            return None
        logs = self.logs
        to = self.to_block if len(logs) <= limit else logs[limit - 1].block_number
        n = len(logs) if to == self.to_block else _end_of_block(logs, to)
        taken, self.logs = logs[:n], logs[n:]
        self.from_block = to + 1
        return to, taken


def _end_of_block(logs: list[ChainLog], number: int) -> int:
    """Index just past the last log of block `number` (logs in chain order)."""
    lo, hi = 0, len(logs)
    while lo < hi:
        mid = (lo + hi) // 2
        if logs[mid].block_number <= number:
            lo = mid + 1
        else:
            hi = mid
    return lo


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
    carry: Prefetched | None = None,
) -> Iterator[Chunk]:
    """Chunks covering [start, end] in order; the caller commits each with its cursor.

    With `carry`, logs fetched past a dense chunk's cut are kept there and served to the next
    chunk that starts where they begin (the caller keeps it across calls; a chunk that was not
    committed starts elsewhere, so a stale carry is never used).
    """
    cur = start
    while cur <= end:
        if carry is not None:
            served = carry.take(cur, end, ranges.target_logs)
            if served is not None:
                to, logs = served
                header = rpc.header(to)
                if header is None:
                    raise LogRangeError(f"block {to} not available on the node", block_number=to)
                yield Chunk(from_block=cur, to_block=to, end=header, logs=logs)
                cur = to + 1
                continue
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
        fetched_to = to
        ranges.observe(len(raw), to - cur + 1)
        decoded = [e for e in (codec.decode(r) for r in raw) if e is not None]
        decoded.sort(key=lambda e: (e.block_number, e.log_index))
        logs = decoded
        if len(raw) > ranges.target_logs and to > cur:
            # Too dense for one transaction: keep whole blocks up to about target_logs logs.
            numbers = sorted(r.block_number for r in raw)
            cut = max(cur, numbers[ranges.target_logs - 1])
            if cut < to:
                to = cut
                n = _end_of_block(decoded, to)
                logs = decoded[:n]
                if carry is not None:
                    carry.from_block, carry.to_block, carry.logs = to + 1, fetched_to, decoded[n:]
        header = rpc.header(to)
        if header is None:
            raise LogRangeError(f"block {to} not available on the node", block_number=to)
        yield Chunk(from_block=cur, to_block=to, end=header, logs=logs)
        cur = to + 1
