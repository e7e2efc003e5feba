"""Runs: one row per sync, write-back pass, replay, rollback or resend, with its counts and how it ended.

`interrupt_unfinished` updates jobs too: at start, the runs a crash left `running` and the jobs they were
posting are settled in one transaction, so it stays with the runs that crashed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from connector.models import JobStatus
from connector.store import run_totals, schema
from connector.store.database import Database, now


class Runs:
    def __init__(self, database: Database):
        self._database = database

    def start(self, instance: str, kind: str) -> int:
        with self._database.writing() as db:
            result = db.execute(
                schema.runs.insert().values(
                    instance=instance, kind=kind, status="running", started_at=now(), counts={}
                )
            )
            run_totals.started(db, instance, kind)
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def finish(self, run_id: int, status: str, counts: Mapping[str, Any], error: str | None = None) -> None:
        """The run ends: its outcome and counts, and the counts added to the sums /metrics reads
        (connector.store.run_totals), in one transaction. The only writer of a run's counts."""
        runs = schema.runs
        with self._database.writing() as db:
            # The run as it was, locked on PostgreSQL until the commit: the sums move by what changes.
            before = db.execute(
                select(runs.c.instance, runs.c.kind, runs.c.status, runs.c.counts)
                .where(runs.c.id == run_id)
                .with_for_update()
            ).first()
            at = now()
            db.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(status=status, finished_at=at, counts=dict(counts), error=error)
            )
            if before is not None:
                run_totals.finished(db, dict(before._mapping), status, counts, at)

    def recent(
        self, instance: str, limit: int = 20, kinds: Sequence[str] = (), statuses: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """The instance's latest runs, newest first: of every kind, or of these kinds (and these outcomes)."""
        query = (
            select(schema.runs)
            .where(schema.runs.c.instance == instance)
            .order_by(schema.runs.c.id.desc())
            .limit(limit)
        )
        if kinds:
            query = query.where(schema.runs.c.kind.in_(list(kinds)))
        if statuses:
            query = query.where(schema.runs.c.status.in_(list(statuses)))
        with self._database.reading() as db:
            return [dict(row._mapping) for row in db.execute(query)]

    def latest(self, instance: str, kind: str) -> dict[str, Any] | None:
        """The instance's newest run of one kind (`sync`, `apply`…), whatever its outcome."""
        found = self.recent(instance, 1, kinds=[kind])
        return found[0] if found else None

    def since(self, instance: str, kinds: Sequence[str], started: datetime) -> list[dict[str, Any]]:
        """The instance's runs of these kinds started at or after `started`, oldest first."""
        runs = schema.runs
        query = (
            select(runs)
            .where(runs.c.instance == instance, runs.c.kind.in_(list(kinds)), runs.c.started_at >= started)
            .order_by(runs.c.id)
        )
        with self._database.reading() as db:
            return [dict(row._mapping) for row in db.execute(query)]

    def get(self, run_id: int) -> dict[str, Any] | None:
        with self._database.reading() as db:
            row = db.execute(select(schema.runs).where(schema.runs.c.id == run_id)).first()
        return None if row is None else dict(row._mapping)

    def interrupt_unfinished(self, instance: str) -> tuple[int, int]:
        """For an instance nobody is working on (the caller holds its lease): runs a crash left `running` are
        `interrupted`; jobs stored but maybe never posted are `uncertain` (their webhook settles them, or the
        overdue path does)."""
        runs, jobs = schema.runs, schema.jobs
        with self._database.writing() as db:
            stopped = db.execute(
                update(runs)
                .where(runs.c.instance == instance, runs.c.status == "running")
                .values(status="interrupted", finished_at=now())
            ).rowcount
            unsure = db.execute(
                update(jobs)
                .where(jobs.c.instance == instance, jobs.c.status == JobStatus.PENDING.value)
                .values(status=JobStatus.UNCERTAIN.value, reason="the daemon stopped while posting it",
                        updated_at=now())
            ).rowcount  # fmt: skip
        return int(stopped), int(unsure)

    # -- totals over every run, for /metrics (connector.metrics): read from the sums kept as runs finish --
    def totals(self, kinds: Sequence[str], keys: Sequence[str]) -> dict[str, dict[str, float]]:
        """Instance → count key → its sum over the instance's runs of these kinds (a running run counts
        nothing yet: its counts are written when it finishes)."""
        with self._database.reading() as db:
            return run_totals.totals(db, kinds, keys)

    def totals_by(self, kinds: Sequence[str], key: str) -> dict[tuple[str, str], float]:
        """(instance, entry) → the sum over runs of these kinds of one count that is itself a mapping, such
        as `skipped` (reason → records) or `kept_by_policy` (reason → fields)."""
        with self._database.reading() as db:
            return run_totals.totals_by(db, kinds, key)

    def last_succeeded(self) -> dict[tuple[str, str], datetime]:
        """(instance, kind) → when its latest run that succeeded finished."""
        with self._database.reading() as db:
            return run_totals.last_succeeded(db)
