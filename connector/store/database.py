"""The one database every part of the store shares: its engine, brought to the code's schema on open
(connector.store.upgrade: Alembic, under a lock), and how to write to it.

Each aggregate (runs, cursors, jobs, inbox, ledger, journal, leases) holds this object, not an engine of its
own: they share one connection pool and, on SQLite, one write lock (connector.store.dialect.write_lock). A
write that spans aggregates is one `writing()` transaction, handed to the other aggregate's functions that
take a connection (e.g. connector.store.ledger.sent)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from connector.errors import StoreUnavailable
from connector.store.dialect import make_engine, shown, unavailable, write_lock
from connector.store.upgrade import SchemaState, head, read_state, upgrade


def now() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes even for timezone-aware columns; everything we store is UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class Database:
    def __init__(self, url: str):
        """Open it and bring it to the code's schema, which every process does as it starts (the daemon, each
        command): under the store's lock, so that two starting at once migrate once. A database newer than
        the code is refused (StoreTooNew) before anything runs."""
        self.where = shown(url)
        try:
            self.engine: Engine = make_engine(url)
            self._write_lock = write_lock(self.engine)
            self.schema: tuple[SchemaState, SchemaState] = upgrade(self.engine, self.where)  # (before, after)
        except (SQLAlchemyError, OSError) as exc:  # said as a sentence with its fix, not a traceback
            raise StoreUnavailable(unavailable(url, exc)) from exc

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """One transaction, committed at the end of the block (rolled back if it raises)."""
        with self._write_lock, self.engine.begin() as connection:
            yield connection

    def reading(self) -> Connection:
        return self.engine.connect()

    def close(self) -> None:
        self.engine.dispose()


def schema_state(url: str) -> SchemaState:
    """Where the database at `url` stands, read without changing anything (`lonescale-sync db current`): a
    SQLite file that is not there yet is not created."""
    sqlite_file = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None
    if sqlite_file and not Path(sqlite_file).exists():
        return SchemaState(None, None, head())
    try:
        engine = make_engine(url)
        try:
            return read_state(engine)
        finally:
            engine.dispose()
    except (SQLAlchemyError, OSError) as exc:
        raise StoreUnavailable(unavailable(url, exc)) from exc
