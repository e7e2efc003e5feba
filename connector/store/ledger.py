"""The cooldown ledger (the record_state table): per record and enrichment type, when it was last handed to
LoneScale and whether LoneScale found it, which says when it may be sent again.

The functions change it inside the caller's transaction: a job's creation starts cooldowns (`sent`,
connector.store.jobs), a write's settlement records what was found (`found`, connector.store.journal).
`Ledger` reads it, and releases records on their own (`forget`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from connector.store import schema
from connector.store.database import Database
from connector.store.dialect import slices, upsert

Types = dict[str, dict[str, Any]]  # type → {"sent_at": iso, "found": bool | None}


def read(db: Connection, instance: str, record_ids: Sequence[str]) -> dict[str, Types]:
    table = schema.record_state
    states: dict[str, Types] = {}
    for some in slices(record_ids):
        query = select(table.c.record_id, table.c.types).where(
            table.c.instance == instance, table.c.record_id.in_(some)
        )
        states.update((row.record_id, dict(row.types or {})) for row in db.execute(query))
    return states


def write(db: Connection, instance: str, types: Mapping[str, Types]) -> None:
    """Each record's state as given, in one upsert: a row appears or is replaced without a read in between."""
    if not types:
        return
    table = schema.record_state
    now = datetime.now(UTC)
    rows = [
        {"instance": instance, "record_id": rid, "types": value, "updated_at": now}
        for rid, value in types.items()
    ]
    statement = upsert(db.dialect.name, table, ("instance", "record_id"), ("types", "updated_at"))
    db.execute(statement, rows)


def sent(db: Connection, instance: str, sent_types: Mapping[str, Sequence[str]], at: datetime) -> None:
    """Their cooldowns start: record id → the types just handed to LoneScale."""
    states = read(db, instance, list(sent_types))
    stamp = {"sent_at": at.isoformat(), "found": None}
    merged = {
        rid: {**states.get(rid, {}), **dict.fromkeys(kinds, stamp)} for rid, kinds in sent_types.items()
    }
    write(db, instance, merged)


def found(db: Connection, instance: str, hits: Mapping[str, Mapping[str, bool]]) -> None:
    """Record id → type → found; a miss then waits the shorter not-found cooldown."""
    states = read(db, instance, list(hits))
    now = datetime.now(UTC).isoformat()
    merged = {}
    for rid, by_type in hits.items():
        types = states.get(rid, {})
        merged[rid] = {
            **types,
            **{k: {**types.get(k, {"sent_at": now}), "found": hit} for k, hit in by_type.items()},
        }
    write(db, instance, merged)


def forget(db: Connection, instance: str, record_ids: Sequence[str], kinds: Sequence[str]) -> None:
    """Release from cooldown: their job provably never reached LoneScale."""
    states = read(db, instance, record_ids)
    released = {rid: {k: v for k, v in types.items() if k not in kinds} for rid, types in states.items()}
    write(db, instance, released)


class Ledger:
    def __init__(self, database: Database):
        self._database = database

    def states(self, instance: str, record_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        table = schema.record_state
        query = select(table).where(table.c.instance == instance, table.c.record_id.in_(list(record_ids)))
        with self._database.reading() as db:
            return {r.record_id: dict(r._mapping) for r in db.execute(query)}

    def forget(self, instance: str, record_ids: Sequence[str], types: Sequence[str]) -> None:
        """Release contacts from cooldown for these types: their job provably never reached LoneScale."""
        with self._database.writing() as db:
            forget(db, instance, record_ids, types)
