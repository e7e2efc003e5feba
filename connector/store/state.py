"""Per-record cooldown state, read and written inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update

from connector.store import schema

Types = dict[str, dict[str, Any]]  # type → {"sent_at": iso, "found": bool | None}


def read(db: Connection, instance: str, record_ids: Sequence[str]) -> dict[str, Types]:
    table = schema.record_state
    query = select(table.c.record_id, table.c.types).where(
        table.c.instance == instance, table.c.record_id.in_(list(record_ids))
    )
    return {row.record_id: dict(row.types or {}) for row in db.execute(query)}


def write(db: Connection, instance: str, types: Mapping[str, Types]) -> None:
    table = schema.record_state
    now = datetime.now(UTC)
    for record_id, value in types.items():
        changed = db.execute(
            update(table)
            .where(table.c.instance == instance, table.c.record_id == record_id)
            .values(types=value, updated_at=now)
        ).rowcount
        if not changed:
            db.execute(
                table.insert().values(instance=instance, record_id=record_id, types=value, updated_at=now)
            )


def sent(db: Connection, instance: str, sent_types: Mapping[str, Sequence[str]], at: datetime) -> None:
    """Their cooldowns start: record id → the types just handed to LoneScale."""
    states = read(db, instance, list(sent_types))
    stamp = {"sent_at": at.isoformat(), "found": None}
    write(
        db,
        instance,
        {rid: {**states.get(rid, {}), **dict.fromkeys(kinds, stamp)} for rid, kinds in sent_types.items()},
    )


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
    """Release from cooldown: their job expired, or never reached LoneScale."""
    states = read(db, instance, record_ids)
    write(
        db,
        instance,
        {rid: {k: v for k, v in types.items() if k not in kinds} for rid, types in states.items()},
    )
