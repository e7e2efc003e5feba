"""Jobs whose webhook never came (design.md §4 step 8): poll LoneScale, then expire with a reason.

LoneScale documents no webhook retries (lonescale-api.md §6), so a lost delivery is possible. Past its
deadline a job is polled once (`GET /trigger/run/{id}`); finished results are stored in the inbox like a
delivery and applied as usual. A job still without results a grace period later is expired: its contacts
are released from cooldown so a later run may send them again, and `status` shows why. A job left
`uncertain` (its trigger timed out, so it has no LoneScale id) is settled by its own webhook or expires;
it is never re-posted blindly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

from connector.errors import ConnectorError
from connector.lonescale import LoneScaleClient
from connector.models import JobStatus
from connector.retry import call_with_retry
from connector.store import Job, Store

log = logging.getLogger(__name__)
GRACE = timedelta(minutes=30)


@dataclass
class OverdueReport:
    polled: int = 0
    recovered: int = 0  # jobs whose results came through polling
    expired: list[tuple[str, str]] = field(default_factory=list)  # (job id, reason)


def _expire(store: Store, job: Job, reason: str, report: OverdueReport) -> None:
    waiting = [c.record_id for c in store.job_contacts(job.id) if c.status == "waiting"]
    store.mark_job_contacts(job.id, waiting, "expired", reason)
    store.forget_sent(job.instance, waiting, job.enrichment_types)
    store.update_job(job.id, JobStatus.EXPIRED, reason=reason)
    report.expired.append((job.id, reason))
    log.warning("job %s (%s) expired: %s; %d contact(s) released", job.id, job.instance, reason, len(waiting))


def settle_overdue(
    store: Store,
    lonescale: LoneScaleClient,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    grace: timedelta = GRACE,
) -> OverdueReport:
    report = OverdueReport()
    for job in store.overdue_jobs(now()):
        if not any(c.status == "waiting" for c in store.job_contacts(job.id)):
            store.update_job(job.id, JobStatus.APPLIED)  # everything arrived; only the status lagged
            continue
        if job.polls:
            _expire(store, job, f"no results {grace} after the deadline, even by polling", report)
            continue
        if job.lonescale_id is None:
            _expire(
                store,
                job,
                "the trigger timed out and no webhook came: LoneScale likely never started it",
                report,
            )
            continue
        report.polled += 1
        try:
            run = call_with_retry(partial(lonescale.run, job.lonescale_id), what="LoneScale run status")
        except ConnectorError as exc:
            log.warning("job %s: could not poll LoneScale (%s); trying again later", job.id, exc)
            continue
        if run.status == "finished" and run.contacts:
            body = json.dumps(
                {"id": job.lonescale_id, "status": run.status, "contacts": run.contacts}
            ).encode()
            store.store_delivery(job.id, body)  # applied like any webhook; duplicates are ignored there
            report.recovered += 1
            reason = "results fetched by polling: the webhook never came"
        else:
            reason = f"LoneScale says {run.status!r} at the deadline"
        store.update_job(job.id, job.status, polls=job.polls + 1, deadline=now() + grace, reason=reason)
        log.info("job %s: %s", job.id, reason)
    return report
