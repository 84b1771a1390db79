"""`hybridex db …`: schema migrations (Alembic)."""

from __future__ import annotations

import typer

from backend.config import get_settings

app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations up to REVISION (default: head)."""
    import backend.db.migrate as migrate

    url = get_settings().database_url
    migrate.upgrade(url, revision)
    typer.echo(f"database at {migrate.current(url)}")


@app.command()
def downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. base")) -> None:
    """Revert migrations down to REVISION."""
    import backend.db.migrate as migrate

    url = get_settings().database_url
    migrate.downgrade(url, revision)
    typer.echo(f"database at {migrate.current(url) or 'base'}")


@app.command()
def current() -> None:
    """Print the revision the database is at."""
    import backend.db.migrate as migrate

    typer.echo(migrate.current(get_settings().database_url) or "base")
