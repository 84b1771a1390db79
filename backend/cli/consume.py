"""`hybridex consume`: the reference consumer of the event stream (backend/stream/consume.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from backend.config import get_settings
from backend.domain.errors import ConfigurationError


def consume(
    durable: str = typer.Option("hybridex-balances", help="Durable consumer name (its cursor)."),
    state: str = typer.Option(
        "var/stream-balances.json", help="Where the rebuilt balances are kept."
    ),
    idle_s: float = typer.Option(2.0, help="Stop after this long without an event."),
    limit: int | None = typer.Option(
        None, help="Stop once this many events (in all, duplicates excluded) are applied."
    ),
    compare: str | None = typer.Option(
        None,
        "--compare",
        help="API base URL (http://host:8000): compare every trader's balances with it, read "
        "with the operator's HYBRIDEX_ADMIN_TOKEN; exit 1 on any difference.",
    ),
) -> None:
    """Rebuild every trader's balances and open orders from the stream (NATS JetStream) and
    compare them with the API's."""
    from backend.stream.consume import (
        BalanceBook,
        JetStreamReader,
        api_balances,
        api_open_orders,
        differences,
        order_differences,
        rebuild,
    )

    settings = get_settings()
    url = settings.stream_url
    if url is None or not url.startswith(("nats://", "tls://")):
        raise ConfigurationError(
            "hybridex consume reads NATS JetStream: HYBRIDEX_STREAM_URL=nats://…"
        )
    path = Path(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    book = BalanceBook.load(path)

    async def run() -> None:
        reader = JetStreamReader(url, settings.stream_subject_prefix, durable)
        await reader.start()
        try:
            await rebuild(reader, book, path, idle_s=idle_s, limit=limit)
        finally:
            await reader.close()

    asyncio.run(run())
    typer.echo(
        f"{book.events} events applied ({book.duplicates} duplicates ignored), "
        f"{len(book.traders())} traders, {len(book.balances)} balances, "
        f"{len(book.orders)} open orders"
    )
    if compare is None:
        return
    if settings.admin_token is None:
        raise ConfigurationError("--compare reads every trader: set HYBRIDEX_ADMIN_TOKEN")
    headers = {"Authorization": f"Bearer {settings.admin_token.get_secret_value()}"}
    api = {t: api_balances(compare.rstrip("/"), t, headers) for t in sorted(book.traders())}
    orders = {t: api_open_orders(compare.rstrip("/"), t, headers) for t in sorted(book.traders())}
    diffs = differences(book, api) + order_differences(book, orders)
    for line in diffs:
        typer.echo(f"DIFFERENT {line}")
    if diffs:
        raise typer.Exit(1)
    typer.echo(f"balances and open orders ({len(book.orders)}) equal to the API's")
