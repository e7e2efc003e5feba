"""One deployment at run time: the store, the LoneScale client, each instance, and the webhook server."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from starlette.types import ASGIApp

from connector.apply import PASS_CONTACTS, ApplyReport, apply_passes
from connector.config import Config
from connector.durations import parse_duration
from connector.errors import Busy, ServerFailed
from connector.metrics import Metrics
from connector.models import JobStatus
from connector.overdue import OverdueReport, settle_overdue
from connector.serving import ThreadedServer
from connector.status_app import create_status_app
from connector.store import Inbox, instance_lease
from connector.store.wakeups import wake_write_backs
from connector.sync import SyncReport, pull_and_trigger
from connector.webhook import create_app
from connector.webhook_jobs import SETTLED
from connector.wiring import Instance, build_instance, build_lonescale, build_store

log = logging.getLogger(__name__)
AWAITING = [
    JobStatus.PENDING,
    JobStatus.SENT,
    JobStatus.UNCERTAIN,
    JobStatus.PARTLY_APPLIED,
]  # results may come
FULL_BACKLOG = 200  # deliveries: at least a full Salesforce write batch
QUIET = timedelta(seconds=3)  # no new arrival for this long: the job's results are in
LONGEST_WAIT = timedelta(seconds=30)  # a steady trickle still gets written


def ready(backlog: tuple[int, datetime | None, datetime | None], now: datetime) -> bool:
    """Write back in full batches, not a few records per tick (each write is an API call): when the backlog
    (how many deliveries wait, the oldest and newest arrival) fills a batch, when arrivals have paused, or
    when the oldest result has waited long enough."""
    count, oldest, newest = backlog
    if not count or oldest is None or newest is None:
        return False
    return count >= FULL_BACKLOG or now - newest >= QUIET or now - oldest >= LONGEST_WAIT


# Write-back passes of one run of `Runtime.apply` (about 2,000 results each): a backlog of 50,000 results
# in one go, each pass's reads overlapping the one before's writes, while an instance's sync waits seconds for
# its lease (it waits up to daemon.SYNC_WAITS_FOR_LEASE).
APPLY_RUN_PASSES = 25


def backlog_ready(inbox: Inbox, now: datetime) -> bool:
    return ready(inbox.backlog(), now)


def _started(app: ASGIApp, host: str, port: int, section: str) -> ThreadedServer:
    """`app` served on host:port, listening; a port taken is said with its fix (`[section] listen`)."""
    server = ThreadedServer(app, host=host, port=port, name=section)
    try:
        server.start()
    except ServerFailed as exc:
        raise ServerFailed(f"{exc}: free it, or set [{section}] listen to another host:port") from exc
    return server


class Runtime:
    def __init__(self, config: Config):
        self.config = config
        self.store = build_store(config)
        # Before the clients, which report each answer to it; its routes are served by the status app.
        self.metrics = Metrics(self.store, config.settings.instances)
        self.lonescale = build_lonescale(config, self.metrics.lonescale_answered)
        self.instances: dict[str, Instance] = {
            s.name: build_instance(config, s, self.metrics.answered(s.crm, s.name))
            for s in config.settings.instances
        }
        self._server: ThreadedServer | None = None
        self._status_server: ThreadedServer | None = None
        self.stopping = threading.Event()  # set as the daemon stops: a write-back ends after its pass
        self.pass_contacts = PASS_CONTACTS  # results per write-back pass
        self._apply_lock = threading.Lock()  # one drain at a time: the scheduler's and a `sync --wait`'s

    @property
    def webhook_base(self) -> str:
        """What LoneScale calls: the public URL, else (local use) the address we listen on."""
        settings = self.config.settings.webhook
        if settings.public_url:
            return settings.public_url
        return self._server.base_url if self._server else f"http://{settings.host}:{settings.port}"

    def serve_webhook(self) -> str:
        settings = self.config.settings.webhook
        app = create_app(
            self.store,
            max_body_bytes=settings.max_body_bytes,
            token_grace=settings.token_grace_delta,
            delivered=self.metrics.delivered,
            # In a cluster, each delivery's write-back wake-up commits with it; one process polls instead.
            wake=wake_write_backs if self.config.settings.cluster.enabled else None,
        )
        self._server = _started(app, settings.host, settings.port, "webhook")
        url = self._server.base_url
        log.info("webhook listening on %s (LoneScale calls %s)", url, self.webhook_base)
        return url

    def stop_webhook(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def serve_status(self) -> str | None:
        """The status page and /metrics on their own port (`[status] listen`), unless `[status] enabled =
        false`; its URL."""
        settings = self.config.settings.status
        if not settings.enabled:
            return None
        app = create_status_app(self.store, self.config, routes=self.metrics.routes())
        self._status_server = _started(app, settings.host, settings.port, "status")
        url = self._status_server.base_url
        log.info("status page on %s/status", url)
        return url

    def stop_status(self) -> None:
        if self._status_server is not None:
            self._status_server.stop()
            self._status_server = None

    def settle_interrupted(self, names: Iterable[str] | None = None, *, purpose: str = "start") -> None:
        """What a process that stopped abruptly left half done (runs `running`, jobs stored but maybe never
        posted), for each instance (of `names`, default all) nobody is working on now: a `sync NAME` running
        beside us keeps its runs and jobs. At start in one process; before each unit in a cluster, where the
        process that died is not the one that comes back."""
        for name in self.instances if names is None else names:
            try:
                with self.store.leases.held(instance_lease(name), purpose):
                    stopped, unsure = self.store.runs.interrupt_unfinished(name)
            except Busy as exc:
                (log.info if purpose == "start" else log.debug)(
                    "%s: left as it is at %s: %s", name, purpose, exc
                )
                continue
            if stopped or unsure:
                log.warning(
                    "%s: a previous run stopped abruptly: %d run(s) marked interrupted, %d job(s) uncertain",
                    name, stopped, unsure,
                )  # fmt: skip

    def instance(self, name: str) -> Instance:
        try:
            return self.instances[name]
        except KeyError:
            known = ", ".join(sorted(self.instances))
            raise KeyError(f"no instance named {name!r} in the config (known: {known})") from None

    def sync(
        self,
        name: str,
        progress: Callable[[SyncReport], None] | None = None,
        *,
        dry_run: bool = False,
        wait_for_lease: float = 0.0,
    ) -> SyncReport:
        settings = self.config.settings
        report = pull_and_trigger(
            self.instance(name),
            self.store,
            self.lonescale,
            settings.lonescale,
            self.webhook_base,
            progress=progress,
            dry_run=dry_run,
            wait_for_lease=wait_for_lease,
        )
        if dry_run:
            log.info("%s: dry run %s: pulled %d, would send %d, skipped %s",
                     name, report.status, report.pulled, report.sent, dict(report.skipped))  # fmt: skip
        else:
            log.info(
                "%s: sync %s: pulled %d, sent %d in %d job(s), skipped %s",
                name, report.status, report.pulled, report.sent, len(report.jobs), dict(report.skipped),
            )  # fmt: skip
        return report

    def apply_when_ready(self) -> ApplyReport:
        return self.apply() if backlog_ready(self.store.inbox, datetime.now(UTC)) else ApplyReport()

    def apply(self) -> ApplyReport:
        """Write back what waits: pass after pass while a full pass waits (each next one read while this one
        writes), at most APPLY_RUN_PASSES so that a sync waiting for an instance's lease gets it within
        seconds, and one pass only once the daemon is stopping (its shutdown waits for no backlog)."""

        def more() -> bool:
            return not self.stopping.is_set() and backlog_ready(self.store.inbox, datetime.now(UTC))

        with self._apply_lock:
            report = apply_passes(
                self.instances,
                self.store,
                more=more,
                max_passes=APPLY_RUN_PASSES,
                contacts=self.pass_contacts,
            )
        if report.deliveries:
            log.info(
                "applied %d delivery(ies): %d record(s) written (%d fields), %d rejected",
                report.deliveries, report.records_written, report.fields_written, report.records_rejected,
            )  # fmt: skip
        return report

    def apply_instance(self, name: str) -> ApplyReport:
        """Write back one instance's results (a cluster's unit of work), pass after pass while a full pass
        waits, each next pass read while this one writes; under its lease, held from the first pass to the
        last, beside other instances' passes in this process."""
        instances = {name: self.instance(name)}

        def more() -> bool:
            return ready(self.store.inbox.backlogs().get(name, (0, None, None)), datetime.now(UTC))

        total = apply_passes(instances, self.store, only=name, more=more)
        if total.deliveries:
            log.info("%s: applied %d delivery(ies): %d record(s) written (%d fields), %d rejected",
                     name, total.deliveries, total.records_written, total.fields_written,
                     total.records_rejected)  # fmt: skip
        return total

    def settle_overdue(self) -> OverdueReport:
        report = settle_overdue(self.store, self.lonescale)
        if report.polled or report.expired:
            log.info(
                "overdue jobs: %d polled, %d recovered, %d expired",
                report.polled,
                report.recovered,
                len(report.expired),
            )
        return report

    def purge_payloads(self) -> int:
        retention = parse_duration(self.config.settings.store.payload_retention)
        purged = self.store.inbox.purge(datetime.now(UTC) - retention)
        if purged:
            log.info(
                "emptied %d webhook payload(s) older than %s",
                purged,
                self.config.settings.store.payload_retention,
            )
        return purged

    def wait_and_apply(
        self,
        jobs: list[str],
        timeout: float,
        poll: float = 0.5,
        progress: Callable[[ApplyReport, int], None] | None = None,
    ) -> tuple[ApplyReport, bool]:
        """Apply results as they arrive until every job is done or `timeout` passes; (total, finished).
        `progress` hears the total so far and how many jobs still await results, after each pass."""
        total = ApplyReport()
        deadline = time.monotonic() + timeout
        while True:
            total.absorb(self.apply_when_ready())
            states = [job.status for job in (self.store.jobs.get(j) for j in jobs) if job is not None]
            if progress:
                progress(total, sum(state not in SETTLED for state in states))
            if all(state in SETTLED for state in states):
                return total, True
            if time.monotonic() >= deadline:
                return total, False
            time.sleep(poll)

    def drain(self, since: datetime) -> bool:
        """On the way out, the webhook still serving: while jobs sent since `since` (by this run) await their
        results, apply what arrives, for at most `[webhook] drain_seconds`. True if none was left waiting."""
        seconds = self.config.settings.webhook.drain_seconds
        awaiting = [job.id for job in self.store.jobs.find(statuses=AWAITING) if job.created_at >= since]
        if not awaiting:
            return True
        if not seconds:
            log.info(
                "%d job(s) sent by this run await results; drain_seconds = 0: not waiting", len(awaiting)
            )
            return False
        log.info("waiting up to %g s for the results of %d job(s) sent by this run, the webhook serving",
                 seconds, len(awaiting))  # fmt: skip
        _, finished = self.wait_and_apply(awaiting, seconds)
        if finished:
            log.info("the results of every job sent by this run are in")
        else:
            left = [
                j for j in awaiting if (job := self.store.jobs.get(j)) is not None and job.status in AWAITING
            ]
            log.warning(
                "%d job(s) still await results after %g s: what LoneScale sends after the webhook stops "
                "depends on its retries, and the jobs are polled at their deadline", len(left), seconds,
            )  # fmt: skip
        return finished

    def close(self) -> None:
        self.stop_status()
        self.stop_webhook()
        for instance in self.instances.values():
            instance.adapter.close()
        self.lonescale.close()
        self.store.close()
