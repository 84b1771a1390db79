"""RPC retries under injected faults, adaptive log ranges, the reorg window."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backend.domain.errors import ErrorCode
from indexer.events import EventCodec
from indexer.rpc import Backoff, BlockHeader, Log, LogRangeError, RpcClient, RpcError
from indexer.sync.historical import AdaptiveRange, Chunk, Prefetched, backfill
from indexer.sync.reorg import BlockWindow, ReorgTooDeepError, common_ancestor


def client(handler: Any, attempts: int = 8) -> RpcClient:
    return RpcClient(
        "http://node.invalid",
        backoff=Backoff(base_s=0, max_attempts=attempts),
        sleep=lambda _s: None,
        transport=httpx.MockTransport(handler),
    )


def test_rpc_retries_429_5xx_truncated_bodies_and_rpc_errors() -> None:
    faults = iter(
        [
            httpx.Response(429),
            httpx.Response(503),
            httpx.Response(200, content=b'{"jsonrpc":"2.0","id":1,"res'),
            httpx.Response(200, json={"jsonrpc": "2.0", "id": 1, "error": {"code": -32000}}),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        fault = next(faults, None)
        if fault is not None:
            return fault
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": 1, "result": "0x2a"})

    rpc = client(handler)
    assert rpc.block_number() == 42
    assert rpc.failures == 4


def test_rpc_timeouts_then_gives_up_with_a_retryable_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(RpcError) as info:
        client(handler, attempts=3).chain_id()
    assert info.value.code is ErrorCode.RPC_UNAVAILABLE


class RangeLimitedNode:
    """eth_getLogs refusing ranges wider than `limit` blocks, like hosted providers do."""

    def __init__(self, limit: int, topic: bytes) -> None:
        self.limit = limit
        self.topic = topic
        self.ranges: list[tuple[int, int]] = []

    def get_logs(self, *, from_block: int, to_block: int, **_: Any) -> list[Log]:
        if to_block - from_block + 1 > self.limit:
            raise LogRangeError("query exceeds max block range 100")
        self.ranges.append((from_block, to_block))
        return []

    def header(self, number: int) -> BlockHeader:
        return BlockHeader(number, number.to_bytes(32, "big"), b"\x00" * 32, 0)


def test_backfill_shrinks_on_range_errors_and_grows_when_sparse() -> None:
    codec = EventCodec.exchange()
    node = RangeLimitedNode(100, codec.topics[0])
    ranges = AdaptiveRange(size=1000, max_size=4000)
    chunks = list(
        backfill(node, codec, "0x" + "11" * 20, start=0, end=5_000, ranges=ranges)  # type: ignore[arg-type]
    )
    covered = [(c.from_block, c.to_block) for c in chunks]
    assert covered[0][0] == 0
    assert covered[-1][1] == 5_000
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(covered))
    assert all(t - f + 1 <= 100 for f, t in node.ranges)
    assert max(t - f + 1 for f, t in node.ranges) > 50  # recovered towards the limit


def test_adaptive_range_shrinks_to_the_density_seen_and_grows_when_sparse() -> None:
    r = AdaptiveRange(size=1000, target_logs=100)
    r.observe(500)  # 1000 blocks held 500 logs: 200 blocks hold about 100
    assert r.size == 200
    r.observe(150, blocks=50)  # denser still, over fewer blocks than the range
    assert r.size == 33
    r.observe(120)  # just above the target: at least halves
    assert r.size == 16
    r.observe(0)
    assert r.size == 32


def _chain(n: int, salt: bytes = b"a") -> list[BlockHeader]:
    out: list[BlockHeader] = []
    parent = b"\x00" * 32
    for i in range(n):
        h = (salt + i.to_bytes(4, "big")).ljust(32, b"\x00")
        out.append(BlockHeader(i, h, parent, i))
        parent = h
    return out


def test_common_ancestor_and_too_deep() -> None:
    ours = _chain(10)
    window = BlockWindow(5, ours)
    assert len(window) == 6
    theirs = ours[:7] + [BlockHeader(i, b"b" * 31 + bytes([i]), b"", i) for i in range(7, 10)]
    assert common_ancestor(window, lambda n: theirs[n], 9).number == 6
    other = _chain(10, b"z")
    with pytest.raises(ReorgTooDeepError):
        common_ancestor(window, lambda n: other[n], 9)


def test_event_topics_come_from_the_abi() -> None:
    from eth_utils.crypto import keccak

    codec = EventCodec.exchange()
    names = {s.name: s.topic for s in codec.by_topic.values()}
    sig = "Deposited(address,address,uint256,address)"
    assert names["Deposited"] == keccak(text=sig)
    assert json.dumps(sorted(names)) == json.dumps(sorted(set(names)))


class DenseNode:
    """Every block holds `per_block` (undecodable) logs: only the chunking is under test."""

    def __init__(self, per_block: int) -> None:
        self.per_block = per_block

    def get_logs(self, *, from_block: int, to_block: int, **_: Any) -> list[Log]:
        return [
            Log(n, n.to_bytes(32, "big"), b"\x01" * 32, i, "0x" + "11" * 20, (b"\x02" * 32,), b"")
            for n in range(from_block, to_block + 1)
            for i in range(self.per_block)
        ]

    def header(self, number: int) -> BlockHeader:
        return BlockHeader(number, number.to_bytes(32, "big"), b"\x00" * 32, 0)


class CountingDenseNode(DenseNode):
    """A DenseNode whose logs decode (Deposited of one trader), counting its answers."""

    def __init__(self, per_block: int) -> None:
        super().__init__(per_block)
        codec = EventCodec.exchange()
        self.topic = next(s.topic for s in codec.by_topic.values() if s.name == "Deposited")
        self.calls: list[tuple[int, int]] = []

    def get_logs(self, *, from_block: int, to_block: int, **_: Any) -> list[Log]:
        self.calls.append((from_block, to_block))
        word = b"\x00" * 12 + b"\x11" * 20
        return [
            Log(
                n,
                n.to_bytes(32, "big"),
                b"\x01" * 32,
                i,
                "0x" + "22" * 20,
                (self.topic, word, word),
                (7).to_bytes(32, "big") + word,
            )
            for n in range(from_block, to_block + 1)
            for i in range(self.per_block)
        ]


def _dense_backfill(
    node: CountingDenseNode, carry: Prefetched, *, start: int, end: int
) -> Iterator[Chunk]:
    """Backfill of `node` in chunks of about 25 logs (10 a block), with `carry`."""
    ranges = AdaptiveRange(size=100, target_logs=25)
    return backfill(
        node,  # type: ignore[arg-type]
        EventCodec.exchange(),
        "0x" + "22" * 20,
        start=start,
        end=end,
        ranges=ranges,
        carry=carry,
    )


def test_logs_past_a_dense_cut_are_served_from_the_carry_not_fetched_again() -> None:
    node = CountingDenseNode(10)
    chunks = list(_dense_backfill(node, Prefetched(0, -1, []), start=0, end=99))
    assert node.calls[0] == (0, 99)
    fetched = sum(t - f + 1 for f, t in node.calls)
    assert fetched == 100  # every block fetched once
    covered = [(c.from_block, c.to_block) for c in chunks]
    assert covered[0] == (0, 2)
    assert covered[-1][1] == 99
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(covered))
    logs = [e for c in chunks for e in c.logs]
    assert [(e.block_number, e.log_index) for e in logs] == [
        (n, i) for n in range(100) for i in range(10)
    ]
    assert all(len(c.logs) <= 30 for c in chunks)  # whole blocks, about target_logs each
    assert all(c.end.number == c.to_block for c in chunks)


def test_a_carry_that_does_not_start_at_the_cursor_is_not_used() -> None:
    node = CountingDenseNode(10)
    carry = Prefetched(0, -1, [])
    first = next(_dense_backfill(node, carry, start=0, end=99))
    assert (first.from_block, first.to_block) == (0, 2)
    assert carry.from_block == 3
    # The chunk was not committed: the next step starts from block 0 again, and fetches.
    again = next(_dense_backfill(node, carry, start=0, end=99))
    assert again.from_block == 0
    assert len(node.calls) == 2
    # A carry that reaches past the final block (the node's head went back) is not used.
    stale = Prefetched(3, 99, carry.logs)
    short = next(_dense_backfill(node, stale, start=3, end=50))
    assert len(node.calls) == 3
    assert short.to_block <= 50


def test_a_too_dense_chunk_is_cut_at_a_block_boundary() -> None:
    ranges = AdaptiveRange(size=100, target_logs=25)
    chunks = list(
        backfill(
            DenseNode(10), EventCodec.exchange(), "0x" + "11" * 20, start=0, end=99, ranges=ranges
        )  # type: ignore[arg-type]
    )
    first = chunks[0]
    assert (first.from_block, first.to_block) == (0, 2)  # the 25th log is in block 2
    assert first.end.number == 2
    covered = [(c.from_block, c.to_block) for c in chunks]
    assert covered[-1][1] == 99
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(covered))
