"""Jobs whose results never came (docs/architecture.md#overdue-jobs): found again by polling, else expired.

A job still waiting past its deadline may well have reached LoneScale, which bills a job whether or not
its webhook ever arrives (LoneScale documents no webhook retries: docs/lonescale.md#webhook-delivery). So:
- a job with a LoneScale id is polled (`GET /trigger/run/{id}`) at its deadline, and once more a grace
  period later; finished results are stored in the inbox like a delivery and applied as usual;
- a job without one (its trigger's answer was lost, a 2xx came without an id, the daemon stopped while
  posting it) cannot be polled, so it waits out the same grace for its webhook.
Still without results after the grace, the job is expired with its reason (the last poll's answer, or why
it has no id). Its contacts stay in cooldown and are listed in `failures`: releasing them would buy them
again, for a job LoneScale may have run and billed. `retry-failed --jobs` sends them again on a person's
word; late results of an expired job are still applied (connector.inbox). Only a trigger that provably
never reached LoneScale releases its contacts (connector.sync).

Each instance's jobs are settled under its lease: an apply pass marks the same contacts, and a job it has
just finished must not be expired on a stale read. A busy instance is left for the next visit.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

from connector.errors import Busy, ConnectorError
from connector.logs import log_context
from connector.lonescale import LoneScaleClient
from connector.models import JobStatus
from connector.retry import RetryPolicy, call_with_retry
from connector.store import Inbox, Job, JobContact, Jobs, Store, instance_lease

log = logging.getLogger(__name__)
GRACE = timedelta(minutes=30)
# A poll that fails is counted and asked again at the next visit: not retried for minutes under the lease.
POLL_POLICY = RetryPolicy(attempts=3, deadline=30.0)
# How every automatic expiry's reason starts: `status` counts these, `failures` lists them.
MAY_HAVE_BEEN_BILLED = "may have been billed; no results arrived"
WAITING = {JobStatus.SENT, JobStatus.PARTLY_APPLIED, JobStatus.UNCERTAIN}


@dataclass
class OverdueReport:
    polled: int = 0
    recovered: int = 0  # jobs whose results came through polling
    expired: list[tuple[str, str]] = field(default_factory=list)  # (job id, reason)
    busy: list[str] = field(default_factory=list)  # instances another process was working on: next visit


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:g} min"


def _expire(jobs: Jobs, job: Job, contacts: list[JobContact], reason: str, report: OverdueReport) -> None:
    waiting = [c.record_id for c in contacts if c.status == "waiting"]
    # Contacts first: a stop before the job's own update leaves none waiting, and the next visit finishes it.
    jobs.mark_contacts(job.id, waiting, "expired", reason)
    jobs.update(job.id, JobStatus.EXPIRED, reason=reason)
    report.expired.append((job.id, reason))
    log.warning("job %s (%s) expired: %s; its %d contact(s) stay in cooldown, listed in `failures`",
                job.id, job.instance, reason, len(waiting))  # fmt: skip


def _poll(lonescale: LoneScaleClient, inbox: Inbox, job: Job, lonescale_id: str) -> tuple[str, bool]:
    """Ask LoneScale once; (its answer in words, whether it brought results not stored before)."""
    try:
        run = call_with_retry(
            partial(lonescale.run, lonescale_id), what="LoneScale run status", policy=POLL_POLICY
        )
    except ConnectorError as exc:
        return f"the poll failed: {exc}", False
    if run.status == "finished" and run.contacts:
        body = json.dumps({"id": lonescale_id, "status": run.status, "contacts": run.contacts}).encode()
        if inbox.keep(job.id, body):  # applied like any webhook
            return "results fetched by polling: the webhook never came", True
    return f"LoneScale says {run.status!r}", False


def _waits_for_its_webhook(job: Job, now: datetime, grace: timedelta) -> bool:
    """A job without a LoneScale id has nothing to poll it by: within its grace, its webhook may still come."""
    return job.lonescale_id is None and job.deadline is not None and now < job.deadline + grace


def _settle(store: Store, lonescale: LoneScaleClient, job: Job, now: datetime, grace: timedelta,
            report: OverdueReport) -> None:  # fmt: skip
    contacts = store.jobs.contacts(job.id)
    states = {c.status for c in contacts}
    if "waiting" not in states:  # everything arrived and only the status lagged, or an expiry was cut short
        store.jobs.update(job.id, JobStatus.EXPIRED if "expired" in states else JobStatus.APPLIED)
        return
    if store.inbox.unapplied(job.id):
        return  # its results are here, and the write-back has not caught up with them (a CRM outage?)
    if _waits_for_its_webhook(job, now, grace):
        return
    if job.lonescale_id is None:
        reason = f"{MAY_HAVE_BEEN_BILLED} within {_minutes(grace)} of its deadline. No LoneScale id to poll it by: "
        _expire(store.jobs, job, contacts, reason + (job.reason or "its trigger's answer was lost"), report)
        return
    report.polled += 1
    answer, fresh = _poll(lonescale, store.inbox, job, job.lonescale_id)
    report.recovered += fresh
    if fresh or not job.polls:  # results to apply, or the first visit: one grace period more
        reason = answer if fresh else f"{answer} at the deadline"
        store.jobs.update(job.id, job.status, polls=job.polls + 1, deadline=now + grace, reason=reason)
        log.info("job %s: %s", job.id, reason)
        return
    reason = f"{MAY_HAVE_BEEN_BILLED} within {_minutes(grace)} of its deadline. Last poll: {answer}"
    _expire(store.jobs, job, contacts, reason, report)


def settle_overdue(
    store: Store,
    lonescale: LoneScaleClient,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    grace: timedelta = GRACE,
) -> OverdueReport:
    """Poll, recover or expire every job past its deadline; never release a contact."""
    report = OverdueReport()
    by_instance: dict[str, list[str]] = defaultdict(list)
    moment = now()
    for overdue in store.jobs.overdue(moment):
        if _waits_for_its_webhook(overdue, moment, grace):
            continue  # nothing to do, so the lease is not taken: a sync starting now is not made busy
        by_instance[overdue.instance].append(overdue.id)
    for name, job_ids in by_instance.items():
        try:
            lease = store.leases.acquire(instance_lease(name), "overdue")
        except Busy as exc:
            report.busy.append(str(exc))
            log.info("%s: overdue jobs left for the next check: %s", name, exc)
            continue
        # The instance names the log lines and LoneScale's answers to the polls (the metrics' `instance`).
        with lease, log_context(instance=name):
            for job_id in job_ids:
                lease.check()
                job = store.jobs.get(job_id)  # as it is now that nobody else works on the instance
                moment = now()
                if job is not None and job.status in WAITING and job.deadline and job.deadline < moment:
                    _settle(store, lonescale, job, moment, grace, report)
    return report
