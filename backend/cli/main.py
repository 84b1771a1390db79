"""`hybridex` command line: one entry point for every process of the exchange (SPEC §10)."""

from __future__ import annotations

import typer

from backend.cli import api as api_commands
from backend.cli import consume as consume_commands
from backend.cli import db as db_commands
from backend.cli import demo as demo_commands
from backend.cli import deploy as deploy_commands
from backend.cli import dev as dev_commands
from backend.cli import engine as engine_commands
from backend.cli import indexer as indexer_commands
from backend.cli import markets as markets_commands
from backend.cli import reconcile as reconcile_commands
from backend.cli import relay as relay_commands
from backend.cli import worker as worker_commands

app = typer.Typer(
    name="hybridex",
    help="Hybridex: non-custodial hybrid DEX backend.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)
app.add_typer(db_commands.app, name="db")
app.command("dev")(dev_commands.dev)
app.command("demo")(demo_commands.demo)
app.command("deploy")(deploy_commands.deploy)
app.command("engine")(engine_commands.engine)
app.command("api")(api_commands.api)
app.add_typer(markets_commands.app, name="markets")
app.command("worker")(worker_commands.worker)
app.command("beat")(worker_commands.beat)
app.command("indexer")(indexer_commands.indexer)
app.command("reconcile")(reconcile_commands.reconcile)
app.command("relay")(relay_commands.relay)
app.command("consume")(consume_commands.consume)


@app.command("contracts-build")
def contracts_build(
    check: bool = typer.Option(
        False, "--check", help="Only verify that the committed artifacts are fresh."
    ),
) -> None:
    """Compile contracts/src with the pinned solc-js into the committed artifacts (needs Node)."""
    from backend.chain import build

    result = build.compile_contracts()
    if check:
        stale = build.stale_artifacts(result)
        if stale:
            typer.echo(f"stale artifacts: {', '.join(stale)}; run `make contracts`", err=True)
            raise typer.Exit(1)
        typer.echo(f"artifacts are fresh ({result.compiler})")
        return
    written = build.write_artifacts(result)
    for path in written:
        typer.echo(f"wrote {path.relative_to(build.REPO_ROOT)}")
    if not written:
        typer.echo(f"artifacts up to date ({result.compiler})")


if __name__ == "__main__":
    app()
