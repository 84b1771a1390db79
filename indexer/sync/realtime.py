"""Follow the head (ponder's sync-realtime): yields `Block | Reorg | Finalize`.

Each poll fetches the headers from our tip to the node's head in one batch plus the logs of
the new blocks in one `eth_getLogs`. The tip is re-checked every poll, because a reorg may
replace blocks without raising the height (`anvil_reorg`) or even lower it (`evm_revert`).
Logs are matched to headers by block hash; a log from a block we did not see means the chain
moved between the two calls, so the poll stops there and the next one starts again.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import structlog

from indexer.events import ChainLog, EventCodec
from indexer.rpc import BlockHeader, RpcClient
from indexer.sync.reorg import BlockWindow, common_ancestor

log = structlog.get_logger("indexer.sync.realtime")


@dataclass(frozen=True, slots=True)
class Block:
    header: BlockHeader
    logs: list[ChainLog]


@dataclass(frozen=True, slots=True)
class Reorg:
    ancestor: BlockHeader
    depth: int
    """Blocks of ours that were orphaned (tip − ancestor)."""


@dataclass(frozen=True, slots=True)
class Finalize:
    number: int
    """Every block at or below this is final: its header need not be kept."""


SyncItem = Block | Reorg | Finalize


class RealtimeSync:
    def __init__(
        self,
        rpc: RpcClient,
        codec: EventCodec,
        address: str,
        window: BlockWindow,
        *,
        max_blocks_per_poll: int = 500,
    ) -> None:
        self.rpc = rpc
        self.codec = codec
        self.address = address
        self.window = window
        self.max_blocks_per_poll = max_blocks_per_poll

    def _reorg(self, below: int) -> Reorg:
        tip = self.window.tip
        assert tip is not None
        ancestor = common_ancestor(self.window, self.rpc.header, below)
        depth = tip.number - ancestor.number
        self.window.rollback_to(ancestor.number)
        log.warning(
            "reorg detected",
            depth=depth,
            ancestor_number=ancestor.number,
            ancestor_hash="0x" + ancestor.hash.hex(),
            old_tip=tip.number,
        )
        return Reorg(ancestor=ancestor, depth=depth)

    def poll(self, head: int | None = None) -> list[SyncItem]:
        tip = self.window.tip
        if tip is None:
            raise RuntimeError("the realtime window needs a starting block")
        if head is None:
            head = self.rpc.block_number()
        if head < tip.number:
            # The chain got shorter: our tip is gone (or the node is behind another node).
            canonical = self.rpc.header(head)
            if canonical is None or canonical.hash != (self.window.get(head) or tip).hash:
                return [self._reorg(head)]
            log.warning("node behind the indexer", node_head=head, indexed=tip.number)
            return []
        upto = min(head, tip.number + self.max_blocks_per_poll)
        if tip.number < 0:  # nothing indexed yet: the virtual parent of block 0
            headers: list[BlockHeader | None] = [tip, *self.rpc.headers(range(0, upto + 1))]
        else:
            headers = self.rpc.headers(range(tip.number, upto + 1))
        if headers[0] is None or headers[0].hash != tip.hash:
            return [self._reorg(tip.number - 1)]
        new = [h for h in headers[1:] if h is not None]
        if len(new) < len(headers) - 1:
            new = new[: next(i for i, h in enumerate(headers[1:]) if h is None)]
        if not new:
            return []
        raw = self.rpc.get_logs(
            address=self.address,
            topics=self.codec.topics,
            from_block=new[0].number,
            to_block=new[-1].number,
        )
        by_hash: dict[bytes, list[ChainLog]] = defaultdict(list)
        by_number_hash: dict[int, bytes] = {}
        for r in raw:
            by_number_hash.setdefault(r.block_number, r.block_hash)
            decoded = self.codec.decode(r)
            if decoded is not None:
                by_hash[r.block_hash].append(decoded)
        out: list[SyncItem] = []
        for h in new:
            if not self.window.links(h):
                out.append(self._reorg(h.number - 1))
                return out
            seen = by_number_hash.get(h.number)
            if seen is not None and seen != h.hash:
                log.info("chain moved during the poll, retrying", block_number=h.number)
                break
            logs = sorted(by_hash.get(h.hash, []), key=lambda e: e.log_index)
            self.window.append(h)
            out.append(Block(header=h, logs=logs))
        new_tip = self.window.tip
        assert new_tip is not None
        out.append(Finalize(number=new_tip.number - self.window.size))
        return out
