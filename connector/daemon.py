"""`lonescale-sync run`: a scheduled sync per instance, the webhook server and the apply loop, until SIGTERM.

APScheduler 3 is the clock: every second its tick asks which instances are due (connector/clock.py, the one
evaluation of the schedules) and hands their syncs to the dispatcher (connector/dispatch.py), which never runs
two of one instance at once and keeps at most one more waiting; after a long stop an instance that missed
several runs runs once. The write-back, overdue and retention passes are APScheduler interval jobs.

On SIGTERM or SIGINT the daemon stops in the order that loses nothing: no new sync or write-back starts;
the running ones finish, the webhook still serving, so the results of jobs posted during the shutdown have
somewhere to go; then, while jobs sent by this run still await results, the webhook keeps serving (and what
arrives is applied) for at most `[webhook] drain_seconds`; the webhook stops last (requests in flight are
stored before their 2xx), then the store closes. Nothing is half-written, and whatever is still in the
inbox is applied at the next start.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import SQLAlchemyError

from connector.clock import SharedSyncTimes, SyncTimes
from connector.dispatch import Dispatcher, LocalDispatcher, Unit
from connector.errors import ConnectorError
from connector.runtime import Runtime

log = logging.getLogger(__name__)
APPLY_EVERY_SECONDS = 2.0
TICK_SECONDS = 1.0  # how late a sync may start after its time
SYNC_WAITS_FOR_LEASE = 300.0  # seconds


def _said(what: str, work: Callable[..., object]) -> Callable[..., None]:
    """A scheduled job whose failures the user can act on (the database gone, a CRM refusing us) are one log
    line with the reason, not APScheduler's traceback; the daemon goes on and the next tick tries again. A bug
    keeps its traceback."""

    def run(*args: Any, **kwargs: Any) -> None:
        try:
            work(*args, **kwargs)
        except ConnectorError as exc:
            log.error("%s failed: %s", what, exc)
        except SQLAlchemyError as exc:
            log.error("%s failed: the store is unavailable (%s); trying again at the next tick", what,
                      str(getattr(exc, "orig", None) or exc).strip().splitlines()[0])  # fmt: skip
        except Exception:
            log.exception("%s failed unexpectedly", what)

    return run


def perform(runtime: Runtime, unit: Unit) -> None:
    """One unit of work, whoever dispatched it."""
    if unit.kind == "apply":
        _said(str(unit), runtime.apply_instance)(unit.instance)
        return
    # A write-back pass of the instance (seconds) may hold its lease when the sync is due: wait for it rather
    # than skip a whole interval; a sync started elsewhere is waited out as long.
    _said(str(unit), runtime.sync)(unit.instance, wait_for_lease=SYNC_WAITS_FOR_LEASE)


def tick(times: SyncTimes | SharedSyncTimes, dispatcher: Dispatcher, now: datetime) -> list[Unit]:
    """The clock's tick: the syncs due now, handed to the dispatcher; returns those it took."""
    units = [Unit("sync", name) for name in times.due(now)]
    return [unit for unit in units if dispatcher.dispatch(unit)]


def build_scheduler(
    runtime: Runtime, dispatcher: LocalDispatcher, apply_every: float = APPLY_EVERY_SECONDS
) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(
        timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 600}
    )
    started = datetime.now(UTC)
    times = SyncTimes({name: i.settings.schedule for name, i in runtime.instances.items()}, started)
    scheduler.add_job(
        _said("clock", lambda: tick(times, dispatcher, datetime.now(UTC))),
        IntervalTrigger(seconds=TICK_SECONDS, timezone=UTC),
        id="clock",
        name="clock",
        next_run_time=started,  # a fresh start syncs at once, then on schedule
    )
    scheduler.add_job(
        _said("write-back", runtime.apply_when_ready),
        IntervalTrigger(seconds=apply_every, timezone=UTC),
        id="apply",
        name="apply",
    )
    scheduler.add_job(
        _said("overdue jobs", runtime.settle_overdue),
        IntervalTrigger(minutes=1, timezone=UTC),
        id="overdue",
        name="overdue jobs",
    )
    scheduler.add_job(
        _said("retention", runtime.purge_payloads),
        IntervalTrigger(hours=6, timezone=UTC),
        id="purge",
        name="retention",
    )
    return scheduler


def run_daemon(
    runtime: Runtime, stop: threading.Event | None = None, apply_every: float = APPLY_EVERY_SECONDS
) -> None:
    """Serve until `stop` is set (by SIGTERM/SIGINT when run from the main thread)."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("received %s: finishing in-flight work", signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    runtime.settle_interrupted()
    started = datetime.now(UTC)
    runtime.serve_webhook()
    runtime.serve_status()  # read-only, on its own port; it stops with the webhook
    dispatcher = LocalDispatcher(lambda unit: perform(runtime, unit), workers=len(runtime.instances))
    scheduler = build_scheduler(runtime, dispatcher, apply_every)
    scheduler.start()
    log.info("running %d instance(s): %s", len(runtime.instances), ", ".join(runtime.instances))
    try:
        stop.wait()
    finally:
        shut_down(runtime, scheduler, dispatcher, started)


def shut_down(
    runtime: Runtime, scheduler: BackgroundScheduler, dispatcher: LocalDispatcher, started: datetime
) -> None:
    """The webhook stops last: a sync still running posts jobs whose results must find it listening."""
    log.info("stopping: no new sync starts; running syncs and write-backs finish, the webhook still serving")
    runtime.stopping.set()  # a write-back under way ends after its pass
    scheduler.shutdown(wait=True)  # the clock stops ticking; a write-back pass under way finishes
    dispatcher.close()  # the syncs under way finish
    try:
        runtime.drain(started)
        runtime.stop_webhook()  # no new deliveries; those in flight are stored before their 2xx
        runtime.stop_status()
        waiting, _, _ = runtime.store.inbox.backlog()
        if waiting:
            log.info(
                "webhook stopped; %d delivery(ies) stored, not yet applied: applied at the next start",
                waiting,
            )
    except Exception:  # the store or a CRM failing now must not keep the rest from stopping
        log.exception("stopping: draining failed; whatever was stored waits in the inbox for the next start")
    finally:
        runtime.close()  # stops the webhook too, if it still serves
    log.info("stopped cleanly")
