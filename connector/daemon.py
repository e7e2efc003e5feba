"""`lonescale-sync run`: a scheduled sync per instance, the webhook server and the apply loop, until SIGTERM.

APScheduler 3 runs each instance's sync on its own trigger with `max_instances=1`, so a slow run is never
overlapped by the next one of the same instance; `coalesce` folds missed runs into one. On SIGTERM or SIGINT
the webhook stops taking new deliveries (those in flight are stored), running syncs and write-backs finish,
and the store is closed: nothing is half-written, and whatever is still in the inbox waits for the next start.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from connector.runtime import Runtime
from connector.schedules import trigger_for

log = logging.getLogger(__name__)
APPLY_EVERY_SECONDS = 2.0


def build_scheduler(runtime: Runtime, apply_every: float = APPLY_EVERY_SECONDS) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(
        timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 600}
    )
    for name, instance in runtime.instances.items():
        scheduler.add_job(
            runtime.sync,
            trigger_for(instance.settings.schedule),
            args=[name],
            id=f"sync:{name}",
            name=f"sync {name}",
            next_run_time=datetime.now(UTC),  # a fresh start syncs at once, then on schedule
        )
    scheduler.add_job(
        runtime.apply_when_ready, IntervalTrigger(seconds=apply_every, timezone=UTC), id="apply", name="apply"
    )
    scheduler.add_job(
        runtime.settle_overdue, IntervalTrigger(minutes=1, timezone=UTC), id="overdue", name="overdue jobs"
    )
    scheduler.add_job(
        runtime.purge_payloads, IntervalTrigger(hours=6, timezone=UTC), id="purge", name="retention"
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
    runtime.serve_webhook()
    scheduler = build_scheduler(runtime, apply_every)
    scheduler.start()
    log.info("running %d instance(s): %s", len(runtime.instances), ", ".join(runtime.instances))
    try:
        stop.wait()
    finally:
        runtime.stop_webhook()  # no new deliveries; those in flight are stored before their 2xx
        scheduler.shutdown(wait=True)  # running syncs and write-backs finish
        runtime.close()
        log.info("stopped cleanly")
