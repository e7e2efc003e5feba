"""Schedules: when each instance's sync is next due, kept in the database so that several replicas share one
clock (docs/architecture.md#the-clock-and-the-dispatcher).

`declare` writes the config's schedules (an idempotent upsert: a replica starting again changes nothing);
`claim` takes one due time by compare-and-set, so of several replicas ticking at once exactly one starts the
sync, and the next due time is computed by the same code as in one process (connector.schedules.next_time).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy import select, update

from connector.store import schema
from connector.store.database import Database, aware, now
from connector.store.dialect import insert_ignoring_duplicates

NextTime = Callable[[str, datetime, datetime], datetime]  # (schedule, after, anchor) → the next due time


class Schedules:
    def __init__(self, database: Database):
        self._database = database

    def declare(self, schedules: Mapping[str, str], at: datetime, next_time: NextTime) -> None:
        """Each instance's schedule as the config says it. A new instance is due now; one whose schedule
        changed is due at the new schedule's next time (or its old due time, if sooner); the rest stay."""
        table = schema.schedules
        with self._database.writing() as db:
            current = {row.instance: row for row in db.execute(select(table))}
            for name, text in schedules.items():
                row = current.get(name)
                if row is None:
                    db.execute(
                        insert_ignoring_duplicates(self._database.engine, table).values(
                            instance=name, schedule=text, next_due=at, updated_at=at
                        )
                    )
                elif row.schedule != text:
                    due = min(aware(row.next_due), next_time(text, at, at))  # type: ignore[type-var]
                    db.execute(
                        update(table)
                        .where(table.c.instance == name)
                        .values(schedule=text, next_due=due, updated_at=at)
                    )

    def due(self, at: datetime) -> list[tuple[str, str, datetime]]:
        """(instance, schedule, due time) of each sync whose time has come."""
        table = schema.schedules
        with self._database.reading() as db:
            rows = db.execute(select(table).where(table.c.next_due <= at).order_by(table.c.next_due)).all()
        return [(row.instance, row.schedule, aware(row.next_due)) for row in rows]  # type: ignore[misc]

    def claim(self, instance: str, due: datetime, following: datetime) -> bool:
        """Move `instance` from `due` to `following`; True for the one caller that did (the others saw the
        row moved already)."""
        table = schema.schedules
        with self._database.writing() as db:
            moved = db.execute(
                update(table)
                .where(table.c.instance == instance, table.c.next_due == due)
                .values(next_due=following, updated_at=now())
            ).rowcount
        return bool(moved)

    def next_due(self) -> dict[str, datetime]:
        table = schema.schedules
        with self._database.reading() as db:
            return {row.instance: aware(row.next_due) for row in db.execute(select(table))}  # type: ignore[misc]
