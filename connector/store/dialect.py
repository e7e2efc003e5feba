"""Everything that differs between SQLite and PostgreSQL lives here, and only here."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    URL,
    ColumnElement,
    Engine,
    Float,
    FromClause,
    Table,
    Text,
    and_,
    case,
    cast,
    create_engine,
    event,
    func,
    make_url,
    or_,
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


@dataclass(frozen=True)
class JsonMembers:
    """The members of a JSON object as rows, to join beside the table that holds it (`table`), each with its
    key, its value as a float when it is a JSON number (NULL for anything else: a boolean, a string, null, an
    array, an object), whether it is itself an object, and that object (else NULL) to take apart in turn."""

    table: FromClause
    key: ColumnElement[Any]
    number: ColumnElement[Any]
    is_object: ColumnElement[bool]
    nested: ColumnElement[Any]


def json_members(dialect: str, document: ColumnElement[Any]) -> JsonMembers:
    """SQLite's `json_each(document)` (its `type` column tells a number from a boolean: both are 1 or 0 as
    values); PostgreSQL's `json_each(document)`, implicitly LATERAL there as any function in FROM, with
    `json_typeof`. A NULL document has no members on both, so `nested` can be taken apart unguarded."""
    if dialect == "sqlite":
        members = func.json_each(document).table_valued("key", "value", "type")
        is_object = members.c.type == "object"
        number = case((members.c.type.in_(("integer", "real")), cast(members.c.value, Float)))
        return JsonMembers(members, members.c.key, number, is_object, case((is_object, members.c.value)))
    if dialect == "postgresql":
        members = func.json_each(document).table_valued("key", "value")
        kind = func.json_typeof(members.c.value)
        number = case((kind == "number", cast(cast(members.c.value, Text), Float)))
        is_object = kind == "object"
        return JsonMembers(members, members.c.key, number, is_object, case((is_object, members.c.value)))
    raise NotImplementedError(f"no JSON members for {dialect}; add them here")


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
    add: Sequence[str] = (),
    latest: Sequence[str] = (),
) -> Insert:
    """INSERT … ON CONFLICT (keys) DO UPDATE SET each of `replace` to the inserted value, each of `add` to
    the stored value plus the inserted one, each of `latest` to the later of the two (an inserted NULL keeps
    the stored value), and `also`'s expressions [WHERE `where`]: one statement, so two writers of one row
    never meet between a read and an insert (an IntegrityError), a conditional takeover is atomic, and
    concurrent additions to one row all count (the second waits for the first's row and adds to its sum)."""
    statement = _insert(dialect, table)
    new = statement.excluded
    values: dict[str, Any] = {name: new[name] for name in replace}
    values |= {name: table.c[name] + new[name] for name in add}
    values |= {
        name: case(
            (
                and_(new[name].is_not(None), or_(table.c[name].is_(None), table.c[name] < new[name])),
                new[name],
            ),
            else_=table.c[name],
        )
        for name in latest
    }
    values |= dict(also or {})
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
