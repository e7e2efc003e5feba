"""Cluster mode (`[cluster] enabled = true`): workers on one PostgreSQL store, procrastinate as the clock and the
dispatcher, the same units of work as one process (docs/cluster.md).

- **The clock** is a procrastinate periodic task, `tick`, every `[cluster] tick_seconds`: every worker's
  deferrer tries each slot and the database keeps one (docs/procrastinate.md#periodic-tasks-one-defer-per-tick).
  It asks the schedules in the store which syncs are due (`SharedSyncTimes`: a compare-and-set per due time,
  so replicas with drifting configs cannot double a run), wakes the write-backs whose backlog is ready (a
  wake-up lost with a receiver is made again here), and sweeps the wake-ups of silent workers.
- **The dispatcher** is `QueueDispatcher`: a unit is a wake-up job (connector.store.wakeups) with
  `lock = "crm:<instance>"`, so a sync and a write-back of one instance never run at once while workers are
  well, and a `queueing_lock`, so at most one more of a kind waits. The lock is not our mutual exclusion
  (a frozen worker's job is swept and it may wake beside its successor): every unit takes the instance's
  epoch-fenced lease in the store, as in one process.
- No library retries and no `schedule_at` on these jobs (docs/procrastinate.md#traps-and-what-we-do-instead):
  a failed unit records its failure in our tables and ends; the next tick or wake-up decides.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import procrastinate
import procrastinate.exceptions
from sqlalchemy import make_url

from connector.clock import SharedSyncTimes
from connector.daemon import perform, tick
from connector.dispatch import Unit
from connector.errors import StoreUnavailable
from connector.runtime import Runtime, ready
from connector.store import Store, Wakeups
from connector.store.queue_schema import check_queue_schema
from connector.store.wakeups import QUEUE, Stalled
from connector.wiring import store_url

log = logging.getLogger(__name__)
FETCH_POLL_SECONDS = 1.0  # a wake-up held back by its instance's lock starts within this of the lock freeing
CONNECT_TIMEOUT = 10  # seconds, on every connection the queue opens
GRACEFUL_STOP_SECONDS = 60.0  # SIGTERM: running units get this long to finish, then the rest is swept
CLOCK_PRIORITY = 20  # above every unit's (connector.store.wakeups.PRIORITY)
ENDED_KEPT = timedelta(days=30)  # a swept wake-up stays readable (`failed`) this long


class _SweptJobFinish(logging.Filter):
    """A worker that froze past the stall timeout finds, when it wakes, that its job was ended by a sweep:
    procrastinate's own bookkeeping then fails (*Job was not found or not in "doing"*) and asyncio logs the
    unretrieved exception with two tracebacks (docs/procrastinate.md#heartbeats-stalled-jobs-shutdown). It is
    expected and harmless: said in one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        cause = getattr(error, "__cause__", None)
        if record.name == "asyncio" and 'not in "doing"' in str(cause):
            record.msg, record.args, record.exc_info, record.exc_text = (
                "a job of this worker was ended by another's sweep while it was frozen; it ran on, and its "
                "lease kept it from writing", (), None, None,
            )  # fmt: skip
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def conninfo(url: str) -> str:
    """Our SQLAlchemy URL (`postgresql+psycopg://…`) as the libpq URI procrastinate's connector takes; its
    query (a `search_path` in `options`) is kept."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class QueueDispatcher:
    """The dispatcher across processes: a unit is a procrastinate job, deferred with procrastinate's SQL."""

    def __init__(self, wakeups: Wakeups):
        self._wakeups = wakeups

    def dispatch(self, unit: Unit) -> bool:
        return bool(self._wakeups.wake(unit.kind, [unit.instance]))


@dataclass
class TickReport:
    syncs: list[str] = field(default_factory=list)
    write_backs: list[str] = field(default_factory=list)
    swept: list[Stalled] = field(default_factory=list)


def sweep(wakeups: Wakeups, dispatcher: QueueDispatcher, stall_seconds: float) -> list[Stalled]:
    """End the wake-ups whose worker has been silent for `stall_seconds` and wake their units again.

    Ended, not retried: procrastinate's retry of a job whose twin waits fails on the queueing lock and leaves
    the stale job holding its lock (docs/procrastinate.md#traps-and-what-we-do-instead). The fresh wake-up
    is absorbed when a twin waits: that twin does the work."""
    swept = []
    for job in wakeups.stalled(stall_seconds):
        if not wakeups.end(job):
            continue
        swept.append(job)
        unit = f"{job.kind} {job.instance}" if job.instance else f"the {job.kind}"
        log.warning(
            "%s: its worker has been silent for over %g s: its wake-up is ended and made again; the "
            "instance's lease keeps that worker from writing if it comes back", unit, stall_seconds,
        )  # fmt: skip
        if job.kind in ("sync", "apply") and job.instance:
            dispatcher.dispatch(Unit(job.kind, job.instance))  # type: ignore[arg-type]
    return swept


def cluster_tick(
    store: Store, instances: Collection[str], times: SharedSyncTimes, dispatcher: QueueDispatcher,
    stall_seconds: float, now: datetime,
) -> TickReport:  # fmt: skip
    """One tick of the shared clock: due syncs, ready write-backs (a wake-up lost with a receiver is made
    again here), silent workers' wake-ups. `instances`: those this process's config names."""
    report = TickReport(syncs=[unit.instance for unit in tick(times, dispatcher, now)])
    for name, backlog in store.inbox.backlogs().items():
        if name in instances and ready(backlog, now) and dispatcher.dispatch(Unit("apply", name)):
            report.write_backs.append(name)
    report.swept = sweep(store.wakeups, dispatcher, stall_seconds)
    return report


def purge_ended_wakeups(wakeups: Wakeups, kept: timedelta = ENDED_KEPT) -> int:
    """The retention pass's share of the queue: wake-ups ended longer than `kept` ago are deleted."""
    purged = wakeups.purge_ended(kept)
    if purged:
        log.info("deleted %d ended wake-up(s) older than %s", purged, kept)
    return purged


def perform_here(runtime: Runtime, unit: Unit) -> None:
    """A unit woken for an instance this process's config does not name (replicas with drifting configs)
    is said and dropped: another replica's config names it, and its wake-up comes again."""
    if unit.instance not in runtime.instances:
        log.error("%s: no instance of that name in this worker's config; give every replica one config", unit)
        return
    # The process that left a run `running` or a job `pending` (killed mid-sync) does not come back to
    # settle them, as one process does at its start: the next unit of the instance does, under its lease.
    runtime.settle_interrupted([unit.instance], purpose="settle")
    perform(runtime, unit)


def build_app(runtime: Runtime) -> procrastinate.App:
    """The procrastinate app of this process: its connection, the units' tasks and the periodic ones."""
    settings = runtime.config.settings.cluster
    connector = procrastinate.PsycopgConnector(
        conninfo=conninfo(store_url(runtime.config)),
        kwargs={"connect_timeout": CONNECT_TIMEOUT},
        min_size=1,
        max_size=4,  # the worker's fetches, heartbeats and listener; the units use our store's pool
    )
    app = procrastinate.App(connector=connector)
    times = SharedSyncTimes(runtime.store.schedules)
    dispatcher = QueueDispatcher(runtime.store.wakeups)
    stall_seconds = settings.stall_delta.total_seconds()

    @app.task(name="sync", queue=QUEUE)
    def sync(instance: str) -> None:
        perform_here(runtime, Unit("sync", instance))

    @app.task(name="apply", queue=QUEUE)
    def apply(instance: str) -> None:
        perform_here(runtime, Unit("apply", instance))

    # Croniter's optional sixth field is seconds (docs/procrastinate.md#periodic-tasks-one-defer-per-tick).
    @app.periodic(cron=f"* * * * * */{settings.tick_seconds}", periodic_id="clock")
    # Before any unit (connector.store.wakeups.PRIORITY): the clock and the sweeper wait for no busy worker.
    @app.task(name="tick", queue=QUEUE, queueing_lock="tick", priority=CLOCK_PRIORITY)
    def clock(timestamp: int) -> None:
        now = datetime.fromtimestamp(timestamp, UTC)
        report = cluster_tick(runtime.store, runtime.instances, times, dispatcher, stall_seconds, now)
        if report.syncs:
            log.info("due: %s", ", ".join(report.syncs))

    @app.periodic(cron="* * * * * 0", periodic_id="overdue")
    @app.task(name="overdue", queue=QUEUE, queueing_lock="overdue")
    def overdue(timestamp: int) -> None:
        runtime.settle_overdue()

    @app.periodic(cron="0 */6 * * * 0", periodic_id="retention")
    @app.task(name="retention", queue=QUEUE, queueing_lock="retention")
    def retention(timestamp: int) -> None:
        runtime.purge_payloads()
        purge_ended_wakeups(runtime.store.wakeups)

    return app


def worker_options(runtime: Runtime, concurrency: int | None) -> dict[str, Any]:
    settings = runtime.config.settings.cluster
    stall = settings.stall_delta.total_seconds()
    return {
        "queues": [QUEUE],
        "concurrency": concurrency or settings.concurrency,
        "fetch_job_polling_interval": FETCH_POLL_SECONDS,
        "update_heartbeat_interval": stall / 3,
        "stalled_worker_timeout": stall,
        "shutdown_graceful_timeout": GRACEFUL_STOP_SECONDS,
        "delete_jobs": "successful",  # done wake-ups are noise; failed (swept) ones stay for a person
        "install_signal_handlers": True,
    }


def run_cluster_member(runtime: Runtime, concurrency: int | None = None) -> None:
    """`run` in cluster mode: a worker, the webhook (a receiver like `serve`) and the status page, in one
    process. The worker stops first on SIGTERM (its units finish), then the webhook, whose requests in flight
    are stored before their 2xx."""
    try:
        runtime.serve_webhook()
        runtime.serve_status()
        run_worker(runtime, concurrency)
    finally:
        runtime.close()
    log.info("stopped cleanly")


def run_worker(runtime: Runtime, concurrency: int | None = None) -> None:
    """Work until SIGTERM or SIGINT: the shared clock's ticks and the units they wake. The config's schedules
    are declared first (an idempotent upsert: what the database holds is the one clock)."""
    logging.getLogger("asyncio").addFilter(_SweptJobFinish())
    check_queue_schema(runtime.store.database)  # before anything: a database `db upgrade` has not prepared
    names = {name: i.settings.schedule for name, i in runtime.instances.items()}
    SharedSyncTimes(runtime.store.schedules).declare(names, datetime.now(UTC))
    runtime.settle_interrupted()
    app = build_app(runtime)
    options = worker_options(runtime, concurrency)
    log.info("working on %d instance(s), %d unit(s) at a time: %s", len(names), options["concurrency"],
             ", ".join(names))  # fmt: skip
    try:
        app.run_worker(**options)
    except procrastinate.exceptions.ConnectorException as exc:  # the database went away under the worker
        cause = str(exc.__cause__ or exc).strip().splitlines()[0]
        raise StoreUnavailable(
            f"the job queue's database stopped answering ({cause}); this worker stopped, and the others (or it, "
            "restarted once PostgreSQL answers) take its work up"
        ) from exc
    log.info("worker stopped")
