"""The write side of a cycle (design.md §4 steps 6-7): drain the inbox, correlate, plan by policy, write, journal.

Current CRM values are read just before writing, so `fill_empty` and `overwrite_if_unchanged` judge the record
as it is now, not as it was at pull time. Every field we write, or try to, is journaled with its old value.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connector.errors import ConnectorError
from connector.lonescale import PayloadError, parse_payload
from connector.mapping import plan_writes
from connector.models import EnrichmentResult, FieldUpdate, JobStatus, RecordRef, WriteOutcome
from connector.store import Delivery, Job, JobContact, JournalEntry, Store
from connector.transforms import linkedin_url
from connector.wiring import Instance

log = logging.getLogger(__name__)


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

    def absorb(self, other: ApplyReport) -> None:
        """Add another report's figures to this one (an instance's to the total, a pass's to a wait)."""
        self.deliveries += other.deliveries
        self.results += other.results
        self.duplicates += other.duplicates
        self.uncorrelated += other.uncorrelated
        self.not_found += other.not_found
        self.records_written += other.records_written
        self.fields_written += other.fields_written
        self.records_rejected += other.records_rejected
        self.kept_by_policy.update(other.kept_by_policy)
        self.rejections += other.rejections
        self.failures += other.failures

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


@dataclass(frozen=True)
class Pending:
    job: Job
    contact: JobContact
    result: EnrichmentResult
    delivery_id: int


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


def _fold(value: Any) -> str | None:
    return str(value).strip().casefold() if value not in (None, "") else None


def correlate(result: EnrichmentResult, contacts: Sequence[JobContact]) -> JobContact | None:
    """By `custom.contact_id` when echoed; else by one identity within the job that matches exactly one
    contact (LinkedIn URL, input email, full name). Ambiguity is never resolved by guessing."""
    if result.contact_id is not None:
        return next((c for c in contacts if c.record_id == result.contact_id), None)
    values = result.values
    keys: list[Callable[[Mapping[str, Any]], Any]] = [
        lambda sent: linkedin_url(sent.get("linkedin_url")),
        lambda sent: _fold(sent.get("email")),
        lambda sent: (_fold(sent.get("firstname")), _fold(sent.get("lastname"))),
    ]
    probes = [
        linkedin_url(values.get("linkedin_url")),
        _fold(values.get("email")),
        (_fold(values.get("first_name")), _fold(values.get("last_name"))),
    ]
    for key, probe in zip(keys, probes, strict=True):
        if probe in (None, (None, None)) or (isinstance(probe, tuple) and None in probe):
            continue
        matches = [c for c in contacts if key(c.sent) == probe]
        if len(matches) == 1:
            return matches[0]
    return None


class _Drain:
    def __init__(self, store: Store, report: ApplyReport):
        self.store, self.report = store, report
        self.jobs: dict[str, Job | None] = {}
        self.contacts: dict[str, list[JobContact]] = {}
        self.lost: dict[int, int] = {}  # delivery id → results that matched no contact

    def job(self, job_id: str) -> Job | None:
        if job_id not in self.jobs:
            self.jobs[job_id] = self.store.job(job_id)
            self.contacts[job_id] = self.store.job_contacts(job_id) if self.jobs[job_id] else []
        return self.jobs[job_id]

    def collect(self, delivery: Delivery) -> list[Pending]:
        job = self.job(delivery.job_id)
        if job is None:
            self.store.mark_delivery(delivery.id, "uncorrelated", "no such job")
            return []
        try:
            payload = parse_payload(delivery.body)
        except (PayloadError, ValueError) as exc:
            self.store.mark_delivery(delivery.id, "invalid", str(exc))
            return []
        pending, lost = [], 0
        for result in payload.results:
            self.report.results += 1
            contact = correlate(result, self.contacts[job.id])
            if contact is None:
                lost += 1
            elif contact.status not in (
                "waiting",
                "expired",
            ):  # a late result is still applied: it was paid for
                self.report.duplicates += 1  # delivered before (another shape, a retry): written once only
            else:
                pending.append(Pending(job, contact, result, delivery.id))
        if lost:
            self.lost[delivery.id] = lost
            self.report.uncorrelated += lost
            log.warning(
                "job %s: %d result(s) matched no contact; kept in the inbox for inspection", job.id, lost
            )
        return pending


def _write(instance: Instance, store: Store, items: Sequence[Pending], run_id: int, report: ApplyReport,
           now: datetime) -> None:  # fmt: skip
    mapping = instance.mapping
    latest: dict[str, Pending] = {}
    for item in items:  # one record twice (re-sent after a person's change): the later result wins
        latest[item.contact.record_id] = item
    current = instance.adapter.read_current(list(latest), mapping.write_fields())
    updates: list[FieldUpdate] = []
    plans: dict[str, tuple[Pending, Mapping[str, Any]]] = {}
    gone: list[Pending] = []
    for record_id, item in latest.items():
        if record_id not in current:
            gone.append(item)
            continue
        if not item.result.found:
            report.not_found += 1
        decisions = plan_writes(mapping, item.result, current[record_id], item.contact.pulled, now)
        report.kept_by_policy.update(d.reason for d in decisions if not d.write)
        values = {d.field: d.proposed for d in decisions if d.write}
        plans[record_id] = (item, current[record_id])
        updates.append(FieldUpdate(RecordRef(instance.name, item.contact.object, record_id), values))
    results = instance.adapter.write_back(updates) if updates else []
    journal: list[JournalEntry] = []
    written: dict[str, dict[str, Any]] = {}
    marks: dict[tuple[str, str, str | None], list[str]] = defaultdict(list)  # (job, status, reason) → records
    for update, outcome in zip(updates, results, strict=True):
        item, before = plans[update.ref.id]
        ok = outcome.outcome is WriteOutcome.WRITTEN
        for name, value in update.values.items():
            journal.append(JournalEntry(run_id, item.job.id, instance.name, update.ref.id, name, jsonable(before.get(name)),
                                        jsonable(value), "written" if ok else "rejected", outcome.reason))  # fmt: skip
        if ok:
            written[update.ref.id] = {k: jsonable(v) for k, v in update.values.items()}
            report.records_written += 1
            report.fields_written += len(update.values)
            marks[(item.job.id, "applied", None)].append(update.ref.id)
        else:
            report.records_rejected += 1
            report.rejections.append((update.ref.id, outcome.reason or "rejected"))
            marks[(item.job.id, "rejected", outcome.reason)].append(update.ref.id)
    for item in gone:
        report.records_rejected += 1
        report.rejections.append((item.contact.record_id, "the record no longer exists (deleted or merged)"))
        marks[(item.job.id, "rejected", "record no longer exists")].append(item.contact.record_id)
    for item in items:
        if latest[item.contact.record_id] is not item:
            marks[(item.job.id, "superseded", "a later result for the same record won")].append(
                item.contact.record_id
            )
    store.journal(journal)
    store.remember_written(instance.name, written)
    store.remember_found(
        instance.name, {rid: found_types(item.job, item.result) for rid, item in latest.items()}
    )
    for (
        job_id,
        status,
        reason,
    ), record_ids in marks.items():  # one update per job and outcome, not per record
        store.mark_job_contacts(job_id, record_ids, status, reason)


def _settle_jobs(store: Store, job_ids: Iterable[str]) -> None:
    for job_id in set(job_ids):
        statuses = {c.status for c in store.job_contacts(job_id)}
        store.update_job(job_id, JobStatus.RECEIVED if "waiting" in statuses else JobStatus.APPLIED)


def apply_results(
    instances: Mapping[str, Instance],
    store: Store,
    *,
    limit: int = 1000,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ApplyReport:
    """Apply what the inbox holds. A CRM outage leaves deliveries in the inbox for the next pass."""
    report = ApplyReport()
    deliveries = store.new_deliveries(limit)
    if not deliveries:
        return report
    drain = _Drain(store, report)
    by_instance: dict[str, list[Pending]] = defaultdict(list)
    delivered: dict[str, list[int]] = defaultdict(list)
    for delivery in deliveries:
        items = drain.collect(delivery)
        job = drain.jobs.get(delivery.job_id)
        if job is None:
            continue
        if job.instance not in instances:
            store.mark_delivery(delivery.id, "uncorrelated", f"instance {job.instance} is not configured")
            continue
        by_instance[job.instance].extend(items)
        delivered[job.instance].append(delivery.id)
    for name, items in by_instance.items():
        run_id = store.start_run(name, "apply")
        status, error, mine = "succeeded", None, ApplyReport(deliveries=len(delivered[name]))
        try:
            if items:
                _write(instances[name], store, items, run_id, mine, now())
            for delivery_id in delivered[name]:
                lost = drain.lost.get(delivery_id)
                store.mark_delivery(
                    delivery_id, "applied", f"{lost} result(s) matched no contact" if lost else None
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
