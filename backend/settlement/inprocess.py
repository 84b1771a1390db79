"""Settlement inside one process (`hybridex dev`): the same tick and task code, no broker.

    loop = SettlementLoop(SettlementContext.from_settings(settings, factory=factory))
    loop.start()   # a daemon thread: one tick every settlement_tick_s
    ...
    loop.stop()

The Celery app in eager mode (`make_app(eager=True)`) runs the same tasks inline; this loop
calls the task bodies directly, which is what eager mode would do.
"""

from __future__ import annotations

import threading
import time

import structlog

from backend.domain.errors import DexError
from backend.settlement import sender
from backend.settlement.context import SettlementContext
from backend.settlement.tick import TickResult, run_tick

log = structlog.get_logger(__name__)


class SettlementLoop:
    def __init__(self, ctx: SettlementContext) -> None:
        self.ctx = ctx
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="settlement", daemon=True)

    def tick(self) -> TickResult:
        return run_tick(
            self.ctx,
            lambda batch_id: sender.send_batch(self.ctx, batch_id),
            lambda wid: sender.send_withdrawal(self.ctx, wid),
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        """One tick every `settlement_tick_s` at a fixed rate, like beat: a tick that took part
        of the period (sending batches) is not followed by a whole period of sleep."""
        period = self.ctx.settings.settlement_tick_s
        while not self._stop.wait(period):
            started = time.monotonic()
            try:
                self.tick()
            except DexError as exc:
                log.warning("settlement_tick_failed", code=exc.code.name, error=exc.message)
            except Exception:
                log.exception("settlement_tick_crashed")
            period = max(0.0, self.ctx.settings.settlement_tick_s - (time.monotonic() - started))
