"""Everything that differs between SQLite and PostgreSQL lives here, and only here."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    URL,
    ColumnElement,
    Engine,
    Float,
    FromClause,
    Table,
    cast,
    create_engine,
    event,
    func,
    make_url,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError
from sqlalchemy.sql.dml import Insert

from connector import jsoncodec

T = TypeVar("T")
STATEMENTS = 16
# Ids per IN list: SQLite compiles each bound value into the statement (about a kilobyte apiece), so one IN
# of a pass's 7,000 journal ids made a 9 MB statement; slices keep every statement small.
IN_SLICE = 500


def slices(values: Sequence[T], size: int = IN_SLICE) -> Iterator[list[T]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # Webhook intake and the scheduler write from several threads: WAL lets readers run beside the writer,
        # and busy_timeout waits for the lock instead of failing with "database is locked".
        # cached_statements: sqlite3 keeps 128 prepared statements per connection by default, and a bulk
        # insert or an IN list of another length is another statement, some of them large, so the cache
        # grew with the run (about 25 MB at 60,000 contacts, measured). The hot statements are few; 16
        # keeps them.
        # The JSON columns (a job's contacts, the journal's old and new values: several rows per delivery
        # applied) read by orjson, with the stdlib's reading wherever orjson refuses, and written with the
        # text `json.dumps` gives, faster for scalars (connector.jsoncodec).
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30, "cached_statements": STATEMENTS},
            json_serializer=jsoncodec.dumps_text,
            json_deserializer=jsoncodec.loads,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            _wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def _wal(cursor: Any) -> None:
    """WAL mode. Switching a new file to it needs the file alone for a moment, and SQLite answers "locked" at
    once instead of waiting (busy_timeout does not apply): processes opening a new store together retry."""
    deadline = time.monotonic() + 30
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def json_entries(dialect: str, column: ColumnElement[Any], key: str) -> tuple[FromClause, ColumnElement[Any],
                                                                          ColumnElement[Any]]:  # fmt: skip
    """The entries of the JSON object at `column[key]` as rows, to join beside the column's table: (the
    table-valued function, its key column, its value as a number). SQLite's `json_each(column, '$.key')`;
    PostgreSQL's `json_each_text(column -> 'key')` (implicitly LATERAL there, as any function in FROM)."""
    if dialect == "sqlite":
        entries = func.json_each(column, f"$.{key}").table_valued("key", "value")
        return entries, entries.c.key, cast(entries.c.value, Float)
    if dialect == "postgresql":
        entries = func.json_each_text(column[key]).table_valued("key", "value")
        return entries, entries.c.key, cast(entries.c.value, Float)
    raise NotImplementedError(f"no JSON entries for {dialect}; add them here")


def _insert(dialect: str, table: Table) -> sqlite.Insert | postgresql.Insert:
    if dialect == "sqlite":
        return sqlite.insert(table)
    if dialect == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"no upsert for {dialect}; add it here")


def insert_ignoring_duplicates(engine: Engine, table: Table) -> Insert:
    """INSERT … ON CONFLICT DO NOTHING, in the engine's dialect."""
    return _insert(engine.dialect.name, table).on_conflict_do_nothing()


def upsert(
    dialect: str,
    table: Table,
    keys: Sequence[str],
    replace: Sequence[str],
    *,
    also: Mapping[str, Any] | None = None,
    where: Any = None,
) -> Insert:
    """INSERT … ON CONFLICT (keys) DO UPDATE SET each of `replace` to the inserted value (and `also`'s
    expressions) [WHERE `where`]: one statement, so two writers of one row never meet between a read and an
    insert (an IntegrityError), and a conditional takeover is atomic."""
    statement = _insert(dialect, table)
    values = {name: statement.excluded[name] for name in replace} | dict(also or {})
    return statement.on_conflict_do_update(index_elements=list(keys), set_=values, where=where)


def write_lock(engine: Engine) -> AbstractContextManager[Any]:
    """SQLite has one writer at a time; colliding writers fall into its busy handler, which sleeps up to
    100 ms per retry. Taking turns on a process lock instead keeps concurrent webhook intake fast.
    Other databases lock rows, not files: no lock."""
    return threading.Lock() if engine.dialect.name == "sqlite" else nullcontext()


def shown(url: str) -> str:
    """The store's URL as a message may name it: a SQLite file's path, or the URL without its password."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return repr(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or "(in memory)"
    return URL.create(
        parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database
    ).render_as_string()


def unavailable(url: str, exc: Exception) -> str:
    """Why the store at `url` cannot be used, in a sentence with the fix; never the password."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return (
            f"the [store] url {url!r} is not a database URL (e.g. sqlite:///state.db, postgresql+psycopg://…)"
        )
    cause = (
        str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        if str(exc).strip()
        else type(exc).__name__
    )
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        if parsed.database and not path.parent.exists():
            return f"the store's folder {path.parent} does not exist: create it, or change [store] url"
        return f"cannot open the SQLite store {path} ({cause}): check the file's permissions, or change [store] url"
    where = shown(url)
    return (
        f"cannot use the store at {where} ({cause}): is the database server running and reachable, and are "
        "the user and database in [store] url right?"
    )
