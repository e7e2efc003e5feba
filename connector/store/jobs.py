"""Jobs and their contacts: what was handed to LoneScale in one trigger, and each contact's fate since.

`create` also starts the contacts' cooldowns (connector.store.ledger.sent), in the job's own transaction:
the decision to send them is the job's. The monthly cap (`contacts_sent_since`) is a sum over jobs, so it
is here too, not in the ledger."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, RowMapping, case, func, select, update

from connector.models import JobStatus
from connector.store import ledger, schema
from connector.store.database import Database, aware, now
from connector.store.dialect import slices
from connector.store.records import Job, JobContact


class Jobs:
    def __init__(self, database: Database):
        self._database = database

    def create(self, job: Job, contacts: Sequence[JobContact]) -> None:
        """The job, its contacts and the start of their cooldowns, in one transaction, before LoneScale is
        called: a crash mid-POST cannot then send them again (the job is uncertain, and only a person's
        `retry-failed --jobs` sends its contacts again)."""
        with self._database.writing() as db:
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
                    updated_at=now(),
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

    def update(self, job_id: str, status: JobStatus, **values: Any) -> None:
        with self._database.writing() as db:
            db.execute(
                update(schema.jobs)
                .where(schema.jobs.c.id == job_id)
                .values(status=status.value, updated_at=now(), **values)
            )

    def accepted(self, job_id: str, lonescale_id: str | None, sent_at: datetime) -> None:
        """LoneScale took the job: `sent`, unless its results were applied meanwhile. A sync that froze with
        its POST in flight may hear the answer after another process took the instance over, marked the job
        `uncertain` and applied what LoneScale delivered: the job must not go back to awaiting results."""
        jobs = schema.jobs
        awaiting = [JobStatus.PENDING.value, JobStatus.UNCERTAIN.value]
        status = case((jobs.c.status.in_(awaiting), JobStatus.SENT.value), else_=jobs.c.status)
        with self._database.writing() as db:
            db.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(status=status, lonescale_id=lonescale_id, sent_at=sent_at, updated_at=now())
            )

    def record_provider(self, job_id: str, provider: str) -> None:
        with self._database.writing() as db:
            db.execute(update(schema.jobs).where(schema.jobs.c.id == job_id).values(provider=provider))

    def get(self, job_id: str) -> Job | None:
        with self._database.reading() as db:
            row = db.execute(select(schema.jobs).where(schema.jobs.c.id == job_id)).first()
        return None if row is None else _job(row._mapping)

    def find(self, instance: str | None = None, statuses: Iterable[JobStatus] = ()) -> list[Job]:
        """Jobs oldest first: all of them, or the instance's, or those in these states."""
        query = select(schema.jobs).order_by(schema.jobs.c.created_at)
        if instance is not None:
            query = query.where(schema.jobs.c.instance == instance)
        wanted = [s.value for s in statuses]
        if wanted:
            query = query.where(schema.jobs.c.status.in_(wanted))
        with self._database.reading() as db:
            return [_job(row._mapping) for row in db.execute(query)]

    def counts(self, instance: str) -> dict[str, int]:
        """The instance's jobs, how many in each state."""
        query = (
            select(schema.jobs.c.status, func.count())
            .where(schema.jobs.c.instance == instance)
            .group_by(schema.jobs.c.status)
        )
        with self._database.reading() as db:
            return {status: int(count) for status, count in db.execute(query)}

    def ages(self) -> list[tuple[str, str, int, datetime]]:
        """Per instance and state: how many jobs, and when the oldest of them was created (for /metrics)."""
        jobs = schema.jobs
        query = select(jobs.c.instance, jobs.c.status, func.count(), func.min(jobs.c.created_at)).group_by(
            jobs.c.instance, jobs.c.status
        )
        with self._database.reading() as db:
            return [(row[0], row[1], int(row[2]), aware(row[3])) for row in db.execute(query)]  # type: ignore[misc]

    def holding(self, instance: str, status: str) -> list[tuple[Job, int]]:
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
        with self._database.reading() as db:
            return [(_job(row._mapping), int(row.held)) for row in db.execute(query)]

    def overdue(self, at: datetime) -> list[Job]:
        """Jobs still waiting for results past their deadline."""
        jobs = schema.jobs
        waiting = [JobStatus.SENT.value, JobStatus.PARTLY_APPLIED.value, JobStatus.UNCERTAIN.value]
        query = select(jobs).where(jobs.c.status.in_(waiting), jobs.c.deadline < at).order_by(jobs.c.deadline)
        with self._database.reading() as db:
            return [_job(row._mapping) for row in db.execute(query)]

    def contacts_sent_since(self, instance: str, since: datetime) -> int:
        """Contacts handed to LoneScale since `since` (jobs it refused are not counted): the monthly cap."""
        jobs = schema.jobs
        query = select(func.coalesce(func.sum(jobs.c.contact_count), 0)).where(
            jobs.c.instance == instance,
            jobs.c.created_at >= since,
            jobs.c.status.notin_([JobStatus.FAILED.value, JobStatus.PENDING.value]),
        )
        with self._database.reading() as db:
            return int(db.execute(query).scalar_one())

    def results_by_cycle(self, instance: str, cycles: Sequence[int]) -> dict[int, dict[str, int]]:
        """Sync run → enrichment type → contacts of its jobs whose results came and were settled (applied or
        rejected): the denominator of a field's fill rate (connector.status_series)."""
        jobs, contacts = schema.jobs, schema.job_contacts
        found: dict[int, dict[str, int]] = {}
        with self._database.reading() as db:
            for some in slices(cycles):
                query = (
                    select(jobs.c.run_id, jobs.c.enrichment_types, func.count())
                    .join(contacts, contacts.c.job_id == jobs.c.id)
                    .where(jobs.c.instance == instance, jobs.c.run_id.in_(some),
                           contacts.c.status.in_(["applied", "rejected"]))
                    .group_by(jobs.c.id)  # its primary key: PostgreSQL cannot group on a JSON column
                )  # fmt: skip
                for run, kinds, n in db.execute(query):
                    per_type = found.setdefault(int(run), {})
                    for kind in kinds:
                        per_type[kind] = per_type.get(kind, 0) + int(n)
        return found

    def count_contacts_with_status(self, instance: str, status: str) -> int:
        """How many of the instance's job contacts are in one state: the total beside a cut list."""
        contacts, jobs = schema.job_contacts, schema.jobs
        query = (
            select(func.count())
            .select_from(contacts.join(jobs, jobs.c.id == contacts.c.job_id))
            .where(jobs.c.instance == instance, contacts.c.status == status)
        )
        with self._database.reading() as db:
            return int(db.execute(query).scalar_one())

    # -- the contacts of a job ----------------------------------------------------------------------------
    def contacts(self, job_id: str) -> list[JobContact]:
        query = select(schema.job_contacts).where(schema.job_contacts.c.job_id == job_id)
        with self._database.reading() as db:
            return [_contact(r) for r in db.execute(query)]

    def contact_statuses(self, job_id: str) -> set[str]:
        """The statuses a job's contacts are in, without reading their JSON: what settling a job needs."""
        contacts = schema.job_contacts
        query = select(contacts.c.status).where(contacts.c.job_id == job_id).distinct()
        with self._database.reading() as db:
            return set(db.scalars(query))

    def mark_contacts(
        self, job_id: str, record_ids: Iterable[str], status: str, reason: str | None = None
    ) -> None:
        ids = list(record_ids)
        if not ids:
            return
        with self._database.writing() as db:
            db.execute(
                update(schema.job_contacts)
                .where(schema.job_contacts.c.job_id == job_id, schema.job_contacts.c.record_id.in_(ids))
                .values(status=status, reason=reason)
            )

    def contacts_with_status(self, instance: str, status: str, limit: int | None = 20) -> list[JobContact]:
        """The latest job contacts in one state (e.g. `rejected`, with the CRM's reason); None: all of them."""
        contacts, jobs = schema.job_contacts, schema.jobs
        query = (
            select(contacts)
            .join(jobs, jobs.c.id == contacts.c.job_id)
            .where(jobs.c.instance == instance, contacts.c.status == status)
            .order_by(jobs.c.created_at.desc())
            .limit(limit)
        )
        with self._database.reading() as db:
            return [_contact(r) for r in db.execute(query)]


def _contact(row: Row[*tuple[Any, ...]]) -> JobContact:
    return JobContact(row.job_id, row.record_id, row.object, row.sent, row.pulled, row.status, row.reason)


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
        created_at=aware(row["created_at"]),  # type: ignore[arg-type]
        sent_at=aware(row["sent_at"]),
        deadline=aware(row["deadline"]),
        reason=row["reason"],
        polls=row["polls"],
        updated_at=aware(row["updated_at"]),
        provider=row["provider"],
    )
