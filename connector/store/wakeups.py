"""Wake-ups: the procrastinate jobs that tell a worker to run a unit of work (sync or write back one instance),
written with procrastinate's own SQL on our connection, so a wake-up commits with what caused it.

The store is the truth and a wake-up only says "look now" (docs/cluster.md): a unit reads what to do from
the store, so a lost wake-up costs latency (the periodic tick makes it again) and a duplicate costs one empty
look. Each wake-up carries procrastinate's `lock = "crm:<instance>"` (units of one instance never run at
once while workers are well) and `queueing_lock = "<kind>:<instance>"` (at most one more of a kind waits).

Why SQL, not the library's `defer`: the webhook's inbox row and its apply wake-up must commit in one
transaction, on our connection, whichever process (receiver, worker's tick) wakes; and a refused defer (its
queueing lock taken: one already waits) must not abort that transaction, so each defer is in a SAVEPOINT
(docs/procrastinate.md#defer-inside-our-transaction; the function and its composite type are pinned by
tests/cluster/test_procrastinate_facts.py). Only PostgreSQL has these tables: this is cluster mode alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from connector.store.database import Database

Kind = Literal["sync", "apply"]
QUEUE = "lonescale-sync"
# A worker takes the highest priority first (procrastinate's fetch: priority, then age). Results already paid
# for go to the CRM before more are bought: a write-back waits behind no sync, of its instance or another's
# (with one FIFO queue, 200 new instances' first syncs held every write-back back for a minute and more).
PRIORITY: dict[str, int] = {"apply": 10, "sync": 0}
QUEUEING_LOCK_INDEX = "procrastinate_jobs_queueing_lock_idx_v1"
_DEFER = text(
    """SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW(
        CAST(:queue AS varchar), CAST(:task AS varchar), CAST(:priority AS integer), CAST(:lock AS text),
        CAST(:queueing_lock AS text), CAST(:args AS jsonb), CAST(NULL AS timestamptz)
    )]::procrastinate_job_to_defer_v1[])) AS id"""
)
# procrastinate's query `select_stalled_jobs_by_heartbeat` (queries.sql), for our queue: running jobs whose
# worker has been silent too long, or whose worker row was pruned (worker_id set NULL).
_STALLED = text(
    """SELECT job.id, job.task_name, job.args, job.lock, job.queueing_lock
         FROM procrastinate_jobs job
         LEFT JOIN procrastinate_workers worker ON worker.id = job.worker_id
        WHERE job.status = 'doing' AND job.queue_name = :queue
          AND (job.worker_id IS NULL
               OR worker.last_heartbeat < NOW() - make_interval(secs => :seconds))
        ORDER BY job.id"""
)

_RUNNING = text("SELECT id FROM procrastinate_jobs WHERE id = :id AND status = 'doing' FOR UPDATE")
# procrastinate's query `delete_old_jobs` (queries.sql), for our queue and every final state: a job's age is
# that of its latest event. Deleting cascades to its events and unlinks its periodic defer (a trigger).
_PURGE = text(
    """DELETE FROM procrastinate_jobs job
        WHERE job.queue_name = :queue AND job.status NOT IN ('todo', 'doing')
          AND NOT EXISTS (SELECT 1 FROM procrastinate_events event
                           WHERE event.job_id = job.id AND event.at >= NOW() - make_interval(secs => :seconds))"""
)


def lock_of(instance: str) -> str:
    """What units must not overlap on: one CRM instance (its sync and its write-back alike)."""
    return f"crm:{instance}"


@dataclass(frozen=True)
class Stalled:
    """A wake-up a worker took and has not finished, its worker silent (dead, frozen, cut off)."""

    id: int
    kind: str
    instance: str


def wake_in(db: Connection, kind: Kind, instance: str) -> bool:
    """Defer a wake-up in the caller's transaction; False when one of this kind already waits for the
    instance (it will do the same work: nothing is lost, and the caller's transaction is unharmed)."""
    values = {"queue": QUEUE, "task": kind, "priority": PRIORITY[kind], "lock": lock_of(instance),
              "queueing_lock": f"{kind}:{instance}", "args": json.dumps({"instance": instance})}  # fmt: skip
    try:
        with db.begin_nested():
            db.execute(_DEFER, values)
    except IntegrityError as exc:
        if _constraint(exc) != QUEUEING_LOCK_INDEX:
            raise
        return False
    return True


def wake_write_backs(db: Connection, instances: Iterable[str]) -> None:
    """A receiver's `Wake` (connector.store.inbox): in the transaction that stores deliveries, a write-back
    wake-up for each instance they belong to."""
    for name in instances:
        wake_in(db, "apply", name)


def _constraint(exc: IntegrityError) -> str | None:
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None)


class Wakeups:
    def __init__(self, database: Database):
        self._database = database

    def wake(self, kind: Kind, instances: Iterable[str]) -> list[str]:
        """Wake `kind` for each instance, each in its own savepoint of one transaction; the instances woken
        (the others had one waiting already)."""
        with self._database.writing() as db:
            return [name for name in instances if wake_in(db, kind, name)]

    def stalled(self, seconds: float) -> list[Stalled]:
        with self._database.reading() as db:
            rows = db.execute(_STALLED, {"queue": QUEUE, "seconds": seconds}).all()
        return [Stalled(row.id, row.task_name, _instance(row.args)) for row in rows]

    def end(self, job: Stalled) -> bool:
        """End a stalled wake-up as failed, freeing its instance's lock for the next one; False if it ended
        meanwhile (its worker came back and finished it). What it left undone is in the store."""
        with self._database.writing() as db:
            # Locked first: the worker's own finish, racing us, either ends it before (we find it not
            # running) or waits for our commit (and fails, which the worker logs and survives).
            running = db.execute(_RUNNING, {"id": job.id}).first()
            if running is None:
                return False
            db.execute(text("SELECT procrastinate_finish_job_v1(:id, 'failed', false)"), {"id": job.id})
        return True

    def purge_ended(self, older_than: timedelta) -> int:
        """Delete the wake-ups that ended longer than `older_than` ago (swept ones, kept `failed` for a person
        to read until then); how many. Finished ones are deleted as they finish (connector.cluster)."""
        with self._database.writing() as db:
            result = db.execute(_PURGE, {"queue": QUEUE, "seconds": older_than.total_seconds()})
        return int(result.rowcount)

    def waiting(self) -> list[tuple[str, str]]:
        """(kind, instance) of each wake-up not yet taken, in the order workers take them (priority, then age;
        one held back by its instance's lock waits its turn)."""
        query = text(
            "SELECT task_name, args FROM procrastinate_jobs WHERE status = 'todo' AND queue_name = :queue "
            "ORDER BY priority DESC, id"
        )
        with self._database.reading() as db:
            return [(row.task_name, _instance(row.args)) for row in db.execute(query, {"queue": QUEUE})]


def _instance(args: Any) -> str:
    value = json.loads(args) if isinstance(args, str) else args
    return str(value.get("instance", "")) if isinstance(value, dict) else ""
