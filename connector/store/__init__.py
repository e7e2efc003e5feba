"""Durable state: what was pulled, sent, received and written. SQLite by default, any SQLAlchemy URL works."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import RowMapping, func, or_, select, update

from connector.models import JobStatus
from connector.store import ledger, schema
from connector.store.cursors import Cursors
from connector.store.database import Database
from connector.store.dialect import insert_ignoring_duplicates, slices
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
        self.ledger = Ledger(self.database)
        self.leases = Leases(self.database)

    def close(self) -> None:
        self.database.close()

    # -- jobs ------------------------------------------------------------------------------------------
    def create_job(self, job: Job, contacts: Sequence[JobContact]) -> None:
        """The job, its contacts and the start of their cooldowns, in one transaction, before LoneScale is
        called: a crash mid-POST cannot then send them again (the job is uncertain, and only a person's
        `retry-failed --jobs` sends its contacts again)."""
        with self.database.writing() as db:
            ledger.sent(
                db, job.instance, {c.record_id: job.enrichment_types for c in contacts}, job.created_at
            )
            db.execute(
                schema.jobs.insert().values(
                    id=job.id,
                    instance=job.instance,
                    run_id=job.run_id,
                    token_sha256=job.token_sha256,
                    lonescale_id=job.lonescale_id,
                    status=job.status.value,
                    enrichment_types=job.enrichment_types,
                    contact_count=job.contact_count,
                    created_at=job.created_at,
                    sent_at=job.sent_at,
                    deadline=job.deadline,
                    polls=job.polls,
                    updated_at=_now(),
                    reason=job.reason,
                )
            )
            if contacts:
                db.execute(
                    schema.job_contacts.insert(),
                    [
                        {
                            "job_id": c.job_id,
                            "record_id": c.record_id,
                            "object": c.object,
                            "sent": c.sent,
                            "pulled": c.pulled,
                            "status": c.status,
                            "reason": c.reason,
                        }
                        for c in contacts
                    ],
                )

    def update_job(self, job_id: str, status: JobStatus, **values: Any) -> None:
        with self.database.writing() as db:
            db.execute(
                update(schema.jobs)
                .where(schema.jobs.c.id == job_id)
                .values(status=status.value, updated_at=_now(), **values)
            )

    def job(self, job_id: str) -> Job | None:
        with self.database.reading() as db:
            row = db.execute(select(schema.jobs).where(schema.jobs.c.id == job_id)).first()
        return None if row is None else self._job(row._mapping)

    def jobs(self, instance: str | None = None, statuses: Iterable[JobStatus] = ()) -> list[Job]:
        query = select(schema.jobs).order_by(schema.jobs.c.created_at)
        if instance is not None:
            query = query.where(schema.jobs.c.instance == instance)
        wanted = [s.value for s in statuses]
        if wanted:
            query = query.where(schema.jobs.c.status.in_(wanted))
        with self.database.reading() as db:
            return [self._job(row._mapping) for row in db.execute(query)]

    def job_counts(self, instance: str) -> dict[str, int]:
        query = (
            select(schema.jobs.c.status, func.count())
            .where(schema.jobs.c.instance == instance)
            .group_by(schema.jobs.c.status)
        )
        with self.database.reading() as db:
            return {status: int(count) for status, count in db.execute(query)}

    def jobs_holding(self, instance: str, status: str) -> list[tuple[Job, int]]:
        """The jobs with contacts in this state (e.g. `expired`), oldest first, each with how many it holds."""
        jobs, contacts = schema.jobs, schema.job_contacts
        held = (
            select(contacts.c.job_id, func.count().label("held"))
            .where(contacts.c.status == status)
            .group_by(contacts.c.job_id)
            .subquery()
        )
        query = (
            select(jobs, held.c.held)
            .join(held, held.c.job_id == jobs.c.id)
            .where(jobs.c.instance == instance)
            .order_by(jobs.c.created_at)
        )
        with self.database.reading() as db:
            return [(self._job(row._mapping), int(row.held)) for row in db.execute(query)]

    @staticmethod
    def _job(row: RowMapping) -> Job:
        return Job(
            id=row["id"],
            instance=row["instance"],
            run_id=row["run_id"],
            token_sha256=row["token_sha256"],
            lonescale_id=row["lonescale_id"],
            status=JobStatus(row["status"]),
            enrichment_types=list(row["enrichment_types"]),
            contact_count=row["contact_count"],
            created_at=_aware(row["created_at"]),  # type: ignore[arg-type]
            sent_at=_aware(row["sent_at"]),
            deadline=_aware(row["deadline"]),
            reason=row["reason"],
            polls=row["polls"],
            updated_at=_aware(row["updated_at"]),
            provider=row["provider"],
        )

    def record_provider(self, job_id: str, provider: str) -> None:
        with self.database.writing() as db:
            db.execute(update(schema.jobs).where(schema.jobs.c.id == job_id).values(provider=provider))

    def job_contacts(self, job_id: str) -> list[JobContact]:
        query = select(schema.job_contacts).where(schema.job_contacts.c.job_id == job_id)
        with self.database.reading() as db:
            return [
                JobContact(r.job_id, r.record_id, r.object, r.sent, r.pulled, r.status, r.reason)
                for r in db.execute(query)
            ]

    def mark_job_contacts(
        self, job_id: str, record_ids: Iterable[str], status: str, reason: str | None = None
    ) -> None:
        ids = list(record_ids)
        if not ids:
            return
        with self.database.writing() as db:
            db.execute(
                update(schema.job_contacts)
                .where(schema.job_contacts.c.job_id == job_id, schema.job_contacts.c.record_id.in_(ids))
                .values(status=status, reason=reason)
            )

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
    def overdue_jobs(self, now: datetime) -> list[Job]:
        """Jobs still waiting for results past their deadline."""
        jobs = schema.jobs
        waiting = [JobStatus.SENT.value, JobStatus.PARTLY_APPLIED.value, JobStatus.UNCERTAIN.value]
        query = (
            select(jobs).where(jobs.c.status.in_(waiting), jobs.c.deadline < now).order_by(jobs.c.deadline)
        )
        with self.database.reading() as db:
            return [self._job(row._mapping) for row in db.execute(query)]

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

    def contacts_sent_since(self, instance: str, since: datetime) -> int:
        """Contacts handed to LoneScale since `since` (jobs it refused are not counted): the monthly cap."""
        jobs = schema.jobs
        query = select(func.coalesce(func.sum(jobs.c.contact_count), 0)).where(
            jobs.c.instance == instance,
            jobs.c.created_at >= since,
            jobs.c.status.notin_([JobStatus.FAILED.value, JobStatus.PENDING.value]),
        )
        with self.database.reading() as db:
            return int(db.execute(query).scalar_one())

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

    def contacts_with_status(self, instance: str, status: str, limit: int = 20) -> list[JobContact]:
        """The latest job contacts in one state (e.g. `rejected`, with the CRM's reason)."""
        contacts, jobs = schema.job_contacts, schema.jobs
        query = (
            select(contacts)
            .join(jobs, jobs.c.id == contacts.c.job_id)
            .where(jobs.c.instance == instance, contacts.c.status == status)
            .order_by(jobs.c.created_at.desc())
            .limit(limit)
        )
        with self.database.reading() as db:
            return [
                JobContact(r.job_id, r.record_id, r.object, r.sent, r.pulled, r.status, r.reason)
                for r in db.execute(query)
            ]

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


__all__ = ["Arrival", "Cursor", "Cursors", "Delivery", "Job", "JobContact", "JournalEntry", "Lease", "Ledger", "Store", "instance_lease",
           "sha256"]  # fmt: skip
