"""Schema migrations, applied in order at start; each runs once, in a transaction, and is recorded."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, inspect, select, text, update

from connector.store import schema

Migration = tuple[int, str, Callable[[Connection], None]]


_FIRST_TABLES = ("runs", "cursors", "jobs", "job_contacts", "inbox", "record_state", "write_journal")


def _initial(connection: Connection) -> None:
    tables = [schema.metadata.tables[name] for name in _FIRST_TABLES]
    schema.metadata.create_all(connection, tables=tables)


def _leases(connection: Connection) -> None:
    schema.leases.create(connection, checkfirst=True)


def _partly_applied(connection: Connection) -> None:
    jobs = schema.jobs
    connection.execute(update(jobs).where(jobs.c.status == "received").values(status="partly_applied"))


def _job_provider(connection: Connection) -> None:
    # `_initial` builds `jobs` from today's schema, so a database created since has the column already.
    if any(c["name"] == "provider" for c in inspect(connection).get_columns("jobs")):
        return
    kind = schema.jobs.c.provider.type.compile(connection.dialect)
    connection.execute(text(f"ALTER TABLE jobs ADD COLUMN provider {kind}"))


def _schedules(connection: Connection) -> None:
    schema.schedules.create(connection, checkfirst=True)


# Append, never edit: a released migration is history. A new table or column is a new entry with its own DDL
# (and `_initial` names its own tables, so a fresh database gets later ones from their migrations).
MIGRATIONS: list[Migration] = [
    (1, "runs, cursors, jobs, job contacts, inbox, record state, write journal", _initial),
    (2, "leases: one holder per instance for syncs and write-backs", _leases),
    (3, "jobs.status 'received' is called what it is: 'partly_applied'", _partly_applied),
    (4, "jobs.provider: the provider LoneScale's results name", _job_provider),
    (5, "schedules: when each instance's sync is next due, shared by replicas", _schedules),
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
