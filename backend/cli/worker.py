"""`hybridex worker` / `hybridex beat`: the settlement Celery worker and its scheduler."""

from __future__ import annotations

import typer


def worker(
    concurrency: int = typer.Option(2, help="Worker threads (tasks serialise on locks)."),
    loglevel: str = typer.Option("INFO", help="Celery log level."),
) -> None:
    """Run the settlement worker (Celery, Redis broker): batches, sends, follows transactions."""
    from backend.config import get_settings
    from backend.logging import configure_logging
    from backend.settlement.celery_app import app

    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    app.worker_main(
        [
            "worker",
            # Threads: the tasks wait on the node and the database, and serialise on the
            # sender lock anyway; one process keeps one operator context and one metrics
            # registry (HYBRIDEX_SETTLEMENT_METRICS_PORT).
            "--pool=threads",
            f"--concurrency={concurrency}",
            f"--loglevel={loglevel}",
            "--without-mingle",
            "--without-gossip",
        ]
    )


def beat(
    schedule: str | None = typer.Option(
        None, help="File where beat keeps its schedule state [default: HYBRIDEX_BEAT_SCHEDULE]."
    ),
    loglevel: str = typer.Option("INFO", help="Celery log level."),
) -> None:
    """Run the settlement scheduler: one `settlement.tick` every HYBRIDEX_SETTLEMENT_TICK_S."""
    from pathlib import Path

    from backend.config import get_settings
    from backend.logging import configure_logging
    from backend.settlement.celery_app import app

    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    path = Path(schedule) if schedule is not None else settings.beat_schedule
    path.parent.mkdir(parents=True, exist_ok=True)
    app.start(["beat", f"--schedule={path}", f"--loglevel={loglevel}"])
