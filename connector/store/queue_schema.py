"""procrastinate's schema (the cluster's job queue) in the store's database, applied and tracked by us: the
library keeps no record of what a database has (docs/procrastinate.md#schema-and-migrations).

- **Fresh** (no `procrastinate_jobs` in the current schema): its `schema.sql`, of the installed version, runs
  on our connection in one transaction, and `queue_schema` records it, "schema.sql 3.10.0", with every
  migration file the package ships: that schema already holds them (procrastinate's CI checks the schema
  equals its migrations applied in order).
- **Recorded**: each shipped migration file not recorded yet runs, in file-name order (the names are
  zero-padded versions, so that is version order), one transaction each, and is recorded. The record goes
  by file name, not by comparing the `xx.yy.zz` prefix with a version: the prefix is "the next minor
  version" by procrastinate's contributing rules and "the version it applies to" by its older docs, and a
  migration can ship in a patch release, so a version comparison could skip one or run one twice.
- **Made by someone else** (procrastinate's tables, none of our record: `procrastinate schema --apply`):
  taken to be the installed version's schema, recorded as adopted, nothing run, a warning logged.

Every change runs under the store's migration lock (connector.store.upgrade.locked), the same key as
Alembic's: one rule, "changing this schema's objects holds the lock", whoever changes them. Two upgrades at
once: one applies, the other waits, reads the record again and applies nothing. The worker only checks
(`check_queue_schema`); applying is `lonescale-sync db upgrade`'s.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text

from connector.errors import ConnectorError, QueueSchemaMissing
from connector.store import schema
from connector.store.database import Database
from connector.store.dialect import shown
from connector.store.upgrade import locked

log = logging.getLogger(__name__)
MIGRATION = re.compile(r"(\d\d)\.(\d\d)\.(\d\d)_(\d\d)_([a-z0-9_]+)\.sql")
FIX = "run `lonescale-sync db upgrade`"
# SQLAlchemy hands the text to psycopg as it is: no parameters, so no `%` read as a placeholder, and psycopg
# sends it by the simple query protocol, which takes several statements at once.
AS_IS = {"no_parameters": True}


@dataclass(frozen=True)
class Installed:
    """The procrastinate this process runs: its version, its whole schema, its migration files by name."""

    version: str
    schema_sql: str
    folder: Path
    migrations: tuple[str, ...]

    @property
    def schema_step(self) -> str:
        return f"schema.sql {self.version}"

    def read(self, migration: str) -> str:
        return (self.folder / migration).read_text(encoding="utf-8")


def installed() -> Installed:
    try:
        from procrastinate.schema import SchemaManager
    except ImportError:  # the `cluster` extra is not installed
        raise ConnectorError(
            "[cluster] needs procrastinate, which is not installed: install lonescale-sync[cluster]"
        ) from None
    folder = Path(SchemaManager.get_migrations_path())
    names = tuple(sorted(p.name for p in folder.glob("*.sql") if MIGRATION.fullmatch(p.name)))
    return Installed(metadata.version("procrastinate"), SchemaManager.get_schema(), folder, names)


def is_pre(migration: str) -> bool:
    """A migration to apply before the new code runs; names without `pre`/`post` are post (procrastinate's
    rule)."""
    found = MIGRATION.fullmatch(migration)
    return found is not None and found.group(5).startswith("pre_")


def _engine(target: Engine | Database) -> tuple[Engine, str]:
    engine = target.engine if isinstance(target, Database) else target
    where = target.where if isinstance(target, Database) else shown(engine.url.render_as_string())
    if engine.dialect.name != "postgresql":
        raise ConnectorError(
            f"the store at {where} is not PostgreSQL: procrastinate's queue lives only there"
        )
    return engine, where


def _has_queue(connection: Connection) -> bool:
    # In the current schema (the first of the search_path), where schema.sql would create it; not anywhere
    # on the path, which to_regclass('procrastinate_jobs') alone would search.
    found = connection.execute(
        text("SELECT to_regclass(quote_ident(current_schema()) || '.procrastinate_jobs') IS NOT NULL")
    )
    return bool(found.scalar())


def _recorded(connection: Connection) -> set[str]:
    if not inspect(connection).has_table(schema.queue_schema.name):
        return set()  # the store's revisions have not run: nothing is recorded, as nothing could be
    return set(
        connection.execute(
            schema.queue_schema.select().with_only_columns(schema.queue_schema.c.name)
        ).scalars()
    )


def _record(connection: Connection, names: list[str], how: str) -> None:
    at = datetime.now(UTC)
    connection.execute(
        schema.queue_schema.insert(), [{"name": n, "how": how, "applied_at": at} for n in names]
    )


def _whole_schema(connection: Connection, found: Installed, recorded: set[str], where: str) -> list[str]:
    """Apply schema.sql (no procrastinate_jobs here) or adopt what is there (no record of ours); what ran."""
    if _has_queue(connection):
        log.warning(
            "the store at %s has procrastinate's tables but no record of lonescale-sync applying them "
            "(`procrastinate schema --apply`?): taken to be procrastinate %s's schema and recorded so; if an "
            "older procrastinate made them, apply its migrations since that version by hand "
            "(docs/procrastinate.md#schema-and-migrations)",
            where,
            found.version,
        )
        _record(connection, [found.schema_step, *found.migrations], "adopted")
        return []
    if recorded:
        # Our record without the tables: someone dropped them. The record says what the database has.
        log.warning("the store at %s: procrastinate's tables are gone, its schema is applied again", where)
        connection.execute(schema.queue_schema.delete())
    connection.exec_driver_sql(found.schema_sql, execution_options=AS_IS)
    _record(connection, [found.schema_step], "applied")
    _record(connection, list(found.migrations), f"in {found.schema_step}")
    return [found.schema_step]


def upgrade_queue_schema(target: Engine | Database) -> list[str]:
    """Bring procrastinate's schema in the store's database to the installed version's; the steps applied
    ("schema.sql 3.10.0", or migration file names), empty when there was nothing to do. The store's own
    revisions must have run (a Database has run them)."""
    engine, where = _engine(target)
    found = installed()
    with engine.connect() as connection:  # the usual case, nothing to do, without the lock
        if _has_queue(connection) and set(found.migrations) <= _recorded(connection):
            return []
    with locked(engine) as connection:
        recorded = _recorded(connection)  # again, under the lock: another process may have done it meanwhile
        if not _has_queue(connection) or not recorded:
            applied = _whole_schema(connection, found, recorded, where)
            if applied:
                log.info("the store at %s: procrastinate's schema %s applied", where, found.version)
            return applied
    applied = []
    while True:
        # One transaction per migration, as `psql` would run the files one after the other: a later file may
        # use what an earlier one made (an enum value is usable only once its transaction commits).
        with locked(engine) as connection:
            pending = [m for m in found.migrations if m not in _recorded(connection)]
            if not pending:
                break
            connection.exec_driver_sql(found.read(pending[0]), execution_options=AS_IS)
            _record(connection, [pending[0]], "applied")
        log.info("the store at %s: procrastinate's migration %s applied", where, pending[0])
        applied.append(pending[0])
    return applied


def check_queue_schema(target: Engine | Database) -> None:
    """Refuse to work on a database whose queue is not ready for the installed procrastinate, in one sentence
    with its fix (QueueSchemaMissing); changes nothing. Post-migrations not applied yet are fine: by
    procrastinate's rules they come after the new code is deployed."""
    engine, where = _engine(target)
    found = installed()
    with engine.connect() as connection:
        has_queue, recorded = _has_queue(connection), _recorded(connection)
    if not has_queue:
        raise QueueSchemaMissing(
            f"the store at {where} has no procrastinate schema, the cluster's job queue: {FIX}"
        )
    if not recorded:
        raise QueueSchemaMissing(
            f"the store at {where} has procrastinate's tables but no record of which schema they are: {FIX}"
        )
    missing = [m for m in found.migrations if m not in recorded and is_pre(m)]
    if missing:
        raise QueueSchemaMissing(
            f"the store at {where} lacks {len(missing)} of the migrations procrastinate {found.version} needs "
            f"(first: {missing[0]}): {FIX}"
        )
