"""Bringing a database to the schema this code knows: the Alembic revisions in connector/store/alembic/,
applied under a lock, a database from before Alembic adopted, a newer one refused.

- **At head** (every open but the first after an upgrade): one read of `alembic_version`, nothing else, so
  opening a store stays as cheap as it was.
- **Behind**: the revisions run in one transaction that first takes a lock (PostgreSQL: an advisory lock on
  a fixed key and the schema; SQLite: `BEGIN IMMEDIATE`, the database's write lock), then reads the version
  again. Two processes starting at once on a fresh database never both migrate: the second waits, finds the
  first's work committed, and runs nothing.
- **Made by the old migrations** (a `schema_migrations` table with versions 1..4 and no `alembic_version`):
  revision 000N is the old version N, step for step, so such a database is stamped at its version and
  upgraded from there. `schema_migrations` is left as it was, and never read again once `alembic_version`
  exists.
- **Newer** (its revision is none of ours: a later lonescale-sync upgraded it): refused before anything
  runs, `StoreTooNew`, rather than run today's code on tables it does not know.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from connector.errors import StoreTooNew

log = logging.getLogger(__name__)
REVISIONS = Path(__file__).resolve().parent / "alembic"
# pg_advisory_xact_lock(key, schema): the store's lock, apart from any other advisory lock in the database,
# and one per schema, so stores that share a database in schemas of their own do not wait for each other.
LOCK_KEY = 0x4C53  # "LS"
LEGACY_TABLE = "schema_migrations"


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory(str(REVISIONS))


def head() -> str:
    heads = _script().get_heads()
    assert len(heads) == 1, f"the store's revisions must form one line; heads: {heads}"
    return heads[0]


def known(revision: str) -> bool:
    return any(script.revision == revision for script in _script().walk_revisions())


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands: its revision (None: no Alembic table yet), the old migrations' last version
    when only they have run, and the newest revision this code knows."""

    revision: str | None
    legacy: int | None
    head: str

    @property
    def newer(self) -> bool:
        return self.revision is not None and not known(self.revision)

    @property
    def at_head(self) -> bool:
        return self.revision == self.head

    @property
    def adopted_as(self) -> str | None:
        """The revision a database from the old migrations is stamped at (old version N is revision 000N)."""
        return f"{self.legacy:04d}" if self.revision is None and self.legacy else None

    @property
    def label(self) -> str:
        if self.revision is not None:
            return f"revision {self.revision}"
        return f"version {self.legacy} of the migrations before Alembic" if self.legacy else "no schema"

    def describe(self) -> str:
        if self.newer:
            return (
                f"schema revision {self.revision}, newer than this lonescale-sync (knows up to {self.head})"
            )
        if self.revision is None and self.legacy:
            return (
                f"schema version {self.legacy} of the migrations before Alembic (revision {self.adopted_as}), "
                f"adopted and brought to {self.head} at the next upgrade"
            )
        if self.revision is None:
            return f"no schema yet (head is {self.head})"
        return f"schema revision {self.revision}" + (" (head)" if self.at_head else f", head is {self.head}")


def state(connection: Connection) -> SchemaState:
    tables = set(inspect(connection).get_table_names())
    revision = legacy = None
    if "alembic_version" in tables:
        revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    elif LEGACY_TABLE in tables:
        legacy = connection.execute(text(f"SELECT MAX(version) FROM {LEGACY_TABLE}")).scalar()
    return SchemaState(revision, legacy, head())


def read_state(engine: Engine) -> SchemaState:
    with engine.connect() as connection:
        return state(connection)


def _refuse_newer(found: SchemaState, where: str) -> None:
    if found.newer:
        raise StoreTooNew(
            f"the database at {where} is at {found.describe()}: upgrade lonescale-sync, or point [store] at "
            "another database"
        )


@contextmanager
def locked(engine: Engine) -> Iterator[Connection]:
    """One transaction holding the store's migration lock, committed at the end of the block (procrastinate's
    schema, connector.store.queue_schema, is changed under it too)."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(CAST(:key AS integer), hashtext(current_schema()))"),
                {"key": LOCK_KEY},
            )
        elif engine.dialect.name == "sqlite":
            # The driver opens no transaction before DDL; this one takes the write lock now, and a second
            # process waits for it (busy_timeout), as for any write.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield connection
        connection.commit()


def _config(connection: Connection) -> Config:
    config = Config()  # no alembic.ini: everything it would say is here
    config.set_main_option("script_location", str(REVISIONS))
    config.attributes["connection"] = connection  # env.py runs the revisions on it, in its transaction
    return config


def upgrade(engine: Engine, where: str, to: str = "head") -> tuple[SchemaState, SchemaState]:
    """Bring the database to head; (before, after). `where` names it in a refusal (no password). `to` an
    older revision builds a store as that version left it (the upgrade tests and benchmarks)."""
    before = read_state(engine)
    _refuse_newer(before, where)
    if before.at_head or (to != "head" and before.revision == to):
        return before, before
    with locked(engine) as connection:
        before = state(connection)  # again, under the lock: another process may have done it meanwhile
        _refuse_newer(before, where)
        if not before.at_head:
            config = _config(connection)
            if before.adopted_as:
                command.stamp(config, before.adopted_as)
            command.upgrade(config, to)
        after = state(connection)
    if before.revision != after.revision:
        log.info("the store at %s: schema upgraded from %s to %s", where, before.label, after.label)
    return before, after
