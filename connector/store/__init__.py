"""Durable state: what was pulled, sent, received and written. SQLite by default, any SQLAlchemy URL works."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select, update

from connector.store import ledger, schema
from connector.store.cursors import Cursors
from connector.store.database import Database
from connector.store.dialect import insert_ignoring_duplicates, slices
from connector.store.jobs import Jobs
from connector.store.leases import Lease, Leases, instance_lease
from connector.store.ledger import Ledger
from connector.store.records import Arrival, Cursor, Delivery, Job, JobContact, JournalEntry
from connector.store.runs import Runs


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes even for timezone-aware columns; everything we store is UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


class Store:
    """The store: one database, one object per aggregate. Callers take the piece they need."""

    def __init__(self, url: str):
        self.database = Database(url)
        self.runs = Runs(self.database)
        self.cursors = Cursors(self.database)
        self.jobs = Jobs(self.database)
        self.ledger = Ledger(self.database)
        self.leases = Leases(self.database)

    def close(self) -> None:
        self.database.close()

    # -- inbox -----------------------------------------------------------------------------------------
    def store_delivery(self, job_id: str, body: bytes, status: str = "new", error: str | None = None) -> bool:
        """Keep a webhook body durably; False when this exact body was already stored (a duplicate delivery).

        Bodies we cannot use are kept too, with status `invalid` and the reason, for a person to inspect.
        """
        return self.store_deliveries([Arrival(job_id, body, status, error)])[0]

    def store_deliveries(self, arrivals: Sequence[Arrival]) -> list[bool]:
        """Keep several webhook bodies in one transaction, one commit for all (the webhook's group commit);
        for each, in order, what `store_delivery` would say: a body already stored, or earlier in this same
        call, is a duplicate. All are kept or, if this raises, none."""
        keys = [(a.job_id, sha256(a.body)) for a in arrivals]
        first: dict[tuple[str, str], int] = {}
        rows = []
        for index, (arrival, key) in enumerate(zip(arrivals, keys, strict=True)):
            # Twins in one call: ON CONFLICT would skip one too, but which (their status may differ) is ours.
            if key in first:
                continue
            first[key] = index
            rows.append(
                {"job_id": arrival.job_id, "body_sha256": key[1], "body": arrival.body, "received_at": _now(),
                 "status": arrival.status, "error": arrival.error}
            )  # fmt: skip
        if not rows:
            return []
        inbox = schema.inbox
        # RETURNING, as rowcount is unreliable under ON CONFLICT on PostgreSQL; a skipped row returns nothing,
        # so its unique key, not its position, says which rows were fresh.
        returning = (inbox.c.job_id, inbox.c.body_sha256)
        statement = insert_ignoring_duplicates(self.database.engine, inbox).returning(*returning)
        with self.database.writing() as db:
            inserted = {(row.job_id, row.body_sha256) for row in db.execute(statement, rows)}
        return [first[key] == index and key in inserted for index, key in enumerate(keys)]

    def new_deliveries(self, limit: int = 100, after: int = 0) -> list[Delivery]:
        """The oldest unapplied deliveries, in arrival order; `after` a delivery id, for the next page."""
        query = (
            select(schema.inbox.c.id, schema.inbox.c.job_id, schema.inbox.c.body, schema.inbox.c.received_at)
            .where(schema.inbox.c.status == "new", schema.inbox.c.id > after)
            .order_by(schema.inbox.c.id)
            .limit(limit)
        )
        with self.database.reading() as db:
            return [Delivery(r.id, r.job_id, bytes(r.body), _aware(r.received_at)) for r in db.execute(query)]  # type: ignore[arg-type]

    def recent_deliveries(self, limit: int, max_bytes: int = 65_536) -> list[Delivery]:
        """The latest deliveries applied, newest first, leaving out big ones (a whole job's body)."""
        inbox = schema.inbox
        query = (
            select(inbox.c.id, inbox.c.job_id, inbox.c.body, inbox.c.received_at)
            .where(inbox.c.status == "applied", func.length(inbox.c.body) <= max_bytes)
            .order_by(inbox.c.id.desc())
            .limit(limit)
        )
        with self.database.reading() as db:
            return [Delivery(r.id, r.job_id, bytes(r.body), _aware(r.received_at)) for r in db.execute(query)]  # type: ignore[arg-type]

    def backlog(self) -> tuple[int, datetime | None, datetime | None]:
        """Deliveries waiting to be applied: how many, the oldest and the newest arrival."""
        inbox = schema.inbox
        query = select(func.count(), func.min(inbox.c.received_at), func.max(inbox.c.received_at)).where(
            inbox.c.status == "new"
        )
        with self.database.reading() as db:
            count, oldest, newest = db.execute(query).one()
        return int(count), _aware(oldest), _aware(newest)

    def deliveries(self, job_id: str) -> list[dict[str, Any]]:
        query = select(schema.inbox).where(schema.inbox.c.job_id == job_id).order_by(schema.inbox.c.id)
        with self.database.reading() as db:
            return [dict(row._mapping) for row in db.execute(query)]

    def inbox_usage(self, job_id: str) -> tuple[int, int]:
        """A job's deliveries kept in the inbox, whatever their status, and their bytes: what the webhook's
        per-job caps count from. (A purged body counts as empty; purging is long after a token retires.)"""
        inbox = schema.inbox
        query = select(func.count(), func.coalesce(func.sum(func.length(inbox.c.body)), 0)).where(
            inbox.c.job_id == job_id
        )
        with self.database.reading() as db:
            count, size = db.execute(query).one()
        return int(count), int(size)

    def has_delivery(self, job_id: str, body_sha256: str) -> bool:
        """Whether this exact body is already kept for the job (a duplicate delivery)."""
        inbox = schema.inbox
        query = select(inbox.c.id).where(inbox.c.job_id == job_id, inbox.c.body_sha256 == body_sha256)
        with self.database.reading() as db:
            return db.execute(query.limit(1)).first() is not None

    def unmatched_results(self, instance: str) -> int:
        """Results of the instance's jobs that matched no contact (paid for, never written), as their
        deliveries note them ("N result(s) matched no contact")."""
        inbox, jobs = schema.inbox, schema.jobs
        query = (
            select(inbox.c.error)
            .join(jobs, jobs.c.id == inbox.c.job_id)
            .where(jobs.c.instance == instance, inbox.c.error.like("% matched no contact"))
        )
        with self.database.reading() as db:
            notes = list(db.scalars(query))
        return sum(int(note.split()[0]) for note in notes if note and note.split()[0].isdigit())

    def unapplied_deliveries(self, job_id: str) -> int:
        """How many of this job's stored deliveries wait to be applied."""
        inbox = schema.inbox
        query = select(func.count()).where(inbox.c.job_id == job_id, inbox.c.status == "new")
        with self.database.reading() as db:
            return int(db.execute(query).scalar_one())

    def mark_delivery(self, delivery_id: int, status: str, error: str | None = None) -> None:
        self.mark_deliveries([delivery_id], status, error)

    def mark_deliveries(self, delivery_ids: Sequence[int], status: str, error: str | None = None) -> None:
        with self.database.writing() as db:
            for some in slices(delivery_ids):
                db.execute(
                    update(schema.inbox).where(schema.inbox.c.id.in_(some)).values(status=status, error=error)
                )

    # -- record state and journal ----------------------------------------------------------------------
    def journal(self, entries: Sequence[JournalEntry]) -> list[int]:
        """Add entries; their ids, in order (to settle `pending` ones once the CRM has answered)."""
        if not entries:
            return []
        table = schema.write_journal
        rows = [
            {"run_id": e.run_id, "job_id": e.job_id, "instance": e.instance, "record_id": e.record_id,
             "field": e.field, "old_value": e.old_value, "new_value": e.new_value, "outcome": e.outcome,
             "reason": e.reason, "written_at": e.written_at or _now()}
            for e in entries
        ]  # fmt: skip
        with self.database.writing() as db:
            result = db.execute(table.insert().returning(table.c.id, sort_by_parameter_order=True), rows)
            return [int(row.id) for row in result]

    def settle_write(
        self,
        instance: str,
        outcomes: Mapping[int, tuple[str, str | None]],
        found: Mapping[str, Mapping[str, bool]],
        marks: Mapping[tuple[str, str, str | None], Sequence[str]],
        drop: Sequence[int] = (),
    ) -> None:
        """After the CRM answered: journal outcomes, what was found, and each contact's state, all at once,
        so a crash leaves either the `pending` journal (resolved on the next pass) or everything."""
        journal, contacts = schema.write_journal, schema.job_contacts
        grouped: dict[tuple[str, str | None], list[int]] = {}
        for entry_id, verdict in outcomes.items():
            grouped.setdefault(verdict, []).append(entry_id)
        with self.database.writing() as db:
            for (outcome, reason), ids in grouped.items():
                for some in slices(ids):
                    db.execute(
                        update(journal).where(journal.c.id.in_(some)).values(outcome=outcome, reason=reason)
                    )
            for some in slices(drop):
                db.execute(journal.delete().where(journal.c.id.in_(some)))
            if found:
                ledger.found(db, instance, found)
            for (job_id, status, reason), record_ids in marks.items():
                for some_records in slices(record_ids):
                    db.execute(
                        update(contacts)
                        .where(contacts.c.job_id == job_id, contacts.c.record_id.in_(some_records))
                        .values(status=status, reason=reason)
                    )

    def pending_journal(self, instance: str) -> list[JournalEntry]:
        """Writes journaled as about to happen whose answer never came (the daemon stopped mid-write)."""
        table = schema.write_journal
        return self._journal(table.c.instance == instance, table.c.outcome == "pending")

    def journal_counts(self, instance: str) -> dict[str, int]:
        """Fields written and fields the CRM rejected, over the instance's whole history."""
        table = schema.write_journal
        query = (
            select(table.c.outcome, func.count())
            .where(table.c.instance == instance)
            .group_by(table.c.outcome)
        )
        with self.database.reading() as db:
            return {outcome: int(count) for outcome, count in db.execute(query)}

    def last_written(
        self, instance: str, record_ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """Record → field → the value we last wrote there, where that write is still ours: a rollback that
        came after it restored what was there before us, so the field then holds no value of ours."""
        table, runs = schema.write_journal, schema.runs
        latest: dict[tuple[str, str], tuple[int, Any, str]] = {}
        with self.database.reading() as db:
            for some in slices(record_ids):
                query = (
                    select(table.c.id, table.c.record_id, table.c.field, table.c.new_value, runs.c.kind)
                    .join(runs, runs.c.id == table.c.run_id)
                    .where(table.c.instance == instance, table.c.record_id.in_(some),
                           table.c.field.in_(list(fields)), table.c.outcome == "written")
                )  # fmt: skip
                for row in db.execute(query):
                    key = (row.record_id, row.field)
                    if key not in latest or latest[key][0] < row.id:
                        latest[key] = (row.id, row.new_value, row.kind)
        ours: dict[str, dict[str, Any]] = {}
        for (record_id, name), (_, value, kind) in latest.items():
            if kind != "rollback":
                ours.setdefault(record_id, {})[name] = value
        return ours

    def journal_for_run(self, run_id: int) -> list[JournalEntry]:
        """What run `run_id` wrote: as a sync run, everything written from its jobs' results, by whichever
        write-back passes (a `sync --wait` is one run to the person who ran it); otherwise its own rows."""
        return self._journal(or_(schema.write_journal.c.run_id == run_id, schema.jobs.c.run_id == run_id))

    def deliveries_matching(self, job_id: str | None = None, since: datetime | None = None) -> list[Delivery]:
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
        with self.database.reading() as db:
            return [Delivery(r.id, r.job_id, bytes(r.body), _aware(r.received_at)) for r in db.execute(query)]  # type: ignore[arg-type]

    def purge_payloads(self, before: datetime) -> int:
        """Empty the bodies of deliveries handled before `before`; the rows and hashes stay for dedup."""
        inbox = schema.inbox
        with self.database.writing() as db:
            return int(
                db.execute(
                    update(inbox)
                    .where(inbox.c.received_at < before, inbox.c.status.notin_(["new", "purged"]))
                    .values(body=b"", status="purged")
                ).rowcount
            )

    def unusable_deliveries(self, limit: int = 50) -> list[dict[str, Any]]:
        """Deliveries kept for inspection: refused at intake, or with results that matched no contact."""
        inbox = schema.inbox
        query = (
            select(inbox.c.id, inbox.c.job_id, inbox.c.status, inbox.c.error, inbox.c.received_at)
            .where(inbox.c.error.is_not(None))
            .order_by(inbox.c.id.desc())
            .limit(limit)
        )
        with self.database.reading() as db:
            return [dict(r._mapping) for r in db.execute(query)]

    def journal_for(self, instance: str, record_id: str) -> list[JournalEntry]:
        table = schema.write_journal
        return self._journal(table.c.instance == instance, table.c.record_id == record_id)

    def _journal(self, *conditions: Any) -> list[JournalEntry]:
        """Journal rows, oldest first, each with the sync run whose job it wrote (`cycle`)."""
        table, jobs = schema.write_journal, schema.jobs
        query = (
            select(table, jobs.c.run_id.label("cycle"))
            .select_from(table.outerjoin(jobs, jobs.c.id == table.c.job_id))
            .where(*conditions)
            .order_by(table.c.id)
        )
        with self.database.reading() as db:
            return [
                JournalEntry(r.run_id, r.job_id, r.instance, r.record_id, r.field, r.old_value, r.new_value,
                             r.outcome, r.reason, _aware(r.written_at), r.id, r.cycle)
                for r in db.execute(query)
            ]  # fmt: skip


__all__ = ["Arrival", "Cursor", "Cursors", "Delivery", "Job", "JobContact", "Jobs", "JournalEntry", "Lease", "Ledger", "Store", "instance_lease",
           "sha256"]  # fmt: skip
