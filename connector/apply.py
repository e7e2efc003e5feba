"""The write side of a cycle: plan each record's writes by policy, write, journal.

Current CRM values are read just before writing, so `fill_empty` and `overwrite_if_unchanged` judge the record
as it is now, not as it was at pull time. Every field we write, or try to, is journaled with its old value.
A dry run reads the same current values and records every decision, and changes nothing anywhere. The pass,
step by step: docs/architecture.md#the-write-side.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.errors import Busy, ConnectorError
from connector.inbox import UNMATCHED, Accept, Drain, Pending, waiting
from connector.logs import log_context
from connector.mapping import Decision, WritePolicy, plan_writes
from connector.merging import RecordResults, by_record
from connector.models import FieldUpdate, FollowUp, JobStatus, RecordRef, WriteOutcome
from connector.store import Delivery, JournalEntry, Lease, Store, instance_lease
from connector.values import same_value
from connector.wiring import Instance

log = logging.getLogger(__name__)
OWNER_TASK = "(owner task)"  # how a job-change follow-up shows in dry runs and in the journal
# Results planned per pass: one full Salesforce retrieve of current values (2,000 ids:
# docs/salesforce.md#sobject-collections), twenty full HubSpot batch reads; few enough to keep a pass's memory
# small.
PASS_CONTACTS = 2000
INBOX_PAGE = 50  # deliveries read at once


@dataclass(frozen=True)
class PlannedField:
    """One row of a dry-run diff: what would happen to one field of one record, and why."""

    instance: str
    record_id: str
    field: str
    current: Any
    proposed: Any
    write: bool
    reason: str
    job_id: str


@dataclass
class ApplyReport:
    deliveries: int = 0
    results: int = 0
    duplicates: int = 0
    uncorrelated: int = 0
    not_found: int = 0
    records_written: int = 0
    fields_written: int = 0
    records_rejected: int = 0
    kept_by_policy: Counter[str] = field(default_factory=Counter)
    rejections: list[tuple[str, str]] = field(default_factory=list)  # (record id, the CRM's reason)
    failures: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # instances another process was working on: left for later
    planned: list[PlannedField] = field(default_factory=list)  # dry runs only

    def absorb(self, other: ApplyReport) -> None:
        """Add another report's figures to this one (an instance's to the total, a pass's to a wait)."""
        for name in ("deliveries", "results", "duplicates", "uncorrelated", "not_found", "records_written",
                     "fields_written", "records_rejected"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.kept_by_policy.update(other.kept_by_policy)
        self.rejections += other.rejections
        self.failures += other.failures
        self.busy += other.busy
        self.planned += other.planned

    def counts(self) -> dict[str, Any]:
        return {
            "deliveries": self.deliveries,
            "results": self.results,
            "duplicates": self.duplicates,
            "uncorrelated": self.uncorrelated,
            "not_found": self.not_found,
            "records_written": self.records_written,
            "fields_written": self.fields_written,
            "records_rejected": self.records_rejected,
            "kept_by_policy": dict(self.kept_by_policy),
        }


def jsonable(value: Any) -> Any:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value


@dataclass
class _Plan:
    records: dict[str, RecordResults]  # each record's results in this pass, merged by type
    updates: list[FieldUpdate] = field(default_factory=list)
    before: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    gone: list[RecordResults] = field(default_factory=list)
    unchanged: list[RecordResults] = field(
        default_factory=list
    )  # results that change nothing on their record
    follow_ups: dict[str, FollowUp] = field(default_factory=dict)  # record id → its owner's to-do


def _follow_up(
    instance: Instance, item: Pending, current: Mapping[str, Any], now: datetime
) -> FollowUp | None:
    """A task for the owner when LoneScale reports a job change we had not flagged yet (a replay makes none)."""
    settings, flag = instance.mapping.job_change, instance.mapping.status.job_change
    if not (settings.follow_up and item.result.job_change_detected):
        return None
    if flag and same_value(current.get(flag), True):
        return None
    sent, values = item.contact.sent, item.result.values
    owner = current.get(settings.owner_field) if settings.owner_field else None
    return FollowUp(
        RecordRef(instance.name, item.contact.object, item.contact.record_id),
        settings.render(settings.subject, sent, values),
        settings.render(settings.body, sent, values),
        str(owner) if owner else None,
        (now + timedelta(days=settings.due_in_days)).date(),
    )


def _ours(instance: Instance, store: Store, record_ids: list[str]) -> dict[str, dict[str, Any]]:
    """What we last wrote to the fields `overwrite_if_unchanged` may replace (nothing to read otherwise)."""
    fields = [r.field for r in instance.mapping.write_back if r.policy is WritePolicy.OVERWRITE_IF_UNCHANGED]
    return store.last_written(instance.name, record_ids, fields) if fields and record_ids else {}


def _plan(instance: Instance, store: Store, records: dict[str, RecordResults], report: ApplyReport,
          now: datetime, dry_run: bool) -> _Plan:  # fmt: skip
    plan = _Plan(records)
    owner = instance.mapping.job_change.owner_field if instance.mapping.job_change.follow_up else None
    fields = [*instance.mapping.write_fields(), *([owner] if owner else [])]
    current = instance.adapter.read_current(list(records), fields)
    ours = _ours(instance, store, [rid for rid in records if rid in current])
    for record_id, record in records.items():
        item = record.merged
        if record_id not in current:
            plan.gone.append(record)
            continue
        if not item.result.found:
            report.not_found += 1
        decisions = plan_writes(
            instance.mapping, item.result, current[record_id], ours.get(record_id, {}), now
        )
        follow_up = _follow_up(instance, item, current[record_id], now)
        if follow_up:
            plan.follow_ups[record_id] = follow_up
            decisions.append(Decision(OWNER_TASK, None, follow_up.subject, True, "job change detected"))
        report.kept_by_policy.update(
            d.reason for d in decisions if not d.write and d.reason != "status unchanged"
        )
        if dry_run:
            report.planned += [
                PlannedField(instance.name, record_id, d.field, jsonable(d.current), jsonable(d.proposed), d.write,
                             d.reason, item.job.id)
                for d in decisions
            ]  # fmt: skip
        values = {d.field: d.proposed for d in decisions if d.write and d.field != OWNER_TASK}
        if not values:  # nothing to say: no API call
            plan.unchanged.append(record)
            continue
        plan.before[record_id] = current[record_id]
        plan.updates.append(FieldUpdate(RecordRef(instance.name, item.contact.object, record_id), values))
    return plan


Marks = dict[tuple[str, str, str | None], list[str]]  # (job, contact status, reason) → record ids


def _mark(marks: Marks, record: RecordResults, status: str, reason: str | None) -> None:
    """Every job whose result the record's writes used gets the outcome; the others were superseded."""
    for item in record.contributors:
        marks[(item.job.id, status, reason)].append(record.record_id)
    for item in record.superseded:
        marks[(item.job.id, "superseded", "a later result of the same type replaced it")].append(
            record.record_id
        )


def _execute(instance: Instance, store: Store, plan: _Plan, run_id: int, report: ApplyReport,
             lease: Lease | None) -> None:  # fmt: skip
    """Journal ahead, write, then settle journal, cooldowns and contacts in one transaction: a crash in
    between leaves `pending` journal rows, which the next pass confirms against the CRM."""
    result_of = {rule.field: rule.result for rule in instance.mapping.write_back}
    ahead = [
        JournalEntry(run_id, plan.records[u.ref.id].job_for(result_of.get(name, "")), instance.name, u.ref.id,
                     name, jsonable(plan.before[u.ref.id].get(name)), jsonable(value), "pending")
        for u in plan.updates
        for name, value in u.values.items()
    ]  # fmt: skip
    ids = iter(store.journal(ahead))
    if lease is not None and plan.updates:
        lease.renew()  # fencing: a holder that lost its lease writes nothing
    results = instance.adapter.write_back(plan.updates) if plan.updates else []
    outcomes: dict[int, tuple[str, str | None]] = {}
    marks: Marks = defaultdict(list)
    written: set[str] = set()
    for update, outcome in zip(plan.updates, results, strict=True):
        record, ok = plan.records[update.ref.id], outcome.outcome is WriteOutcome.WRITTEN
        refused = outcome.refused_fields if ok else {}
        for name in update.values:
            if name in refused:
                outcomes[next(ids)] = ("rejected", refused[name])
            else:
                outcomes[next(ids)] = ("written", None) if ok else ("rejected", outcome.reason)
        if ok:
            written.add(update.ref.id)
            report.records_written += 1
            report.fields_written += len(update.values) - len(refused)
            if refused:  # the rest is written; the record is listed with what was refused, and why
                reason = "; ".join(f"{name} not written: {why}" for name, why in refused.items())
                report.rejections.append((update.ref.id, reason))
                _mark(marks, record, "rejected", reason)
            else:
                _mark(marks, record, "applied", None)
        else:
            report.records_rejected += 1
            report.rejections.append((update.ref.id, outcome.reason or "rejected"))
            _mark(marks, record, "rejected", outcome.reason)
    for record in plan.unchanged:
        _mark(marks, record, "applied", "nothing to change")
    for record in plan.gone:
        report.records_rejected += 1
        report.rejections.append((record.record_id, "the record no longer exists (deleted or merged)"))
        _mark(marks, record, "rejected", "record no longer exists")
    outcomes.update(_create_follow_ups(instance, store, plan, written, run_id))
    found = {rid: record.found for rid, record in plan.records.items()}
    store.settle_write(instance.name, outcomes, found, marks)


def _create_follow_ups(instance: Instance, store: Store, plan: _Plan, written: set[str],
                       run_id: int) -> dict[int, tuple[str, str | None]]:  # fmt: skip
    """Owner tasks for the records whose job-change flag was just written, journaled ahead like fields."""
    todo = [f for rid, f in plan.follow_ups.items() if rid in written]
    if not todo:
        return {}
    ids = store.journal([JournalEntry(run_id, plan.records[f.ref.id].merged.job.id, instance.name, f.ref.id, OWNER_TASK,
                                      None, f.subject, "pending") for f in todo])  # fmt: skip
    try:
        outcomes = instance.adapter.create_follow_ups(todo)
    except ConnectorError as exc:  # e.g. a timed-out create: never re-posted, so whether it exists is unknown
        log.warning(
            "%s: owner tasks not confirmed (%s); check the CRM before creating them by hand",
            instance.name,
            exc,
        )
        return dict.fromkeys(ids, ("unknown", str(exc)))
    return {
        entry: ("written", None) if o.outcome is WriteOutcome.WRITTEN else ("rejected", o.reason)
        for entry, o in zip(ids, outcomes, strict=True)
    }


def resolve_pending(instance: Instance, store: Store) -> int:
    """Journal rows a crash left `pending`: kept as written where the CRM holds the value, else dropped (the
    write never landed; its contact is still waiting and is planned again). Owner tasks cannot be checked."""
    pending = store.pending_journal(instance.name)
    if not pending:
        return 0
    fields = sorted({e.field for e in pending if e.field != OWNER_TASK})
    current = instance.adapter.read_current(sorted({e.record_id for e in pending}), fields) if fields else {}
    outcomes: dict[int, tuple[str, str | None]] = {}
    drop: list[int] = []
    for entry in pending:
        assert entry.id is not None
        value = current.get(entry.record_id, {}).get(entry.field)
        if entry.field == OWNER_TASK:
            outcomes[entry.id] = ("unknown", "the daemon stopped while creating it: check the CRM")
        elif entry.record_id in current and same_value(value, entry.new_value):
            outcomes[entry.id] = ("written", "confirmed after a restart")
        else:
            drop.append(entry.id)
    store.settle_write(instance.name, outcomes, {}, {}, drop)
    log.info("%s: %d write(s) left pending by a stop: %d confirmed, %d never landed",
             instance.name, len(pending), len(outcomes), len(drop))  # fmt: skip
    return len(pending)


def _settle_jobs(store: Store, job_ids: Iterable[str]) -> None:
    for job_id in set(job_ids):
        statuses = {c.status for c in store.job_contacts(job_id)}
        store.update_job(job_id, JobStatus.PARTLY_APPLIED if "waiting" in statuses else JobStatus.APPLIED)


def _inbox(store: Store, contacts: int) -> Iterator[Delivery]:
    """Unapplied deliveries page by page: a delivery holds one contact or a whole job, so a pass reads on
    until it has its contacts rather than stopping at a count of deliveries. Small pages: a page of whole-job
    bodies is megabytes, and a pass needs only its own."""
    after, page_size = 0, min(contacts, INBOX_PAGE)
    while True:
        page = store.new_deliveries(page_size, after=after)
        yield from page
        if len(page) < page_size:
            return
        after = page[-1].id


class _Gate:
    """The instances this pass may write to: each one's lease is taken when its first delivery is met, and a
    busy instance (a sync or another write-back of it runs elsewhere) is left for a later pass, its
    deliveries unread so they do not fill this pass."""

    def __init__(self, store: Store, kind: str, *, enabled: bool):
        self.store, self.kind, self.enabled = store, kind, enabled
        self.leases: dict[str, Lease] = {}
        self.busy: dict[str, str] = {}  # instance → why

    def open(self, instance: str) -> bool:
        if not self.enabled or instance in self.leases:
            return True
        if instance in self.busy:
            return False
        try:
            self.leases[instance] = self.store.leases.acquire(instance_lease(instance), self.kind)
        except Busy as exc:
            self.busy[instance] = str(exc)
            log.debug("%s: %s; its results wait for the next pass", instance, exc)
            return False
        return True

    def close(self) -> None:
        for lease in self.leases.values():
            lease.release()


def _collect(instances: Mapping[str, Instance], store: Store, drain: Drain, gate: _Gate,
             deliveries: Iterable[Delivery], contacts: int | None, dry_run: bool,
             ) -> tuple[dict[str, list[Pending]], dict[str, list[int]]]:  # fmt: skip
    """Read deliveries until the pass has about `contacts` results (None: all given), grouped by instance."""
    by_instance: dict[str, list[Pending]] = defaultdict(list)
    delivered: dict[str, list[int]] = defaultdict(list)
    collected = 0
    for delivery in deliveries:
        if contacts is not None and collected >= contacts:
            break
        job = drain.job(delivery.job_id)
        if job is not None and job.instance not in instances:
            if not dry_run:
                store.mark_delivery(delivery.id, "uncorrelated", f"instance {job.instance} is not configured")
            continue
        if job is not None and not gate.open(job.instance):
            continue
        items = drain.collect(delivery)  # an unknown job, an unusable body is marked there
        if job is None or delivery.id in drain.refused:  # a replay reads bodies kept `invalid`: they stay so
            continue
        collected += len(items)
        by_instance[job.instance].extend(items)
        delivered[job.instance].append(delivery.id)
    return by_instance, delivered


def _write_pass(instance: Instance, store: Store, items: list[Pending], delivery_ids: list[int], drain: Drain,
                lease: Lease | None, kind: str, now: datetime, report: ApplyReport) -> None:  # fmt: skip
    """One instance's share of a pass, as a run of its own: settle what a crash left, plan, write, mark."""
    run_id = store.start_run(instance.name, kind)
    with log_context(instance=instance.name, run_id=run_id):
        _write_run(instance, store, items, delivery_ids, drain, lease, now, report, run_id)


def _write_run(instance: Instance, store: Store, items: list[Pending], delivery_ids: list[int], drain: Drain,
               lease: Lease | None, now: datetime, report: ApplyReport, run_id: int) -> None:  # fmt: skip
    status, error = "succeeded", None
    try:
        resolve_pending(instance, store)
        if items:
            plan = _plan(instance, store, by_record(items), report, now, False)
            _execute(instance, store, plan, run_id, report, lease)
        store.mark_deliveries([d for d in delivery_ids if d not in drain.lost], "applied")
        for delivery_id in (d for d in delivery_ids if d in drain.lost):
            store.mark_delivery(delivery_id, "applied", f"{drain.lost[delivery_id]} {UNMATCHED}")
        _settle_jobs(store, [i.job.id for i in items])
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
        store.finish_run(run_id, status, report.counts(), error)


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
) -> ApplyReport:
    """Apply what the inbox holds, about `contacts` results per pass (or the `deliveries` given, for a
    replay). A CRM outage leaves them in the inbox for the next pass. `accept` says which contacts may be
    written: by default those still waiting. Each instance is written under its lease; one that another
    process is syncing or writing to is left for a later pass (listed in `busy`)."""
    report = ApplyReport()
    drain = Drain(store, accept, record=not dry_run)
    gate = _Gate(store, kind, enabled=not dry_run)
    try:
        source = _inbox(store, contacts) if deliveries is None else deliveries
        limit = contacts if deliveries is None else None
        by_instance, delivered = _collect(instances, store, drain, gate, source, limit, dry_run)
        report.results, report.duplicates, report.uncorrelated = (
            drain.results,
            drain.duplicates,
            drain.uncorrelated,
        )
        report.busy = list(gate.busy.values())
        for name, items in by_instance.items():
            mine = ApplyReport(deliveries=len(delivered[name]))
            if dry_run:
                if items:
                    _plan(instances[name], store, by_record(items), mine, now(), dry_run=True)
            else:
                _write_pass(instances[name], store, items, delivered[name], drain, gate.leases.get(name), kind,
                            now(), mine)  # fmt: skip
            report.absorb(mine)
    finally:
        gate.close()
    return report
