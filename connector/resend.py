"""Sending an expired job's contacts to LoneScale again, on a person's word (`retry-failed --jobs`).

A job that expired without results may have been run, and billed, by LoneScale, so nothing sends its
contacts again on its own (connector.overdue). A person who has looked (LoneScale's dashboard, the bill)
may: each contact still `expired` is sent again as it was sent (the same input, so the old job's results,
should they come, agree with the new ones), for those of its old job's types it still needs (a target
filled since, as the CRM has it now, is not bought), whatever their cooldown. The dry run lists each
contact and the most it can cost: its types, each at its `credits_per_type`.

Each contact is sent again once. It is marked `resent`, naming its new job; and one whose cooldown a later
job started is left alone, so a stop between the send and that mark cannot send it twice. Should the old
job's results still come, they are applied like any late result, and the write policies find the fields
already equal: nothing is written twice.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connector.apply import Progress, no_progress
from connector.batching import Batch, Batcher
from connector.config import LoneScaleSettings
from connector.errors import Busy, ConnectorError, QuotaExhausted
from connector.inbox import echo_seen
from connector.lonescale import LoneScaleClient
from connector.mapping import Mapped
from connector.models import Contact, CrmRecord, EnrichmentType, RecordRef
from connector.retry import call_with_retry
from connector.selection import allowance, select_types
from connector.sender import CapReached, Sender, StopSending
from connector.store import Job, Jobs, Lease, Store, instance_lease
from connector.sync_report import SyncReport
from connector.wiring import Instance

log = logging.getLogger(__name__)
SEND = "send again"


@dataclass(frozen=True)
class ResendRow:
    """One contact of an expired job: sent again (for which types, for at most how many credits) or why not."""

    instance: str
    job_id: str  # the expired job
    record_id: str
    types: str
    credits: float
    note: str


@dataclass
class ResendReport:
    dry_run: bool
    prices: Mapping[EnrichmentType, float]
    balance: float | None = None  # LoneScale's enrichment credits before anything was sent
    rows: list[ResendRow] = field(default_factory=list)
    runs: list[SyncReport] = field(default_factory=list)  # one per instance that sent (never in a dry run)
    busy: list[str] = field(default_factory=list)  # instances another process was working on

    @property
    def chosen(self) -> list[ResendRow]:
        return [row for row in self.rows if row.note == SEND]

    @property
    def most_credits(self) -> float:
        return sum(row.credits for row in self.chosen)

    def costs(self) -> list[str]:
        """The possible cost by types: contacts, times the credits of each type they are sent for."""
        counts = Counter(row.types for row in self.chosen)
        lines = []
        for types, count in counts.most_common():
            prices = [self.prices[EnrichmentType(kind)] for kind in types.split("+")]
            each = " + ".join(f"{price:g}" for price in prices)
            lines.append(f"{count} contact(s) × {types} ({each} credits) = {count * sum(prices):g} credits")
        return lines


@dataclass
class _Plan:
    rows: list[ResendRow] = field(default_factory=list)
    batches: dict[tuple[EnrichmentType, ...], Batch] = field(default_factory=lambda: defaultdict(list))
    origin: dict[str, str] = field(default_factory=dict)  # record id → the expired job it is sent again for


def _sent_since(state: Mapping[str, Any] | None, job: Job) -> bool:
    """Whether a later job started this record's cooldown for one of the expired job's types."""
    types = (state or {}).get("types") or {}
    moments = [types[kind]["sent_at"] for kind in job.enrichment_types if kind in types]
    return any(datetime.fromisoformat(moment) > job.created_at for moment in moments)


def _plan(instance: Instance, store: Store, settings: LoneScaleSettings, job_ids: Collection[str],
          now: datetime) -> _Plan:  # fmt: skip
    """Each contact still `expired` in the chosen jobs: what it would be sent for now, or why it is not."""
    plan = _Plan()
    jobs = [
        job for job, _ in store.jobs.holding(instance.name, "expired") if not job_ids or job.id in job_ids
    ]
    contacts = [(job, c) for job in jobs for c in store.jobs.contacts(job.id) if c.status == "expired"]
    ids = sorted({c.record_id for _, c in contacts})
    states = store.ledger.states(instance.name, ids) if ids else {}
    current = instance.adapter.read_current(ids, instance.mapping.write_fields()) if ids else {}
    in_inbox = {job.id for job in jobs if store.inbox.unapplied(job.id)}
    for job, contact in contacts:
        record_id, types = contact.record_id, list[EnrichmentType]()
        if job.id in in_inbox:
            note = "its results arrived and wait in the inbox: `apply` writes them"
        elif record_id in plan.origin:
            note = f"sent again for job {plan.origin[record_id]}"
        elif _sent_since(states.get(record_id), job):
            note = "sent again since, in a later job"
        elif record_id not in current:
            note = "the record no longer exists (deleted or merged)"
        else:
            record = CrmRecord(RecordRef(instance.name, contact.object, record_id), now, current[record_id])
            kinds = [EnrichmentType(kind) for kind in job.enrichment_types]
            # Its cooldown is the person's to overrule; a field filled since is still not bought.
            types, reason = select_types(kinds, instance.mapping, record, {}, instance.settings.budget, now)
            note = reason or SEND
            if types:
                plan.batches[tuple(types)].append((record, Mapped(Contact.model_validate(contact.sent))))
                plan.origin[record_id] = job.id
        credits = sum(settings.credits_per_type[kind] for kind in types)
        plan.rows.append(ResendRow(instance.name, job.id, record_id, "+".join(types), credits, note))
    return plan


def _mark_resent(jobs: Jobs, plan: _Plan, report: SyncReport) -> None:
    """The old contacts of every new job that may have reached LoneScale are `resent`: never sent a third time."""
    for new_job in report.jobs:
        by_old: dict[str, list[str]] = defaultdict(list)
        for contact in jobs.contacts(new_job):
            if contact.record_id in plan.origin:
                by_old[plan.origin[contact.record_id]].append(contact.record_id)
        for old_job, record_ids in by_old.items():
            jobs.mark_contacts(old_job, record_ids, "resent", f"sent again in job {new_job}")


def _send(instance: Instance, store: Store, lonescale: LoneScaleClient, settings: LoneScaleSettings,
          webhook_base: str, plan: _Plan, lease: Lease, now: Callable[[], datetime],
          progress: Progress) -> SyncReport:  # fmt: skip
    """The chosen contacts, through the sync's own sender (caps, refusals, lost answers), as a `resend` run."""
    report = SyncReport(instance.name, store.runs.start(instance.name, "resend"))
    sender = Sender(instance, store, lonescale, settings, webhook_base, report, now,
                    allowance(instance, store.jobs, now()), lease)  # fmt: skip
    try:
        report.credits_at_start = call_with_retry(
            lonescale.credits, what="LoneScale credits", policy=lonescale.retry_policy
        ).enrichment
        if report.credits_at_start <= 0:
            raise QuotaExhausted("LoneScale has no enrichment credits left: nothing was sent")
        # Jobs as a sync would make them: one contact each until LoneScale's echo is known (connector.batching).
        batcher = Batcher(settings.batch_size, echoed=settings.assume_custom_echoed or echo_seen(store))
        total = sum(len(batch) for batch in plan.batches.values())

        def send(types: Sequence[EnrichmentType], batch: Batch) -> None:
            sender.send(types, batch)
            progress(
                f"{instance.name}: sent {report.sent} of {total} contact(s) in {len(report.jobs)} job(s)"
            )

        for types, chosen in plan.batches.items():
            for record, mapped in chosen:
                ready = batcher.add(types, record, mapped)
                if ready is not None:
                    send(types, ready)
        for types, batch in batcher.rest():
            send(types, batch)
        sender.settle(stopped=False)
        report.status = "succeeded"
    except (QuotaExhausted, CapReached, StopSending) as exc:
        report.status, report.message = "stopped", str(exc)
        sender.settle(stopped=True)
    except ConnectorError as exc:
        report.status, report.message = "failed", str(exc)
        sender.settle(stopped=True)
    finally:
        if report.status == "running":  # an unexpected exception is on its way up
            report.status = "failed"
        _mark_resent(store.jobs, plan, report)
        store.runs.finish(report.run_id, report.status, report.counts(), report.message)
    log.warning("%s: %d contact(s) of expired jobs sent again in %d job(s), on a person's word (%s)",
                instance.name, report.sent, len(report.jobs), report.status)  # fmt: skip
    return report


def resend_expired(
    instances: Mapping[str, Instance],
    store: Store,
    lonescale: LoneScaleClient,
    settings: LoneScaleSettings,
    webhook_base: str,
    *,
    job_ids: Collection[str] = (),
    dry_run: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    progress: Progress = no_progress,
) -> ResendReport:
    """Send the contacts of expired jobs (all, or those of `job_ids`) again, each instance under its lease.
    A dry run reads the store, the CRM and LoneScale's balance, and changes nothing anywhere."""
    report = ResendReport(dry_run, settings.credits_per_type)
    report.balance = call_with_retry(
        lonescale.credits, what="LoneScale credits", policy=lonescale.retry_policy
    ).enrichment
    for name, instance in instances.items():
        if dry_run:
            report.rows += _plan(instance, store, settings, job_ids, now()).rows
            continue
        try:
            lease = store.leases.acquire(instance_lease(name), "resend")
        except Busy as exc:
            report.busy.append(str(exc))
            continue
        with lease:  # what is still expired when we decide is still expired when we send
            plan = _plan(instance, store, settings, job_ids, now())
            report.rows += plan.rows
            if plan.batches:
                report.runs.append(
                    _send(instance, store, lonescale, settings, webhook_base, plan, lease, now, progress)
                )
    return report
