"""Alembic per service, one schema each (DESIGN §3). Each service's `migrations/env.py` calls `run_env`."""

import asyncio
from typing import Any, Protocol

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, Table, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.schema import SchemaItem

from shared.db import BusTables


def alembic_config(service: str, url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", f"services.{service}:migrations")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(service: str, url: str) -> None:
    """Bring the service's schema to the newest revision (blocking; run it in a thread from async code)."""
    command.upgrade(alembic_config(service, url), "head")


def run_env(schema: str, metadata: MetaData) -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None

    def run(conn: Connection) -> None:
        context.configure(
            connection=conn,
            target_metadata=metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=lambda name, type_, _parent: type_ != "schema" or name == schema,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def migrate() -> None:
        engine = create_async_engine(url, poolclass=NullPool)
        async with engine.begin() as conn:
            # Replicas starting together must not migrate the same schema twice.
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": schema})
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            await conn.run_sync(run)
        await engine.dispose()

    asyncio.run(migrate())


class _TableOps(Protocol):
    def create_table(self, table_name: str, *columns: SchemaItem, **kw: Any) -> Table: ...
    def drop_table(self, table_name: str, *, schema: str | None = None, **kw: Any) -> None: ...


def create_bus_tables(op: _TableOps, schema: str) -> None:
    """Create consumer_offsets, processed_events and outbox in `schema`; a service's first migration calls it."""
    for table in BusTables(MetaData(schema=schema)).all():
        # A column belongs to one Table; _copy() is how Alembic itself reuses one in create_table.
        op.create_table(table.name, *(column._copy() for column in table.columns), schema=schema)


def drop_bus_tables(op: _TableOps, schema: str) -> None:
    for table in reversed(BusTables(MetaData(schema=schema)).all()):
        op.drop_table(table.name, schema=schema)
