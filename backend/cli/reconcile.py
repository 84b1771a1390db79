"""`hybridex reconcile`: do the books balance? Exit 0 only when nothing disagrees."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def reconcile(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    with_engine: Annotated[
        bool,
        typer.Option(
            "--engine/--no-engine",
            help="Also compare the live engine's ledger with the database (over the engine "
            "port, as the operator role).",
        ),
    ] = True,
) -> None:
    """Compare the engine's ledger with the Exchange contract at the indexer's confirmed block:
    every trader and token, every token the contract holds, what is in flight; and the live
    engine's ledger with the database's projection of it."""
    from backend.config import get_settings
    from backend.db.session import make_engine
    from backend.domain.errors import ConfigurationError
    from backend.logging import configure_logging
    from backend.reconcile.chain import ChainReader
    from backend.reconcile.engine_side import EngineRead, tcp_engine_read
    from backend.reconcile.run import reconcile as run
    from indexer.rpc import RpcClient

    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)  # stderr: stdout is the report
    if settings.exchange_address is None:
        typer.echo("HYBRIDEX_EXCHANGE_ADDRESS is not set", err=True)
        raise typer.Exit(2)
    engine_read: EngineRead | None = None
    if with_engine:
        try:
            engine_read = tcp_engine_read(settings, "operator")
        except ConfigurationError as exc:
            typer.echo(f"{exc.message} (or pass --no-engine)", err=True)
            raise typer.Exit(2) from exc
    rpc = RpcClient(settings.rpc_url, timeout_s=settings.rpc_timeout_s)
    engine = make_engine(settings.database_url)
    try:
        report = run(
            engine,
            ChainReader(rpc, settings.exchange_address),
            fallback_fee_recipient=settings.fee_recipient,
            engine_read=engine_read,
        )
    finally:
        rpc.close()
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(report.as_json(), indent=2))
    else:
        typer.echo(
            f"block {report.block}: {report.accounts} accounts, {report.pairs} balances, "
            f"{report.in_flight_fills} fills and {report.in_flight_chain_effects} deposits or "
            f"withdrawals in flight, {len(report.discrepancies)} discrepancies"
        )
        if report.engine is not None:
            if report.engine["skipped"]:
                typer.echo(f"  engine not compared: {report.engine['skipped']}")
            else:
                typer.echo(
                    f"  engine at seq {report.engine['seq']}: {report.engine['compared']} "
                    f"balances equal, {report.engine['changedSince']} changed since its read"
                )
        for token, sides in report.tokens.items():
            if sides["unattributed"]:
                typer.echo(f"  {token}: {sides['unattributed']} held without a deposit")
        for d in report.discrepancies:
            typer.echo(f"  {json.dumps(d.as_json(report.block))}")
    if not report.clean:
        raise typer.Exit(1)
