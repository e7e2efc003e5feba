"""Schema migrations, applied in order at start; each runs once, in a transaction, and is recorded."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, select

from connector.store import schema

Migration = tuple[int, str, Callable[[Connection], None]]


def _initial(connection: Connection) -> None:
    tables = [t for t in schema.metadata.sorted_tables if t is not schema.schema_migrations]
    schema.metadata.create_all(connection, tables=tables)


# Append, never edit: a released migration is history. A new column is a new entry with its own DDL.
MIGRATIONS: list[Migration] = [
    (1, "runs, cursors, jobs, job contacts, inbox, record state, write journal", _initial),
]


def migrate(engine: Engine) -> list[int]:
    """Bring the database to the latest version; returns the versions applied now."""
    schema.schema_migrations.create(engine, checkfirst=True)
    applied_now = []
    with engine.begin() as connection:
        done = set(connection.scalars(select(schema.schema_migrations.c.version)))
    for version, description, apply in MIGRATIONS:
        if version in done:
            continue
        with engine.begin() as connection:
            apply(connection)
            connection.execute(
                schema.schema_migrations.insert().values(
                    version=version, description=description, applied_at=datetime.now(UTC)
                )
            )
        applied_now.append(version)
    return applied_now


def current_version(engine: Engine) -> int:
    with engine.connect() as connection:
        versions = list(connection.scalars(select(schema.schema_migrations.c.version)))
    return max(versions, default=0)
