"""Per-record cooldown state, read and written inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from connector.store import schema
from connector.store.dialect import slices

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


def write(db: Connection, instance: str, types: Mapping[str, Types], existing: Set[str]) -> None:
    """One bulk UPDATE for the records that have a row (`existing`, as just read), one bulk INSERT for the rest."""
    table = schema.record_state
    now = datetime.now(UTC)
    updates = [{"b_id": rid, "b_types": value} for rid, value in types.items() if rid in existing]
    inserts = [
        {"instance": instance, "record_id": rid, "types": value, "updated_at": now}
        for rid, value in types.items()
        if rid not in existing
    ]
    if updates:
        statement = (
            update(table)
            .where(table.c.instance == instance, table.c.record_id == bindparam("b_id"))
            .values(types=bindparam("b_types", type_=table.c.types.type), updated_at=now)
        )
        db.execute(statement, updates)
    if inserts:
        db.execute(table.insert(), inserts)


def sent(db: Connection, instance: str, sent_types: Mapping[str, Sequence[str]], at: datetime) -> None:
    """Their cooldowns start: record id → the types just handed to LoneScale."""
    states = read(db, instance, list(sent_types))
    stamp = {"sent_at": at.isoformat(), "found": None}
    merged = {
        rid: {**states.get(rid, {}), **dict.fromkeys(kinds, stamp)} for rid, kinds in sent_types.items()
    }
    write(db, instance, merged, states.keys())


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
    write(db, instance, merged, states.keys())


def forget(db: Connection, instance: str, record_ids: Sequence[str], kinds: Sequence[str]) -> None:
    """Release from cooldown: their job expired, or never reached LoneScale."""
    states = read(db, instance, record_ids)
    released = {rid: {k: v for k, v in types.items() if k not in kinds} for rid, types in states.items()}
    write(db, instance, released, states.keys())
