"""Cursors: where each instance's next pull starts."""

from __future__ import annotations

from sqlalchemy import select, update

from connector.store import schema
from connector.store.database import Database, aware, now
from connector.store.fences import Fence, hold
from connector.store.records import Cursor


class Cursors:
    def __init__(self, database: Database):
        self._database = database

    def get(self, instance: str) -> Cursor | None:
        with self._database.reading() as db:
            row = db.execute(select(schema.cursors).where(schema.cursors.c.instance == instance)).first()
        if row is None:
            return None
        return Cursor(aware(row.changed_at))  # type: ignore[arg-type]

    def set(self, instance: str, cursor: Cursor, fence: Fence | None = None) -> None:
        """Move the cursor; under `fence`, only while that lease is still ours (else LeaseLost, cursor kept)."""
        values = {"changed_at": cursor.changed_at, "updated_at": now()}
        with self._database.writing() as db:
            hold(db, fence, now())
            changed = db.execute(
                update(schema.cursors).where(schema.cursors.c.instance == instance).values(**values)
            ).rowcount
            if not changed:
                db.execute(schema.cursors.insert().values(instance=instance, **values))
