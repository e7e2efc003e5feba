"""The write side of a cycle: read the inbox, and for each instance, under its lease, plan each record's writes
by policy (apply_plan.py), then write and journal them (apply_write.py). Pass after pass (`apply_passes`), the
next pass is read while this one writes (apply_ahead.py).

A dry run reads the same current values and records every decision, and changes nothing anywhere. The pass,
step by step: docs/architecture.md#the-write-side.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial

from connector.apply_ahead import Ahead, Collected, Read
from connector.apply_plan import plan_records
from connector.apply_report import ApplyReport
from connector.apply_unique import find_taken
from connector.apply_write import resolve_pending, write_plan
from connector.errors import Busy, ConnectorError
from connector.fencing import fenced
from connector.inbox import UNMATCHED, Accept, Drain, Pending, waiting
from connector.logs import log_context
from connector.merging import by_record
from connector.models import JobStatus
from connector.store import Delivery, Inbox, Jobs, Lease, Leases, Store, instance_lease
from connector.wiring import Instance

__all__ = ["ApplyReport", "apply_passes", "apply_results"]
log = logging.getLogger(__name__)
# Results planned per pass: one full Salesforce retrieve of current values (2,000 ids:
# docs/salesforce.md#sobject-collections), twenty full HubSpot batch reads; few enough to keep a pass's memory
# small.
PASS_CONTACTS = 2000
INBOX_PAGE = 50  # deliveries read at once
# What a long pass says as it goes (a replay of a month of results): a line for a person, shown by the CLI on a
# terminal (connector/progress.py) and dropped otherwise.
Progress = Callable[[str], None]


def no_progress(line: str) -> None:
    """Nobody is watching: a daemon's pass, a test."""


def _settle_jobs(jobs: Jobs, job_ids: Iterable[str]) -> None:
    for job_id in set(job_ids):
        statuses = jobs.contact_statuses(job_id)
        jobs.update(job_id, JobStatus.PARTLY_APPLIED if "waiting" in statuses else JobStatus.APPLIED)


def _met(drain: Drain, instance: str) -> set[str]:
    """The instance's jobs whose deliveries this pass read and that are not settled yet, though their results
    may all be in: a pass stopped after writing but before settling them, whose deliveries are read again and
    yield nothing new (their contacts are no longer waiting)."""
    unsettled = (JobStatus.SENT, JobStatus.PARTLY_APPLIED, JobStatus.UNCERTAIN)
    return {
        j.id
        for j in drain.jobs.values()
        if j is not None and j.instance == instance and j.status in unsettled
    }


def _unapplied(inbox: Inbox, contacts: int, instance: str | None, after: int = 0) -> Iterator[Delivery]:
    """Unapplied deliveries page by page (from after the delivery id `after`): a delivery holds one contact or
    a whole job, so a pass reads on until it has its contacts rather than stopping at a count of deliveries.
    Small pages: a page of whole-job bodies is megabytes, and a pass needs only its own."""
    page_size = min(contacts, INBOX_PAGE)
    while True:
        page = inbox.new(page_size, after=after, instance=instance)
        yield from page
        if len(page) < page_size:
            return
        after = page[-1].id


class _Gate:
    """The instances this pass may write to: each one's lease is taken when its first delivery is met, and a
    busy instance (a sync or another write-back of it runs elsewhere) is left for a later pass, its
    deliveries unread so they do not fill this pass."""

    def __init__(self, leases: Leases, kind: str, *, enabled: bool):
        self._leases, self.kind, self.enabled = leases, kind, enabled
        self.leases: dict[str, Lease] = {}
        self.busy: dict[str, str] = {}  # instance → why

    def open(self, instance: str) -> bool:
        if not self.enabled or instance in self.leases:
            return True
        if instance in self.busy:
            return False
        try:
            self.leases[instance] = self._leases.acquire(instance_lease(instance), self.kind)
        except Busy as exc:
            self.busy[instance] = str(exc)
            log.debug("%s: %s; its results wait for the next pass", instance, exc)
            return False
        return True

    def close(self) -> None:
        for lease in self.leases.values():
            lease.release()


def _collect(instances: Mapping[str, Instance], inbox: Inbox, drain: Drain, gate: _Gate,
             deliveries: Iterable[Delivery], contacts: int | None, dry_run: bool, progress: Progress,
             ) -> Collected:  # fmt: skip
    """Read deliveries until the pass has about `contacts` results (None: all given), grouped by instance."""
    by_instance: dict[str, list[Pending]] = defaultdict(list)
    delivered: dict[str, list[int]] = defaultdict(list)
    collected = last = 0
    of = f" of {len(deliveries)}" if isinstance(deliveries, Sequence) else ""
    for read, delivery in enumerate(deliveries, start=1):
        last = delivery.id
        progress(f"read {read}{of} stored deliveries: {collected} result(s) so far")
        job = drain.job(delivery.job_id)
        if job is not None and job.instance not in instances:
            if not dry_run:
                inbox.mark([delivery.id], "uncorrelated", f"instance {job.instance} is not configured")
            continue
        if job is not None and not gate.open(job.instance):
            continue
        items = drain.collect(delivery)  # an unknown job, an unusable body is marked there
        if job is None or delivery.id in drain.refused:  # a replay reads bodies kept `invalid`: they stay so
            continue
        collected += len(items)
        by_instance[job.instance].extend(items)
        delivered[job.instance].append(delivery.id)
        # Full: stop before taking the next delivery, which the next pass of a run starts from.
        if contacts is not None and collected >= contacts:
            break
    return Collected(drain, by_instance, delivered, last)


def _write_pass(instance: Instance, store: Store, items: list[Pending], delivery_ids: list[int], drain: Drain,
                lease: Lease | None, kind: str, now: datetime, report: ApplyReport, progress: Progress,
                known: Read | None, writing: Callable[[], None]) -> None:  # fmt: skip
    """One instance's share of a pass, as a run of its own: settle what a crash left, plan, write, mark."""
    run_id = store.runs.start(instance.name, kind)
    # Every CRM call of the pass checks the lease first (connector/fencing.py): the reads of current values too.
    with (
        log_context(instance=instance.name, run_id=run_id),
        fenced(lease.check if lease is not None else None),
    ):
        _write_run(instance, store, items, delivery_ids, drain, lease, now, report, run_id, progress, known,
                   writing)  # fmt: skip


def _write_run(instance: Instance, store: Store, items: list[Pending], delivery_ids: list[int], drain: Drain,
               lease: Lease | None, now: datetime, report: ApplyReport, run_id: int, progress: Progress,
               known: Read | None, writing: Callable[[], None]) -> None:  # fmt: skip
    status, error = "succeeded", None
    try:
        resolve_pending(instance, store.journal)
        if items:
            # Reading this pass ahead failed (an outage, the lease lost): it fails as its own read would have.
            if isinstance(known, BaseException):
                raise known
            progress(f"{instance.name}: reading the CRM's current values for {len(items)} result(s)")
            plan = plan_records(instance, store.journal, by_record(items), report, now, False, known)
            find_taken(instance, store.emails, plan, report, dry_run=False)
            writing()  # the next pass is read meanwhile (a run of passes)
            progress(f"{instance.name}: writing {len(plan.updates)} record(s)")
            write_plan(instance, store.journal, plan, run_id, report, lease, store.emails)
            progress(f"{instance.name}: {report.summary()}")
        # The jobs first, the deliveries last: a stop between the two leaves the deliveries `new`, so the next
        # pass reads them again (their contacts are no longer waiting: nothing is written twice) and the jobs
        # are settled either way. The other order left a job `sent` for ever, its deliveries marked applied.
        _settle_jobs(store.jobs, {i.job.id for i in items} | _met(drain, instance.name))
        store.inbox.mark([d for d in delivery_ids if d not in drain.lost], "applied")
        for delivery_id in (d for d in delivery_ids if d in drain.lost):
            store.inbox.mark([delivery_id], "applied", f"{drain.lost[delivery_id]} {UNMATCHED}")
    except Exception as exc:  # whatever it was, the pass did not finish: recorded as failed, never succeeded
        status, error = "failed", str(exc) or type(exc).__name__
        report.failures.append(f"{instance.name}: {error}")
        if isinstance(exc, ConnectorError):
            log.error(
                "%s: write-back failed; results stay in the inbox for the next pass: %s", instance.name, exc
            )
        else:  # a bug, not an outage: keep its traceback for the report
            log.exception("%s: write-back failed unexpectedly; results stay in the inbox", instance.name)
    finally:
        store.runs.finish(run_id, status, report.counts(), error)


def _apply_pass(instances: Mapping[str, Instance], store: Store, collected: Collected, gate: _Gate, kind: str,
                now: Callable[[], datetime], progress: Progress, known: Mapping[str, Read],
                writing: Callable[[], None]) -> ApplyReport:  # fmt: skip
    """Write a collected pass, instance by instance; `known`: what was read ahead of it."""
    drain = collected.drain
    report = ApplyReport(passes=1 if collected.delivered else 0, results=drain.results,
                         duplicates=drain.duplicates, uncorrelated=drain.uncorrelated)  # fmt: skip
    for name, items in collected.by_instance.items():
        mine = ApplyReport(deliveries=len(collected.delivered[name]))
        _write_pass(instances[name], store, items, collected.delivered[name], drain, gate.leases.get(name), kind,
                    now(), mine, progress, known.get(name), writing)  # fmt: skip
        report.absorb(mine)
    return report


def _no_ahead() -> None:
    """A single pass: nothing to read meanwhile."""


def apply_results(
    instances: Mapping[str, Instance],
    store: Store,
    *,
    contacts: int = PASS_CONTACTS,
    deliveries: Sequence[Delivery] | None = None,
    accept: Accept = waiting,
    dry_run: bool = False,
    kind: str = "apply",
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    progress: Progress = no_progress,
    only: str | None = None,
) -> ApplyReport:
    """Apply what the inbox holds, one pass of about `contacts` results (or the `deliveries` given, for a
    replay). A CRM outage leaves them in the inbox for the next pass. `accept` says which contacts may be
    written: by default those still waiting. Each instance is written under its lease; one that another
    process is syncing or writing to is left for a later pass (listed in `busy`). `progress` hears a line at
    each step of a long pass. `only`: the results of that instance's jobs alone (a unit of work of one
    instance; the others' deliveries stay as they are). Pass after pass: `apply_passes`."""
    drain = Drain(store, accept, record=not dry_run)
    gate = _Gate(store.leases, kind, enabled=not dry_run)
    try:
        source = _unapplied(store.inbox, contacts, only) if deliveries is None else deliveries
        limit = contacts if deliveries is None else None
        collected = _collect(instances, store.inbox, drain, gate, source, limit, dry_run, progress)
        if dry_run:
            report = _dry_run(instances, store, collected, now(), progress)
        else:
            report = _apply_pass(instances, store, collected, gate, kind, now, progress, {}, _no_ahead)
        report.busy = list(gate.busy.values())
    finally:
        gate.close()
    return report


def _dry_run(instances: Mapping[str, Instance], store: Store, collected: Collected, now: datetime,
             progress: Progress) -> ApplyReport:  # fmt: skip
    """Every decision the pass would make, read as it would read, and nothing changed anywhere."""
    drain = collected.drain
    report = ApplyReport(results=drain.results, duplicates=drain.duplicates, uncorrelated=drain.uncorrelated)
    for name, items in collected.by_instance.items():
        mine = ApplyReport(deliveries=len(collected.delivered[name]))
        if items:
            progress(f"{name}: reading the CRM's current values for {len(items)} result(s)")
            plan = plan_records(instances[name], store.journal, by_record(items), mine, now, dry_run=True)
            find_taken(instances[name], store.emails, plan, mine, dry_run=True)
        report.absorb(mine)
    return report


def apply_passes(
    instances: Mapping[str, Instance],
    store: Store,
    *,
    more: Callable[[], bool] = lambda: True,
    max_passes: int | None = None,
    contacts: int = PASS_CONTACTS,
    kind: str = "apply",
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    progress: Progress = no_progress,
    only: str | None = None,
) -> ApplyReport:
    """Pass after pass (as `apply_results` makes one) while the inbox holds results, `more()` agrees after
    each pass, and at most `max_passes`: each next pass collected and its records read on a thread while this
    one writes (connector/apply_ahead.py). The leases are taken once and held to the last pass, so nobody
    else writes to an instance between a read ahead and the write planned on it. A pass that fails ends the
    run; its deliveries, and those read ahead, wait for a later one."""
    total = ApplyReport()
    gate = _Gate(store.leases, kind, enabled=True)

    def collect(after: int) -> Collected:
        source = _unapplied(store.inbox, contacts, only, after)
        return _collect(instances, store.inbox, Drain(store), gate, source, contacts, False, progress)

    ahead: Ahead | None = None
    known: Mapping[str, Read] = {}  # the first pass reads for itself
    try:
        collected = collect(0)
        while collected.delivered:
            last = max_passes is not None and total.passes + 1 >= max_passes
            ahead = None if last else Ahead(partial(collect, collected.last), instances, gate.leases.get,
                                            collected.record_ids())  # fmt: skip
            report = _apply_pass(instances, store, collected, gate, kind, now, progress, known,
                                 ahead.start if ahead is not None else _no_ahead)  # fmt: skip
            total.absorb(report)
            if ahead is None or report.failures or not more():
                break
            following, known = ahead.result()
            ahead = None
            settled = collected.job_ids()
            for name, items in following.by_instance.items():
                following.by_instance[name] = following.drain.recheck(items, settled)
            collected = following
    finally:
        if ahead is not None:
            ahead.stop()  # no read after a failure, the lease lost or the run done; none in flight after
        gate.close()
    total.busy = list(gate.busy.values())
    return total
