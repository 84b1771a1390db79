"""The unfinalized block window and the walk back to the common ancestor after a reorg.

Invariant: consecutive headers in the window are linked (`parent_hash` = hash of the one
below). A new block whose parent is not the tip means the chain changed under us: walk down
comparing the node's canonical hashes with ours until they agree. If they never agree inside
the window, the reorg is deeper than we can undo: stop with REORG_TOO_DEEP rather than guess.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from backend.domain.errors import ErrorCode, FatalError
from indexer.rpc import BlockHeader


class ReorgTooDeepError(FatalError):
    def __init__(self, message: str, **context: object) -> None:
        super().__init__(ErrorCode.REORG_TOO_DEEP, message, **context)


class BlockWindow:
    """The last `size` headers we indexed, linked by parent hash."""

    def __init__(self, size: int, headers: Iterable[BlockHeader] = ()) -> None:
        self.size = size
        self._blocks: deque[BlockHeader] = deque()
        for h in headers:
            self.append(h)

    def __len__(self) -> int:
        return len(self._blocks)

    @property
    def tip(self) -> BlockHeader | None:
        return self._blocks[-1] if self._blocks else None

    @property
    def oldest(self) -> BlockHeader | None:
        return self._blocks[0] if self._blocks else None

    def get(self, number: int) -> BlockHeader | None:
        if not self._blocks:
            return None
        i = number - self._blocks[0].number
        return self._blocks[i] if 0 <= i < len(self._blocks) else None

    def links(self, header: BlockHeader) -> bool:
        tip = self.tip
        return tip is None or (header.number == tip.number + 1 and header.parent_hash == tip.hash)

    def append(self, header: BlockHeader) -> None:
        if not self.links(header):
            raise ValueError(f"block {header.number} does not link to the window's tip")
        self._blocks.append(header)
        while len(self._blocks) > self.size + 1:
            self._blocks.popleft()

    def rollback_to(self, number: int) -> None:
        """Drop every header above `number`."""
        while self._blocks and self._blocks[-1].number > number:
            self._blocks.pop()

    def headers(self) -> list[BlockHeader]:
        return list(self._blocks)


def common_ancestor(
    window: BlockWindow, canonical: Callable[[int], BlockHeader | None], below: int
) -> BlockHeader:
    """The highest header of `window` at or below `below` that is still canonical.

    `canonical(n)` is the node's header at height n now.
    """
    n = min(below, window.tip.number if window.tip else -1)
    oldest = window.oldest
    while oldest is not None and n >= oldest.number:
        ours = window.get(n)
        theirs = canonical(n)
        if ours is not None and theirs is not None and ours.hash == theirs.hash:
            return ours
        n -= 1
    tip = window.tip
    raise ReorgTooDeepError(
        "reorg deeper than the reorg window: no common ancestor among the kept blocks; "
        "the indexer stopped instead of guessing. Check the node, then re-sync with "
        "`hybridex indexer --from-block N` below the fork, or raise HYBRIDEX_REORG_WINDOW.",
        window=window.size,
        oldest_kept=oldest.number if oldest else None,
        tip=tip.number if tip else None,
    )
