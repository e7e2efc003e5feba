"""The write side of a cycle (design.md §4 steps 6-7): plan each record's writes by policy, write, journal.

Current CRM values are read just before writing, so `fill_empty` and `overwrite_if_unchanged` judge the record
as it is now, not as it was at pull time. Every field we write, or try to, is journaled with its old value.
A dry run reads the same current values and records every decision, and changes nothing anywhere.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.errors import ConnectorError
from connector.inbox import Accept, Drain, Pending, waiting
from connector.mapping import Decision, plan_writes, same_value
from connector.models import EnrichmentResult, FieldUpdate, FollowUp, JobStatus, RecordRef, WriteOutcome
from connector.store import Delivery, Job, JournalEntry, Store
from connector.wiring import Instance

log = logging.getLogger(__name__)
OWNER_TASK = "(owner task)"  # how a job-change follow-up shows in dry runs and in the journal
# Results planned per pass: one full Salesforce retrieve of current values (2,000 ids, salesforce-api.md),
# twenty full HubSpot batch reads; few enough to keep a pass's memory small.
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
    planned: list[PlannedField] = field(default_factory=list)  # dry runs only

    def absorb(self, other: ApplyReport) -> None:
        """Add another report's figures to this one (an instance's to the total, a pass's to a wait)."""
        for name in ("deliveries", "results", "duplicates", "uncorrelated", "not_found", "records_written",
                     "fields_written", "records_rejected"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.kept_by_policy.update(other.kept_by_policy)
        self.rejections += other.rejections
        self.failures += other.failures
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


def found_types(job: Job, result: EnrichmentResult) -> dict[str, bool]:
    """Per type asked, whether LoneScale found a value: a miss waits the shorter not-found cooldown."""
    values = result.values
    hits = {
        "email": bool(values.get("email"))
        and values.get("email_status") not in ("predicted", "invalid", "unknown"),
        "phone": bool(values.get("phone")),
        "profile": result.found and any(values.get(k) for k in ("job_title", "linkedin_url", "company_name")),
    }
    return {kind: hits.get(kind, result.found) for kind in job.enrichment_types}


def jsonable(value: Any) -> Any:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value


@dataclass
class _Plan:
    latest: dict[str, Pending]  # one record twice (re-sent after a person's change): the later result wins
    updates: list[FieldUpdate] = field(default_factory=list)
    before: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    gone: list[Pending] = field(default_factory=list)
    unchanged: list[Pending] = field(default_factory=list)  # results that change nothing on their record
    follow_ups: dict[str, FollowUp] = field(default_factory=dict)  # record id → its owner's to-do


def _follow_up(
    instance: Instance, item: Pending, current: Mapping[str, Any], now: datetime
) -> FollowUp | None:
    """A task for the owner when LoneScale reports a job change we had not flagged yet (a replay makes none)."""
    settings, flag = instance.mapping.job_change, instance.mapping.status.job_change
    if not (settings.follow_up and item.result.job_change_detected):
        return None
    if flag and same_value(current.get(flag) or "", True):
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


def _plan(
    instance: Instance, items: Sequence[Pending], report: ApplyReport, now: datetime, dry_run: bool
) -> _Plan:
    plan = _Plan({item.contact.record_id: item for item in items})
    owner = instance.mapping.job_change.owner_field if instance.mapping.job_change.follow_up else None
    fields = [*instance.mapping.write_fields(), *([owner] if owner else [])]
    current = instance.adapter.read_current(list(plan.latest), fields)
    for record_id, item in plan.latest.items():
        if record_id not in current:
            plan.gone.append(item)
            continue
        if not item.result.found:
            report.not_found += 1
        decisions = plan_writes(instance.mapping, item.result, current[record_id], item.contact.pulled, now)
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
            plan.unchanged.append(item)
            continue
        plan.before[record_id] = current[record_id]
        plan.updates.append(FieldUpdate(RecordRef(instance.name, item.contact.object, record_id), values))
    return plan


def _execute(instance: Instance, store: Store, plan: _Plan, items: Sequence[Pending], run_id: int,
             report: ApplyReport) -> None:  # fmt: skip
    """Journal ahead, write, then settle journal, cooldowns and contacts in one transaction: a crash in
    between leaves `pending` journal rows, which the next pass confirms against the CRM."""
    ahead = [
        JournalEntry(run_id, plan.latest[u.ref.id].job.id, instance.name, u.ref.id, name,
                     jsonable(plan.before[u.ref.id].get(name)), jsonable(value), "pending")
        for u in plan.updates
        for name, value in u.values.items()
    ]  # fmt: skip
    ids = iter(store.journal(ahead))
    results = instance.adapter.write_back(plan.updates) if plan.updates else []
    outcomes: dict[int, tuple[str, str | None]] = {}
    marks: dict[tuple[str, str, str | None], list[str]] = defaultdict(list)  # (job, status, reason) → records
    written: set[str] = set()
    for update, outcome in zip(plan.updates, results, strict=True):
        job_id, ok = plan.latest[update.ref.id].job.id, outcome.outcome is WriteOutcome.WRITTEN
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
                marks[(job_id, "rejected", reason)].append(update.ref.id)
            else:
                marks[(job_id, "applied", None)].append(update.ref.id)
        else:
            report.records_rejected += 1
            report.rejections.append((update.ref.id, outcome.reason or "rejected"))
            marks[(job_id, "rejected", outcome.reason)].append(update.ref.id)
    for item in plan.unchanged:
        marks[(item.job.id, "applied", "nothing to change")].append(item.contact.record_id)
    for item in plan.gone:
        report.records_rejected += 1
        report.rejections.append((item.contact.record_id, "the record no longer exists (deleted or merged)"))
        marks[(item.job.id, "rejected", "record no longer exists")].append(item.contact.record_id)
    for item in items:
        if plan.latest[item.contact.record_id] is not item:
            marks[(item.job.id, "superseded", "a later result won")].append(item.contact.record_id)
    outcomes.update(_create_follow_ups(instance, store, plan, written, run_id))
    found = {rid: found_types(i.job, i.result) for rid, i in plan.latest.items()}
    store.settle_write(instance.name, outcomes, found, marks)


def _create_follow_ups(instance: Instance, store: Store, plan: _Plan, written: set[str],
                       run_id: int) -> dict[int, tuple[str, str | None]]:  # fmt: skip
    """Owner tasks for the records whose job-change flag was just written, journaled ahead like fields."""
    todo = [f for rid, f in plan.follow_ups.items() if rid in written]
    if not todo:
        return {}
    ids = store.journal([JournalEntry(run_id, plan.latest[f.ref.id].job.id, instance.name, f.ref.id, OWNER_TASK,
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


def _blank(value: Any) -> bool:
    return value is None or value == ""


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
        elif entry.record_id in current and (
            same_value(value, entry.new_value) or (_blank(value) and _blank(entry.new_value))
        ):
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
        store.update_job(job_id, JobStatus.RECEIVED if "waiting" in statuses else JobStatus.APPLIED)


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
    written: by default those still waiting."""
    report = ApplyReport()
    drain = Drain(store, accept, record=not dry_run)
    by_instance: dict[str, list[Pending]] = defaultdict(list)
    delivered: dict[str, list[int]] = defaultdict(list)
    collected = 0
    for delivery in _inbox(store, contacts) if deliveries is None else deliveries:
        if collected >= contacts and deliveries is None:
            break
        items = drain.collect(delivery)
        collected += len(items)
        job = drain.jobs.get(delivery.job_id)
        if job is None:
            continue
        if job.instance not in instances:
            if not dry_run:
                store.mark_delivery(delivery.id, "uncorrelated", f"instance {job.instance} is not configured")
            continue
        by_instance[job.instance].extend(items)
        delivered[job.instance].append(delivery.id)
    report.results, report.duplicates, report.uncorrelated = (
        drain.results,
        drain.duplicates,
        drain.uncorrelated,
    )
    for name, items in by_instance.items():
        mine = ApplyReport(deliveries=len(delivered[name]))
        if dry_run:
            if items:
                _plan(instances[name], items, mine, now(), dry_run=True)
            report.absorb(mine)
            continue
        run_id = store.start_run(name, kind)
        status, error = "succeeded", None
        try:
            resolve_pending(instances[name], store)
            if items:
                _execute(
                    instances[name],
                    store,
                    _plan(instances[name], items, mine, now(), False),
                    items,
                    run_id,
                    mine,
                )
            store.mark_deliveries([d for d in delivered[name] if d not in drain.lost], "applied")
            for delivery_id in (d for d in delivered[name] if d in drain.lost):
                store.mark_delivery(
                    delivery_id, "applied", f"{drain.lost[delivery_id]} result(s) matched no contact"
                )
            _settle_jobs(store, [i.job.id for i in items])
        except ConnectorError as exc:
            status, error = "failed", str(exc)
            mine.failures.append(f"{name}: {exc}")
            log.error("%s: write-back failed; results stay in the inbox for the next pass: %s", name, exc)
        finally:
            store.finish_run(run_id, status, mine.counts(), error)
            report.absorb(mine)
    return report
