"""The pull side of a cycle (design.md §4 steps 1-5): pull changed records, map, select, store jobs, trigger.

Nothing is paid twice: a record is sent only if its mapped input changed since we last sent it, ignoring
values we wrote ourselves (our write-back bumps SystemModstamp / lastmodifieddate and would otherwise bring
every enriched record back, forever). A job row exists before LoneScale is called, and the cursor moves only
once the whole window is stored.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from connector.adapters.base import Window
from connector.config import LoneScaleSettings
from connector.errors import ConnectorError, QuotaExhausted, RequestRejected
from connector.lonescale import LoneScaleClient, TriggerUncertain
from connector.mapping import FieldMapping, Mapped, same_value, to_contact
from connector.models import CrmRecord, JobStatus
from connector.retry import call_with_retry
from connector.store import Cursor, Job, JobContact, Store, sha256
from connector.wiring import Instance, durations

log = logging.getLogger(__name__)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CHUNK = 500  # records looked up in the store at once
JOB_DEADLINE = timedelta(hours=2)  # results normally arrive within a minute (lonescale-api.md §5)


@dataclass
class SyncReport:
    instance: str
    run_id: int
    window: Window | None = None
    pulled: int = 0
    sent: int = 0
    jobs: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    status: str = "running"
    message: str | None = None

    def counts(self) -> dict[str, Any]:
        return {
            "pulled": self.pulled,
            "sent": self.sent,
            "jobs": len(self.jobs),
            "skipped": dict(self.skipped),
            "dropped_values": dict(self.dropped),
        }


def ours_only(mapping: FieldMapping, record: CrmRecord, written: Mapping[str, Any]) -> set[str]:
    """Contact fields whose source still holds the value we wrote there: changes that were ours, not a person's."""
    return {
        name
        for name in mapping.to_contact
        for source in mapping.sources(name)
        if source.field in written and same_value(record.get(source.field), written[source.field])
    }


def unchanged_since_sent(
    mapping: FieldMapping, record: CrmRecord, contact: Mapping[str, Any], state: Mapping[str, Any] | None
) -> bool:
    if not state or not state.get("last_sent"):
        return False
    ours = ours_only(mapping, record, state.get("written") or {})
    last: Mapping[str, Any] = state["last_sent"]
    return {k: v for k, v in contact.items() if k not in ours} == {
        k: v for k, v in last.items() if k not in ours
    }


def window_for(instance: Instance, store: Store, now: datetime) -> Window:
    lookback, settle = durations(instance.settings)
    cursor = store.cursor(instance.name)
    if cursor is None:
        start = instance.settings.start_date or EPOCH
    else:
        start = cursor.changed_at - timedelta(seconds=lookback)
    return Window(start, now - timedelta(seconds=settle))


def _chunks(records: Iterable[CrmRecord], size: int) -> Iterator[list[CrmRecord]]:
    iterator = iter(records)
    while chunk := list(islice(iterator, size)):
        yield chunk


class _Sender:
    """Stores a job, then posts it; owns what happens when LoneScale says no."""

    def __init__(self, instance: Instance, store: Store, lonescale: LoneScaleClient, settings: LoneScaleSettings,
                 webhook_base: str, report: SyncReport, now: Callable[[], datetime]):  # fmt: skip
        self.instance, self.store, self.lonescale, self.settings = instance, store, lonescale, settings
        self.webhook_base, self.report, self.now = webhook_base.rstrip("/"), report, now

    def send(self, batch: list[tuple[CrmRecord, Mapped]]) -> None:
        job_id, token, created = str(uuid.uuid4()), secrets.token_urlsafe(32), self.now()
        write_fields = [rule.field for rule in self.instance.mapping.write_back]
        job = Job(
            job_id, self.instance.name, self.report.run_id, sha256(token), None, JobStatus.PENDING,
            [t.value for t in self.settings.enrichment_type], len(batch), created, None, created + JOB_DEADLINE, None,
        )  # fmt: skip
        contacts = [
            JobContact(job_id, record.ref.id, record.ref.object, mapped.contact.to_request(),
                       {name: record.get(name) for name in write_fields})
            for record, mapped in batch
        ]  # fmt: skip
        self.store.create_job(job, contacts)  # durable before LoneScale hears of it
        url = f"{self.webhook_base}/webhooks/lonescale/{job_id}?token={token}"
        try:
            lonescale_id = call_with_retry(
                lambda: self.lonescale.trigger(
                    [m.contact for _, m in batch], self.settings.enrichment_type, url,
                    detect_job_change=self.settings.detect_job_change,
                ),
                what="LoneScale trigger",
            )  # fmt: skip
        except TriggerUncertain as exc:
            # It may have started (and will bill): count it sent, and let polling settle it, never a re-post.
            self.store.update_job(job_id, JobStatus.UNCERTAIN, reason=str(exc))
            self._sent(job_id, contacts)
            return
        except RequestRejected as exc:
            self.store.update_job(job_id, JobStatus.FAILED, reason=str(exc))
            if exc.status not in (400, 413):  # refused as malformed or too large: worth splitting
                raise
            self._split(batch, contacts, exc)
            return
        except ConnectorError as exc:
            self.store.update_job(job_id, JobStatus.FAILED, reason=str(exc))
            raise
        self.store.update_job(job_id, JobStatus.SENT, lonescale_id=lonescale_id, sent_at=self.now())
        self._sent(job_id, contacts)

    def _split(
        self, batch: list[tuple[CrmRecord, Mapped]], contacts: list[JobContact], exc: RequestRejected
    ) -> None:
        """LoneScale refused the batch (400 or 413: free, and it does not say which contact). Halve it until
        the contact it refuses stands alone, so one bad contact never holds back the others."""
        if len(batch) > 1:
            middle = len(batch) // 2
            self.send(batch[:middle])
            self.send(batch[middle:])
            return
        (contact,) = contacts
        self.store.mark_job_contacts(contact.job_id, [contact.record_id], "rejected", str(exc))
        # Remembered as sent: the same input would be refused again; a person's edit brings it back.
        self.store.remember_sent(self.instance.name, {contact.record_id: contact.sent})
        self.report.skipped["refused by LoneScale"] += 1
        log.warning("%s: LoneScale refused record %s: %s", self.instance.name, contact.record_id, exc)

    def _sent(self, job_id: str, contacts: list[JobContact]) -> None:
        self.store.remember_sent(self.instance.name, {c.record_id: c.sent for c in contacts})
        self.report.jobs.append(job_id)
        self.report.sent += len(contacts)


def pull_and_trigger(
    instance: Instance,
    store: Store,
    lonescale: LoneScaleClient,
    settings: LoneScaleSettings,
    webhook_base: str,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    progress: Callable[[SyncReport], None] | None = None,
) -> SyncReport:
    report = SyncReport(instance.name, store.start_run(instance.name, "sync"))
    sender = _Sender(instance, store, lonescale, settings, webhook_base, report, now)
    window = report.window = window_for(instance, store, now())
    pending: list[tuple[CrmRecord, Mapped]] = []
    seen: set[str] = set()
    try:
        records = instance.adapter.pull_changed(window, instance.mapping.read_fields())
        for chunk in _chunks(records, CHUNK):
            states = store.record_states(instance.name, [r.ref.id for r in chunk])
            for record in chunk:
                if record.ref.id in seen:
                    continue
                seen.add(record.ref.id)
                report.pulled += 1
                outcome = to_contact(instance.mapping, record)
                if not isinstance(outcome, Mapped):
                    report.skipped[outcome.reason] += 1
                    continue
                report.dropped.update(outcome.dropped)
                if unchanged_since_sent(
                    instance.mapping, record, outcome.contact.to_request(), states.get(record.ref.id)
                ):
                    report.skipped["unchanged since last sent"] += 1
                    continue
                pending.append((record, outcome))
                if len(pending) >= settings.batch_size:
                    sender.send(pending)
                    pending = []
            if progress:
                progress(report)
        if pending:
            sender.send(pending)
        store.set_cursor(instance.name, Cursor(window.end))  # the whole window is stored
        report.status = "succeeded"
    except QuotaExhausted as exc:
        report.status, report.message = "stopped", str(exc)
        log.warning("%s: stopped, cursor kept for the next run: %s", instance.name, exc)
    except ConnectorError as exc:
        report.status, report.message = "failed", str(exc)
        log.error("%s: sync failed, cursor kept for the next run: %s", instance.name, exc)
    finally:
        if report.status == "running":  # an unexpected exception is on its way up
            report.status = "failed"
        store.finish_run(report.run_id, report.status, report.counts(), report.message)
        if progress:
            progress(report)
    return report
