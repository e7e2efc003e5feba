"""Storing a job, then posting it to LoneScale: what happens when LoneScale says no, and the caps.

A job row exists before LoneScale is called. A trigger is posted again only when it provably never reached
LoneScale: one whose answer was lost is never re-posted, and stops the run
(docs/architecture.md#nothing-paid-twice).
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from connector.batching import Batch
from connector.config import LoneScaleSettings
from connector.errors import ConnectorError, RequestRejected
from connector.halving import halving
from connector.logs import log_context
from connector.lonescale import LoneScaleClient, Refused, StartedWithoutId, TriggerUncertain
from connector.mapping import Mapped
from connector.models import CrmRecord, EnrichmentType, JobStatus
from connector.retry import call_with_retry
from connector.store import Job, JobContact, Lease, Store, sha256
from connector.sync_report import SyncReport, custom_shown
from connector.wiring import Instance

log = logging.getLogger(__name__)
# Results normally arrive within a minute (docs/lonescale.md#limits-and-timing).
JOB_DEADLINE = timedelta(hours=1)


class CapReached(ConnectorError):
    """A per-run or monthly cap stops the run; the records left wait for the next one."""


class StopSending(ConnectorError):
    """Nothing more goes to LoneScale this run: an answer was lost, or LoneScale refuses every request.
    The cursor stays, so the next run carries on where this one stopped."""


@dataclass
class _Split:
    """One batch while LoneScale's refusal of it is worked out, part by part."""

    accepted: bool = False  # some part was taken: the request as such is fine, so a refusal is about contacts
    decided: set[str] = field(default_factory=set)  # records sent, marked refused, or already released


class _Refusal(RequestRejected):
    """LoneScale refused the job `job_id` (400, 413): raised out of a post so `halving` splits the batch."""

    def __init__(self, job_id: str, error: RequestRejected):
        super().__init__(str(error), error.status)
        self.job_id, self.error = job_id, error

    @property
    def reason(self) -> tuple[int | None, str]:
        answer = self.error.answer if isinstance(self.error, Refused) else str(self.error)
        return self.error.status, answer


class Sender:
    """Stores a job, then posts it; owns what happens when LoneScale says no, and the caps. A sync's, and a
    person's re-send of an expired job's contacts (connector.resend)."""

    def __init__(self, instance: Instance, store: Store, lonescale: LoneScaleClient, settings: LoneScaleSettings,
                 webhook_base: str, report: SyncReport, now: Callable[[], datetime], allowance: float,
                 lease: Lease | None):  # fmt: skip
        self.instance, self.store, self.lonescale, self.settings = instance, store, lonescale, settings
        self.webhook_base, self.report, self.now = webhook_base.rstrip("/"), report, now
        self.allowance = allowance  # contacts this run may still send (caps), float("inf") when uncapped
        self.lease = lease  # None for a dry run, which sends nothing
        self.custom = instance.settings.request_custom(settings)
        report.custom = custom_shown(instance, settings)
        self.accepted = False  # LoneScale took a job of this run: its requests as such are fine
        # A one-contact job refused before any was taken: the contact's fault, or LoneScale refusing every
        # request? The next job's answer tells (see `_refused_alone`).
        self._lone: tuple[Sequence[EnrichmentType], CrmRecord, _Refusal] | None = None

    def send(self, types: Sequence[EnrichmentType], batch: Batch) -> None:
        if len(batch) > self.allowance:
            allowed = int(self.allowance)
            if allowed:
                self.send(types, batch[:allowed])
            raise CapReached(f"cap reached after {self.report.sent} contacts; the rest wait for the next run")
        self.report.projected_credits += len(batch) * sum(self.settings.credits_per_type[t] for t in types)
        if self.report.dry_run:
            self._count(types, len(batch))
            return
        split = _Split()

        def post(part: Sequence[tuple[CrmRecord, Mapped]]) -> list[None]:
            refusal = self._post(types, list(part), split)
            if refusal is not None:
                raise refusal
            return []

        def alone(item: tuple[CrmRecord, Mapped], refusal: RequestRejected) -> None:
            assert isinstance(refusal, _Refusal)  # what `post` raises
            self._refused_alone(types, item[0], refusal, split)

        def probe(
            items: Sequence[tuple[CrmRecord, Mapped]], refusal: RequestRejected
        ) -> tuple[list[None], Sequence[tuple[CrmRecord, Mapped]]]:
            return [], self._probe(types, list(items), refusal, split)

        try:
            # Refused as malformed or too large (free, and it does not say which contact): halves until the
            # contact LoneScale refuses stands alone, so one bad contact never holds back the others.
            halving(batch, post, alone, probe)
        except ConnectorError:
            # A refused job's cooldowns hold its contacts until a smaller job takes them: those a stop leaves
            # unsent are released, or they would wait out a cooldown for a job that never ran.
            self._release(types, [r.ref.id for r, _ in batch if r.ref.id not in split.decided])
            raise

    def _post(self, types: Sequence[EnrichmentType], batch: Batch, split: _Split) -> _Refusal | None:
        """Store a job for the batch, then post it. Returns LoneScale's refusal (400, 413) for the caller to
        split; raises StopSending when LoneScale's answer was lost."""
        job_id = str(uuid.uuid4())
        with log_context(job_id=job_id):
            return self._post_job(job_id, types, batch, split)

    def _post_job(
        self, job_id: str, types: Sequence[EnrichmentType], batch: Batch, split: _Split
    ) -> _Refusal | None:
        token, created = secrets.token_urlsafe(32), self.now()
        write_fields = [rule.field for rule in self.instance.mapping.write_back]
        job = Job(
            job_id, self.instance.name, self.report.run_id, sha256(token), None, JobStatus.PENDING,
            [t.value for t in types], len(batch), created, None, created + JOB_DEADLINE, None,
        )  # fmt: skip
        contacts = [
            JobContact(job_id, record.ref.id, record.ref.object, mapped.contact.to_request(),
                       {name: record.get(name) for name in write_fields})
            for record, mapped in batch
        ]  # fmt: skip
        ids = [c.record_id for c in contacts]
        if self.lease is not None:
            self.lease.check()  # fencing: a sync that lost its lease to another holder sends nothing more
        self.store.jobs.create(job, contacts)  # durable before LoneScale hears of it
        url = f"{self.webhook_base}/webhooks/lonescale/{job_id}?token={token}"
        try:
            lonescale_id = call_with_retry(
                lambda: self.lonescale.trigger(
                    [m.contact for _, m in batch],
                    types,
                    url,
                    detect_job_change=self._job_change(types),
                    # Our job id last, so nothing configured can stand in its place: the webhook checks an
                    # echoed custom.id against the job its URL names.
                    custom={**self.custom, "id": job_id},
                ),
                what="LoneScale trigger",
                policy=self.lonescale.retry_policy,
            )
        except StartedWithoutId as exc:
            # Taken (a 2xx), with no id to poll: its webhook settles it. LoneScale answers, so the run goes on.
            self.store.jobs.update(job_id, JobStatus.UNCERTAIN, reason=str(exc), sent_at=self.now())
            split.accepted = True
            self._sent(job_id, types, ids, split)
            log.warning("%s: job %s: %s", self.instance.name, job_id, exc)
            return None
        except TriggerUncertain as exc:
            # It may have started (and will bill): count it sent, never post it again. A service that loses
            # its answers may bill each next batch just the same, so nothing more goes into it this run.
            self.store.jobs.update(job_id, JobStatus.UNCERTAIN, reason=str(exc))
            self._sent(job_id, types, ids, split, taken=False)
            raise StopSending(
                f"LoneScale's answer to job {job_id} was lost ({exc}); it may have started, so it is never "
                "posted again: its webhook or the overdue check settles it. Nothing more is sent this run"
            ) from exc
        except RequestRejected as exc:
            self.store.jobs.update(job_id, JobStatus.FAILED, reason=str(exc))
            if exc.status in (400, 413):  # refused as malformed or too large: free, and worth splitting
                return _Refusal(job_id, exc)
            self._release(types, ids)
            split.decided.update(ids)
            raise
        except ConnectorError as exc:
            self.store.jobs.update(job_id, JobStatus.FAILED, reason=str(exc))
            self._release(types, ids)
            split.decided.update(ids)
            raise
        self.store.jobs.accepted(job_id, lonescale_id, self.now())
        split.accepted = True
        self._sent(job_id, types, ids, split)
        log.debug("%s: job %s sent (%s, %d contacts)", self.instance.name, job_id, "+".join(types), len(ids))
        return None

    def _job_change(self, types: Sequence[EnrichmentType]) -> bool:
        # LoneScale only honours it with "profile" (docs/lonescale.md#job-change).
        return self.settings.detect_job_change and EnrichmentType.PROFILE in types

    def _probe(
        self, types: Sequence[EnrichmentType], batch: Batch, refusal: RequestRejected, split: _Split
    ) -> Batch:
        """Before a 400 that no part of the batch has got past yet is halved: the batch's first and last
        contacts, each alone; returns the contacts left to send. One contact cannot make a request too large,
        so if both are refused with the same answer, LoneScale refuses the request whatever it holds (an
        `http://` webhook, an option the plan lacks, an API change): halving on would cost 2N-1 requests and
        mark every contact refused for LoneScale's own reason. A 413 for halves too is only "still too large"."""
        if refusal.status != 400 or split.accepted:
            return batch
        first = self._post(types, batch[:1], split)
        if first is None:
            return batch[1:]
        last = self._post(types, batch[-1:], split)
        if last is not None and last.reason == first.reason:
            raise StopSending(
                f"LoneScale refuses every request: {last.reason[1]} (even one contact alone, from either end "
                "of a batch); no contact is marked refused and the cursor is kept"
            )
        self._reject(batch[0][0], first, split)
        if last is not None:  # refused too, for a reason of its own
            self._reject(batch[-1][0], last, split)
        return batch[1:-1]

    def _refused_alone(
        self, types: Sequence[EnrichmentType], record: CrmRecord, refusal: _Refusal, split: _Split
    ) -> None:
        """A job of one contact refused (jobs hold one contact until LoneScale's echo is known). Once LoneScale
        has taken a job of this run, the contact is at fault. Before that, two contacts refused alone with the
        same answer mean LoneScale refuses every request: stop, mark no one, start no cooldown; a first one
        waits for the next job's answer."""
        if self.accepted or refusal.error.status != 400:
            self._reject(record, refusal, split)
            return
        if self._lone is None:
            self._lone = (types, record, refusal)
            split.decided.add(record.ref.id)  # its fate is the next answer's, not this batch's
            return
        first_types, first, first_refusal = self._lone
        self._lone = None
        if first_refusal.reason == refusal.reason:
            self._release(first_types, [first.ref.id])
            raise StopSending(
                f"LoneScale refuses every request: {refusal.reason[1]} (two contacts alone, nothing taken); no "
                "contact is marked refused and the cursor is kept"
            )
        self._reject(first, first_refusal, split)
        self._reject(record, refusal, split)

    def settle(self, stopped: bool) -> None:
        """At the end of a run, the contact refused alone that no later answer judged: marked refused when
        the run went on (alone it cannot tell LoneScale's refusal from its own), released when it stopped
        for another reason (it never started, and is sent again next time)."""
        if self._lone is None:
            return
        types, record, refusal = self._lone
        self._lone = None
        if stopped:
            self._release(types, [record.ref.id])
        else:
            self._reject(record, refusal, _Split())

    def _reject(self, record: CrmRecord, refusal: _Refusal, split: _Split) -> None:
        # It stays in cooldown (started with its job): the same input would be refused again until then.
        self.store.jobs.mark_contacts(refusal.job_id, [record.ref.id], "rejected", str(refusal.error))
        split.decided.add(record.ref.id)
        self.report.skipped["refused by LoneScale"] += 1
        log.warning("%s: LoneScale refused record %s: %s", self.instance.name, record.ref.id, refusal.error)

    def _release(self, types: Sequence[EnrichmentType], record_ids: Sequence[str]) -> None:
        """LoneScale never took them: the cooldowns started with their job end, so the next run sends them."""
        if record_ids:
            self.store.ledger.forget(self.instance.name, record_ids, [t.value for t in types])

    def _sent(self, job_id: str, types: Sequence[EnrichmentType], ids: Sequence[str], split: _Split,
              *, taken: bool = True) -> None:  # fmt: skip
        """Counted as sent; `taken`: LoneScale said so (not a lost answer, which may or may not be)."""
        self.report.jobs.append(job_id)
        split.decided.update(ids)
        self._count(types, len(ids))
        if not taken:
            return
        self.accepted = True
        if self._lone is not None:  # LoneScale takes requests: the contact refused alone before was at fault
            _, first, first_refusal = self._lone
            self._lone = None
            self._reject(first, first_refusal, split)

    def _count(self, types: Sequence[EnrichmentType], sent: int) -> None:
        self.report.sent += sent
        self.report.by_types["+".join(t.value for t in types)] += sent
        self.allowance -= sent
