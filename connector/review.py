"""Going back over what happened: replay stored results, re-drive failures, roll a run back.

Nothing here calls LoneScale: replays and retries re-apply the payloads already in the inbox (after a mapping
fix or a CRM outage), under the same policies, against the CRM as it is now. A rollback restores what one
run changed, except fields a person edited after our write, and is journaled like any other run.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from connector.apply import Progress, apply_results, no_progress
from connector.apply_report import ApplyReport, PlannedField, jsonable
from connector.models import FieldUpdate, RecordRef, WriteOutcome
from connector.store import JobContact, JournalEntry, Store, instance_lease
from connector.values import same_value
from connector.wiring import Instance

log = logging.getLogger(__name__)


def replay(
    instances: Mapping[str, Instance],
    store: Store,
    *,
    job_id: str | None = None,
    since: datetime | None = None,
    dry_run: bool = False,
    progress: Progress = no_progress,
) -> ApplyReport:
    """Re-apply stored results of one job, or received since a moment, whatever their contacts' state."""
    if job_id is None and since is None:
        raise ValueError("say which results to replay: a job, or a moment since which they arrived")
    deliveries = store.inbox.matching(job_id=job_id, since=since)
    return apply_results(instances, store, deliveries=deliveries, accept=lambda c: True, dry_run=dry_run,
                         kind="replay", progress=progress)  # fmt: skip


def retry_failed(
    instances: Mapping[str, Instance],
    store: Store,
    *,
    dry_run: bool = False,
    progress: Progress = no_progress,
) -> ApplyReport:
    """Write again the records the CRM rejected, from their stored results (a lock, a validation rule fixed)."""
    jobs = {
        c.job_id
        for name in instances
        for c in store.jobs.contacts_with_status(name, "rejected", limit=100_000)
    }
    deliveries = [d for job in sorted(jobs) for d in store.inbox.matching(job_id=job)]
    return apply_results(
        instances,
        store,
        deliveries=deliveries,
        accept=lambda c: c.status == "rejected",
        dry_run=dry_run,
        kind="retry",
        progress=progress,
    )


@dataclass(frozen=True)
class Failure:
    instance: str
    kind: str  # rejected | expired job | delivery <status>
    subject: str  # a record id, a job (its contacts still expired), or a delivery
    reason: str


def failures(store: Store, instances: list[str], limit: int | None = None) -> list[Failure]:
    """The quarantine: every record, job or delivery that needs a person, with its reason (at most `limit` of
    each kind per instance). A screen shows the first rows and says how many more there are."""
    found: list[Failure] = []
    for name in instances:
        contacts: list[JobContact] = store.jobs.contacts_with_status(name, "rejected", limit)
        found += [Failure(name, "rejected", c.record_id, c.reason or "") for c in contacts]
        # A job is what a person decides on (`retry-failed --jobs --job J`): one row, newest first.
        for expired, held in store.jobs.holding(name, "expired")[::-1][:limit]:
            found.append(Failure(name, "expired job", f"job {expired.id}: {held} contact(s) kept in cooldown",
                                 expired.reason or ""))  # fmt: skip
    for delivery in store.inbox.unusable(limit):
        job = store.jobs.get(delivery["job_id"])
        found.append(Failure(job.instance if job else "?", f"delivery {delivery['status']}", f"delivery {delivery['id']}",
                             delivery["error"]))  # fmt: skip
    return found


@dataclass
class RollbackReport:
    run_id: int | None = None  # the rollback's own run, journaled like any other
    restored: int = 0
    rejected: int = 0
    planned: list[PlannedField] = field(default_factory=list)


def rollback(
    instances: Mapping[str, Instance],
    store: Store,
    run_id: int,
    *,
    dry_run: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RollbackReport:
    """Restore every field run `run_id` wrote to its previous value, unless it changed since our write."""
    run = store.runs.get(run_id)
    if run is None:
        raise ValueError(f"there is no run {run_id}")
    if run["instance"] not in instances:
        raise ValueError(f"run {run_id} belongs to instance {run['instance']!r}, which is not configured")
    instance = instances[run["instance"]]
    if dry_run:
        return _rollback(instance, store, run_id, dry_run, now)
    # Under the instance's lease: what is current when we decide is still current when we write.
    with store.leases.held(instance_lease(instance.name), "rollback"):
        return _rollback(instance, store, run_id, dry_run, now)


def _rollback(
    instance: Instance, store: Store, run_id: int, dry_run: bool, now: Callable[[], datetime]
) -> RollbackReport:
    entries = [e for e in store.journal.for_run(run_id) if e.outcome == "written"]
    report = RollbackReport()
    by_record: dict[str, list[JournalEntry]] = defaultdict(list)
    for entry in entries:
        by_record[entry.record_id].append(entry)
    fields = sorted({e.field for e in entries})
    current = instance.adapter.read_current(list(by_record), fields) if entries else {}
    updates, olds = [], {}
    for record_id, ours in by_record.items():
        values, now_values = {}, current.get(record_id)
        for entry in ours:
            value = None if now_values is None else jsonable(now_values.get(entry.field))
            if now_values is None:
                verdict, restore = "the record no longer exists", False
            elif same_value(value, entry.new_value):
                verdict, restore = "restored", True
            else:
                verdict, restore = "kept: changed since our write", False
            report.planned.append(PlannedField(instance.name, record_id, entry.field, value, entry.old_value, restore,
                                               verdict, entry.job_id or ""))  # fmt: skip
            if restore:
                values[entry.field] = entry.old_value
        if values:
            updates.append(FieldUpdate(RecordRef(instance.name, instance.mapping.object, record_id), values))
            olds[record_id] = {k: jsonable(now_values.get(k)) for k in values} if now_values else {}
    if dry_run or not updates:
        return report
    report.run_id = store.runs.start(instance.name, "rollback")
    outcomes = instance.adapter.write_back(updates)
    journal = []
    for update, outcome in zip(updates, outcomes, strict=True):
        ok = outcome.outcome is WriteOutcome.WRITTEN
        report.restored += len(update.values) if ok else 0
        report.rejected += 0 if ok else 1
        journal += [JournalEntry(report.run_id, None, instance.name, update.ref.id, name, olds[update.ref.id].get(name),
                                 value, "written" if ok else "rejected", outcome.reason or f"rollback of run {run_id}",
                                 now()) for name, value in update.values.items()]  # fmt: skip
    store.journal.add(journal)
    unique = instance.adapter.unique_field
    restored = {  # the email index follows (connector/apply_unique.py); it would also learn on the next pull
        update.ref.id: update.values[unique]
        for update, outcome in zip(updates, outcomes, strict=True)
        if unique and unique in update.values and outcome.outcome is WriteOutcome.WRITTEN
    }
    if restored:
        store.emails.seen(instance.name, restored)
    status = "succeeded" if not report.rejected else "failed"
    store.runs.finish(
        report.run_id, status, {"restored": report.restored, "rejected": report.rejected, "of_run": run_id}
    )
    return report
