"""Alembic environment: target `Base.metadata`, compare types, batch mode on SQLite.

The URL comes from the Config (`backend.db.migrate` sets it), else HYBRIDEX_DATABASE_URL, else
`Settings().database_url`. A caller may also pass an open connection in
`config.attributes["connection"]` (e.g. to migrate an in-memory SQLite database).
"""

from __future__ import annotations

import os
from logging.config import fileConfig
from typing import Any, Literal

import sqlalchemy as sa
from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

import backend.db.models  # noqa: F401  (registers every table on the metadata)
from backend.db import types as dbtypes
from backend.db.base import Base

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("HYBRIDEX_DATABASE_URL")
    if url:
        return url
    from backend.config import Settings

    return Settings().database_url


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render our column types so migrations stay frozen and import no domain enums.

    `U256` differs per dialect, so it is rendered as itself; every other type of
    `backend.db.types` is rendered as the plain SQL type it stores.
    """
    if type_ != "type":
        return False
    if isinstance(obj, dbtypes.U256):
        autogen_context.imports.add("from backend.db import types as dbtypes")
        return "dbtypes.U256()"
    if isinstance(obj, dbtypes.UtcDateTime):
        return "sa.DateTime(timezone=True)"
    if isinstance(obj, dbtypes.FixedBytes):
        return f"sa.LargeBinary(length={obj.length})"
    if isinstance(obj, dbtypes.IntEnumType):
        return "sa.SmallInteger()"
    if isinstance(obj, dbtypes.StrEnumType | dbtypes.Address):
        impl = obj.impl_instance
        assert isinstance(impl, sa.String)
        return f"sa.String(length={impl.length})"
    return False


def configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=render_item,
    )


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        compare_type=True,
        render_item=render_item,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(database_url(), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
