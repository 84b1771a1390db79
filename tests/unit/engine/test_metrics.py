"""The engine's Prometheus gauges follow its state (sampled, not on the hot path)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import REGISTRY

from backend.domain.types import Side
from backend.engine import metrics
from backend.engine.client import Intake
from backend.engine.service import EngineService
from tests.unit.engine.helpers import LOT, MARKET, MID, SIGNATURE, TICK, place, setup


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_gauges_follow_the_book_and_the_sequence(tmp_path: Path) -> None:
    async def run() -> None:
        service = await EngineService.open(journal_dir=tmp_path / "journal")
        try:
            for cmd, intake in setup(3):
                await service.submit(cmd, intake)
            resting = [
                place(0, 1, Side.BUY, MID - TICK, LOT),
                place(0, 2, Side.BUY, MID - TICK, LOT),
                place(0, 3, Side.BUY, MID - 2 * TICK, LOT),
                place(1, 1, Side.SELL, MID + TICK, 3 * LOT),
            ]
            for cmd in resting:
                await service.submit(cmd, Intake(signature=SIGNATURE))
            metrics.sample(service)
            assert value("hybridex_engine_book_levels", market=MARKET, side="buy") == 2
            assert value("hybridex_engine_book_orders", market=MARKET, side="buy") == 3
            assert value("hybridex_engine_book_orders", market=MARKET, side="sell") == 1
            assert value("hybridex_engine_best_price", market=MARKET, side="sell") == MID + TICK
            assert value("hybridex_engine_last_seq") == service.engine.last_seq
            assert value("hybridex_engine_up") == 1
            assert value("hybridex_engine_queue_depth") == 0

            # A taker clears the ask: the sell side empties, the sequence moves on.
            await service.submit(
                place(2, 1, Side.BUY, MID + TICK, 3 * LOT), Intake(signature=SIGNATURE)
            )
            metrics.sample(service)
            assert value("hybridex_engine_book_orders", market=MARKET, side="sell") == 0
            assert value("hybridex_engine_best_price", market=MARKET, side="sell") == 0
            assert value("hybridex_engine_last_seq") == service.engine.last_seq
        finally:
            await service.close()

    asyncio.run(run())
