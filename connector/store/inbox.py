"""The inbox: every webhook body LoneScale delivered, kept before its 2xx, until a write-back applies it.

A body's SHA-256 per job is its identity: the same body again is a duplicate delivery, recognised even
after `purge` has emptied it. `unmatched_results` reads the jobs too, to count an instance's."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, select, update

from connector.store import schema
from connector.store.database import Database, aware, now
from connector.store.dialect import insert_ignoring_duplicates, slices
from connector.store.records import Arrival, Delivery

# Told, in the transaction that keeps new deliveries, the instances they belong to: a cluster's receiver
# defers their write-back wake-ups there (connector.store.wakeups), so the row and its wake-up commit together.
Wake = Callable[[Connection, Collection[str]], None]


def sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


class Inbox:
    def __init__(self, database: Database):
        self._database = database

    def keep(self, job_id: str, body: bytes, status: str = "new", error: str | None = None) -> bool:
        """Keep a webhook body durably; False when this exact body was already stored (a duplicate delivery).

        Bodies we cannot use are kept too, with status `invalid` and the reason, for a person to inspect.
        """
        return self.keep_all([Arrival(job_id, body, status, error)])[0]

    def keep_all(self, arrivals: Sequence[Arrival], wake: Wake | None = None) -> list[bool]:
        """Keep several webhook bodies in one transaction, one commit for all (the webhook's group commit);
        for each, in order, what `keep` would say: a body already stored, or earlier in this same call, is a
        duplicate. All are kept or, if this raises, none. `wake` hears, in that transaction, the instances
        of the fresh deliveries to apply."""
        keys = [(a.job_id, sha256(a.body)) for a in arrivals]
        first: dict[tuple[str, str], int] = {}
        rows = []
        for index, (arrival, key) in enumerate(zip(arrivals, keys, strict=True)):
            # Twins in one call: ON CONFLICT would skip one too, but which (their status may differ) is ours.
            if key in first:
                continue
            first[key] = index
            rows.append(
                {"job_id": arrival.job_id, "body_sha256": key[1], "body": arrival.body, "received_at": now(),
                 "status": arrival.status, "error": arrival.error}
            )  # fmt: skip
        if not rows:
            return []
        inbox = schema.inbox
        # RETURNING, as rowcount is unreliable under ON CONFLICT on PostgreSQL; a skipped row returns nothing,
        # so its unique key, not its position, says which rows were fresh.
        returning = (inbox.c.job_id, inbox.c.body_sha256)
        statement = insert_ignoring_duplicates(self._database.engine, inbox).returning(*returning)
        with self._database.writing() as db:
            inserted = {(row.job_id, row.body_sha256) for row in db.execute(statement, rows)}
            fresh = [first[key] == index and key in inserted for index, key in enumerate(keys)]
            if wake is not None:
                due = {
                    a.instance for a, new in zip(arrivals, fresh, strict=True) if new and a.status == "new"
                }
                if due - {None}:
                    wake(db, sorted(name for name in due if name is not None))
        return fresh

    def mark(self, delivery_ids: Sequence[int], status: str, error: str | None = None) -> None:
        with self._database.writing() as db:
            for some in slices(delivery_ids):
                db.execute(
                    update(schema.inbox).where(schema.inbox.c.id.in_(some)).values(status=status, error=error)
                )

    def purge(self, before: datetime) -> int:
        """Empty the bodies of deliveries handled before `before`; the rows and hashes stay for dedup."""
        inbox = schema.inbox
        with self._database.writing() as db:
            return int(
                db.execute(
                    update(inbox)
                    .where(inbox.c.received_at < before, inbox.c.status.notin_(["new", "purged"]))
                    .values(body=b"", status="purged")
                ).rowcount
            )

    # -- reading ------------------------------------------------------------------------------------------
    def new(self, limit: int = 100, after: int = 0, instance: str | None = None) -> list[Delivery]:
        """The oldest unapplied deliveries, in arrival order; `after` a delivery id, for the next page. With
        `instance`, only those of its jobs (a write-back unit of one instance; a delivery naming no job we
        know is left to the pass over all)."""
        inbox = schema.inbox
        query = (
            select(inbox.c.id, inbox.c.job_id, inbox.c.body, inbox.c.received_at)
            .where(inbox.c.status == "new", inbox.c.id > after)
            .order_by(inbox.c.id)
            .limit(limit)
        )
        if instance is not None:
            jobs = schema.jobs
            query = query.join(jobs, jobs.c.id == inbox.c.job_id).where(jobs.c.instance == instance)
        with self._database.reading() as db:
            return [_delivery(r) for r in db.execute(query)]

    def recent(self, limit: int, max_bytes: int = 65_536) -> list[Delivery]:
        """The latest deliveries applied, newest first, leaving out big ones (a whole job's body)."""
        inbox = schema.inbox
        query = (
            select(inbox.c.id, inbox.c.job_id, inbox.c.body, inbox.c.received_at)
            .where(inbox.c.status == "applied", func.length(inbox.c.body) <= max_bytes)
            .order_by(inbox.c.id.desc())
            .limit(limit)
        )
        with self._database.reading() as db:
            return [_delivery(r) for r in db.execute(query)]

    def matching(self, job_id: str | None = None, since: datetime | None = None) -> list[Delivery]:
        """Stored deliveries of one job, or received since a moment: what a replay re-applies."""
        inbox = schema.inbox
        query = (
            select(inbox.c.id, inbox.c.job_id, inbox.c.body, inbox.c.received_at)
            .where(inbox.c.status != "purged")
            .order_by(inbox.c.id)
        )
        if job_id is not None:
            query = query.where(inbox.c.job_id == job_id)
        if since is not None:
            query = query.where(inbox.c.received_at >= since)
        with self._database.reading() as db:
            return [_delivery(r) for r in db.execute(query)]

    def of_job(self, job_id: str) -> list[dict[str, Any]]:
        """Every row the job's deliveries left, whatever their status, in arrival order."""
        query = select(schema.inbox).where(schema.inbox.c.job_id == job_id).order_by(schema.inbox.c.id)
        with self._database.reading() as db:
            return [dict(row._mapping) for row in db.execute(query)]

    def backlog(self) -> tuple[int, datetime | None, datetime | None]:
        """Deliveries waiting to be applied: how many, the oldest and the newest arrival."""
        inbox = schema.inbox
        query = select(func.count(), func.min(inbox.c.received_at), func.max(inbox.c.received_at)).where(
            inbox.c.status == "new"
        )
        with self._database.reading() as db:
            count, oldest, newest = db.execute(query).one()
        return int(count), aware(oldest), aware(newest)

    def backlogs(self) -> dict[str, tuple[int, datetime | None, datetime | None]]:
        """`backlog()` per instance (of the deliveries' jobs), in one query: what a cluster's tick reads to
        wake the write-backs that are ready."""
        inbox, jobs = schema.inbox, schema.jobs
        query = (
            select(
                jobs.c.instance, func.count(), func.min(inbox.c.received_at), func.max(inbox.c.received_at)
            )
            .select_from(inbox.join(jobs, jobs.c.id == inbox.c.job_id))
            .where(inbox.c.status == "new")
            .group_by(jobs.c.instance)
        )
        with self._database.reading() as db:
            return {row[0]: (int(row[1]), aware(row[2]), aware(row[3])) for row in db.execute(query)}

    def waiting_for(self, instance: str) -> tuple[int, datetime | None]:
        """The instance's deliveries waiting to be applied: how many, and the oldest arrival."""
        inbox, jobs = schema.inbox, schema.jobs
        query = (
            select(func.count(), func.min(inbox.c.received_at))
            .select_from(inbox.join(jobs, jobs.c.id == inbox.c.job_id))
            .where(jobs.c.instance == instance, inbox.c.status == "new")
        )
        with self._database.reading() as db:
            count, oldest = db.execute(query).one()
        return int(count), aware(oldest)

    def usage(self, job_id: str) -> tuple[int, int]:
        """A job's deliveries kept in the inbox, whatever their status, and their bytes: what the webhook's
        per-job caps count from. (A purged body counts as empty; purging is long after a token retires.)"""
        inbox = schema.inbox
        query = select(func.count(), func.coalesce(func.sum(func.length(inbox.c.body)), 0)).where(
            inbox.c.job_id == job_id
        )
        with self._database.reading() as db:
            count, size = db.execute(query).one()
        return int(count), int(size)

    def has(self, job_id: str, body_sha256: str) -> bool:
        """Whether this exact body is already kept for the job (a duplicate delivery)."""
        inbox = schema.inbox
        query = select(inbox.c.id).where(inbox.c.job_id == job_id, inbox.c.body_sha256 == body_sha256)
        with self._database.reading() as db:
            return db.execute(query.limit(1)).first() is not None

    def unapplied(self, job_id: str) -> int:
        """How many of this job's stored deliveries wait to be applied."""
        inbox = schema.inbox
        query = select(func.count()).where(inbox.c.job_id == job_id, inbox.c.status == "new")
        with self._database.reading() as db:
            return int(db.execute(query).scalar_one())

    def unusable(self, limit: int | None = 50) -> list[dict[str, Any]]:
        """Deliveries kept for inspection: refused at intake, or with results that matched no contact; None:
        all of them."""
        inbox = schema.inbox
        query = (
            select(inbox.c.id, inbox.c.job_id, inbox.c.status, inbox.c.error, inbox.c.received_at)
            .where(inbox.c.error.is_not(None))
            .order_by(inbox.c.id.desc())
            .limit(limit)
        )
        with self._database.reading() as db:
            return [dict(r._mapping) for r in db.execute(query)]

    def unmatched_results(self, instance: str) -> int:
        """Results of the instance's jobs that matched no contact (paid for, never written), as their
        deliveries note them ("N result(s) matched no contact")."""
        inbox, jobs = schema.inbox, schema.jobs
        query = (
            select(inbox.c.error)
            .join(jobs, jobs.c.id == inbox.c.job_id)
            .where(jobs.c.instance == instance, inbox.c.error.like("% matched no contact"))
        )
        with self._database.reading() as db:
            notes = list(db.scalars(query))
        return sum(int(note.split()[0]) for note in notes if note and note.split()[0].isdigit())


def _delivery(row: Row[*tuple[Any, ...]]) -> Delivery:
    return Delivery(row.id, row.job_id, bytes(row.body), aware(row.received_at))  # type: ignore[arg-type]
