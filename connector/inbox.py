"""Reading the inbox: each stored delivery parsed and every result correlated to the contact it belongs to."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from connector.lonescale import PayloadError, parse_payload
from connector.models import EnrichmentResult
from connector.store import Delivery, Job, JobContact, Store
from connector.transforms import linkedin_url

log = logging.getLogger(__name__)
Accept = Callable[[JobContact], bool]


def waiting(contact: JobContact) -> bool:
    """The normal drain: contacts without a result yet, and late results of expired jobs (paid for), also
    once a person sent them again (`resent`): whichever results come second find the fields already equal."""
    return contact.status in ("waiting", "expired", "resent")


@dataclass(frozen=True)
class Pending:
    job: Job
    contact: JobContact
    result: EnrichmentResult
    delivery_id: int


def _fold(value: Any) -> str | None:
    return str(value).strip().casefold() if value not in (None, "") else None


def correlate(result: EnrichmentResult, contacts: Sequence[JobContact]) -> JobContact | None:
    """By `custom.contact_id` when echoed; a job of one contact is that contact's (its webhook URL says which
    job a result belongs to); else by one identity within the job that matches exactly one contact (LinkedIn
    URL, input email, full name). Ambiguity is never resolved by guessing."""
    if result.contact_id is not None:
        return next((c for c in contacts if c.record_id == result.contact_id), None)
    if len(contacts) == 1:
        return contacts[0]
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
        if probe is None or (isinstance(probe, tuple) and None in probe):
            continue
        matches = [c for c in contacts if key(c.sent) == probe]
        if len(matches) == 1:
            return matches[0]
    return None


UNMATCHED = "result(s) matched no contact"


class Drain:
    """Reads deliveries job by job (each job's contacts loaded once) and counts what it cannot use."""

    def __init__(self, store: Store, accept: Accept = waiting, *, record: bool = True):
        self.store, self.accept, self.record = store, accept, record  # record=False: a dry run marks nothing
        self.jobs: dict[str, Job | None] = {}
        self.contacts: dict[str, list[JobContact]] = {}
        self.lost: dict[int, int] = {}  # delivery id → results that matched no contact
        self.refused: set[int] = set()  # deliveries marked unusable here: not to be marked applied after
        self.results = self.duplicates = self.uncorrelated = 0

    def job(self, job_id: str) -> Job | None:
        if job_id not in self.jobs:
            self.jobs[job_id] = self.store.jobs.get(job_id)
            self.contacts[job_id] = self.store.jobs.contacts(job_id) if self.jobs[job_id] else []
        return self.jobs[job_id]

    def collect(self, delivery: Delivery) -> list[Pending]:
        job = self.job(delivery.job_id)
        if job is None:
            self._mark(delivery.id, "uncorrelated", "no such job")
            return []
        try:
            payload = parse_payload(delivery.body)
        except (PayloadError, ValueError) as exc:
            self._mark(delivery.id, "invalid", str(exc))
            return []
        elsewhere = payload.not_for(job.id)  # refused at intake too; a replay reads bodies kept `invalid`
        if elsewhere is not None:
            self._mark(delivery.id, "invalid", elsewhere)
            return []
        if payload.provider is not None and payload.provider != job.provider and self.record:
            self.store.jobs.record_provider(job.id, payload.provider)
            self.jobs[job.id] = job = replace(job, provider=payload.provider)
        pending, lost = [], 0
        for result in payload.results:
            self.results += 1
            contact = correlate(result, self.contacts[job.id])
            if contact is None:
                lost += 1
            elif not self.accept(contact):
                self.duplicates += 1  # delivered before (another shape, a retry): written once only
            else:
                pending.append(Pending(job, contact, result, delivery.id))
        if lost:
            self.lost[delivery.id] = lost
            self.uncorrelated += lost
            log.warning(
                "job %s: %d result(s) matched no contact; kept in the inbox for inspection", job.id, lost
            )
        return pending

    def recheck(self, items: list[Pending], settled: Collection[str]) -> list[Pending]:
        """`items` as a pass reading them now would take them: they were read ahead, while the pass before
        settled the contacts of the jobs `settled`. A contact it applied meanwhile (a result delivered twice,
        once on each side of the two passes) is a duplicate now, as it is when read after."""
        stale = set(settled) & {item.job.id for item in items}
        if not stale:
            return items
        for job_id in stale:
            self.jobs.pop(job_id, None)
            self.job(job_id)  # its status and contacts, read again
        now = {(c.job_id, c.record_id): c for job_id in stale for c in self.contacts[job_id]}
        kept = []
        for item in items:
            contact = now.get((item.job.id, item.contact.record_id))
            if contact is not None and not self.accept(contact):
                self.duplicates += 1
            else:
                kept.append(item)
        return kept

    def _mark(self, delivery_id: int, status: str, error: str) -> None:
        self.refused.add(delivery_id)
        if self.record:
            self.store.inbox.mark([delivery_id], status, error)


ECHO_SAMPLE = 5  # recent deliveries looked at


def echo_seen(store: Store) -> bool:
    """Whether LoneScale has been seen echoing each contact's `custom.contact_id` in its results, from the
    latest deliveries applied: the one fact that lets a job hold more than one contact (connector.batching).
    Read again at each sync, so it follows LoneScale if its payload changes."""
    for delivery in store.inbox.recent(ECHO_SAMPLE):
        try:
            payload = parse_payload(delivery.body)
        except (PayloadError, ValueError):
            continue
        if any(result.contact_id is not None for result in payload.results):
            return True
    return False
