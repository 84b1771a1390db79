"""RPC faults through a loopback proxy: the indexer keeps going, nothing lost or doubled."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from prometheus_client import REGISTRY

from backend.chain.anvil import Anvil
from indexer.rpc import Backoff
from tests.integration.indexer.faulty_proxy import FAULTS, FaultyProxy
from tests.integration.indexer.rig import Chain, Rig, fresh_ledger

pytestmark = pytest.mark.integration


@pytest.fixture
def chain() -> Iterator[Chain]:
    with Anvil() as node:
        yield Chain.start(node)


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


@pytest.mark.parametrize("seed", [7, 8])
def test_faults_during_backfill_follow_and_reorg_lose_and_double_nothing(
    chain: Chain, tmp_path: Path, seed: int
) -> None:
    traders = [t.address for t in chain.h.traders[:3]]
    for i in range(24):
        chain.deposit(traders[i % 3], chain.h.weth if i % 2 else chain.h.usdc, 1_000 + i)
    retries_before = sample("hybridex_indexer_rpc_retries_total")
    reorgs_before = sample("hybridex_indexer_reorg_depth_count")
    with FaultyProxy(chain.node.url, fault_rate=0.3, seed=seed, max_log_range=8) as proxy:
        rig = Rig(
            chain,
            tmp_path / "live",
            confirmations=2,
            reorg_window=6,
            rpc_url=proxy.url,
            rpc_timeout_s=0.3,
        )
        try:
            rig.indexer.ranges.size = 64  # wider than the proxy allows: must shrink
            rig.sync_through_faults()  # backfill, then follow the last 6 blocks
            for i in range(6):  # follow new blocks
                chain.deposit(traders[i % 3], chain.h.weth, 50_000 + i)
                if i % 2:
                    rig.sync_through_faults()
            chain.reorg(3, [(traders[0], chain.h.weth, 777), (traders[1], chain.h.usdc, 888)])
            rig.sync_through_faults()
            chain.mine(3)
            rig.sync_through_faults()
            live = rig.ledger()
        finally:
            rig.close()
    # Every kind of fault was injected, and the client retried them.
    assert set(FAULTS) <= set(proxy.injected), proxy.injected
    assert proxy.injected["range"] > 0
    assert sample("hybridex_indexer_reorg_depth_count") - reorgs_before == 1
    assert sample("hybridex_indexer_rpc_retries_total") - retries_before >= sum(
        proxy.injected[f] for f in FAULTS if f != "timeout"
    )
    fresh = fresh_ledger(chain, tmp_path / "fresh", confirmations=2, reorg_window=6)
    assert live == fresh
    amounts = sorted(v[2] for v in live["deposits"].values())
    assert len(amounts) == len(set(amounts))  # every amount is distinct: none doubled
    assert 777 in amounts
    assert 888 in amounts


def test_unreachable_node_is_logged_and_measured_then_recovers(
    chain: Chain, tmp_path: Path
) -> None:
    alice = chain.h.traders[0].address
    chain.deposit(alice, chain.h.weth, 5)
    with FaultyProxy(chain.node.url, fault_rate=0.0) as proxy:
        rig = Rig(chain, tmp_path / "live", confirmations=0, rpc_url=proxy.url)
        try:
            rig.indexer.rpc.backoff = Backoff(base_s=0.001, cap_s=0.005, max_attempts=3)
            rig.sync()
            assert sample("hybridex_indexer_node_up") == 1
            proxy.down = True
            rig.indexer.config = type(rig.indexer.config)(
                **{**rig.indexer.config.__dict__, "poll_interval_s": 0.01}
            )
            stopper = rig.indexer.stop_event
            real_step = rig.indexer.step

            def step() -> bool:
                stopper.set()  # the first step after the node came back is the last
                return real_step()

            rig.indexer.step = step  # type: ignore[method-assign]
            back = threading.Timer(0.5, lambda: setattr(proxy, "down", False))
            give_up = threading.Timer(30, stopper.set)
            back.start()
            give_up.start()
            try:
                with structlog.testing.capture_logs() as logs:
                    rig.indexer.run()  # starts while the node is down
            finally:
                back.cancel()
                give_up.cancel()
            assert proxy.injected["down"] >= 2
            events = [e["event"] for e in logs]
            assert "rpc node unreachable" in events  # the RPC client gave up on a call
            assert "rpc node unreachable, indexer waiting" in events
            assert "rpc node reachable again" in events
            assert events.index("rpc node unreachable, indexer waiting") < events.index(
                "rpc node reachable again"
            )
            assert sample("hybridex_indexer_node_up") == 1
            assert (
                REGISTRY.get_sample_value(
                    "hybridex_indexer_step_failures_total", {"code": "RPC_UNAVAILABLE"}
                )
                or 0
            ) >= 2
            assert rig.engine.total(alice, chain.h.weth.address) == 5
        finally:
            rig.close()


def test_lag_gauges_follow_the_node(chain: Chain, tmp_path: Path) -> None:
    rig = Rig(chain, tmp_path / "live", confirmations=0, reorg_window=4)
    try:
        chain.mine(20)
        rig.indexer.ranges.size = 5
        rig.indexer.step()  # one backfill chunk: far behind
        head = chain.head()
        assert sample("hybridex_indexer_node_head_block") == head
        assert sample("hybridex_indexer_lag_blocks") == head - sample(
            "hybridex_indexer_indexed_block"
        )
        assert sample("hybridex_indexer_lag_blocks") > 4
        rig.sync()
        assert sample("hybridex_indexer_lag_blocks") == 0
        assert sample("hybridex_indexer_confirmations_backlog") == 0  # 0 confirmations
        assert sample("hybridex_indexer_indexed_block") == head
    finally:
        rig.close()
