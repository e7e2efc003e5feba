"""What the webhook keeps about each job between deliveries, so a delivery needs no database read: its token's
hash, its status, and what its deliveries keep in the inbox against the per-job caps."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from connector.models import JobStatus
from connector.store import Job

# Jobs remembered between deliveries: more than are ever awaiting results at once.
KNOWN_JOBS = 4_096
# Done: no more results are expected. An expired job is done too, though a late result of it is still
# applied (it was paid for): its token retires like the others, `token_grace` after it expired.
SETTLED = frozenset({JobStatus.APPLIED, JobStatus.FAILED, JobStatus.EXPIRED})
TOKEN_GRACE = timedelta(days=7)
# A remembered job's status is read again after this long: it changes once the job is seen (applied,
# expired), and the grace it starts is days long, so learning of it a minute late costs nothing.
STATUS_TTL = timedelta(minutes=1)
# Per-job caps. LoneScale documents a webhook body of one contact but not its envelope
# (https://docs.lonescale.com/api-reference/webhookpayload/enrichment-payload), so a job's results come as
# one body per contact or one per job; a retry or another shape may repeat results in other bytes (an
# identical body is a duplicate and costs nothing). Three bodies per contact plus ten (per-job envelopes,
# a result fetched by polling, bodies refused and kept) is three times what a correct sender needs.
DELIVERIES_PER_CONTACT, SPARE_DELIVERIES = 3, 10
# A one-contact payload with every documented field filled is about 1.5 kB: 64 KiB per contact is forty
# times it, and 1 MiB spare covers a small job's envelope however verbose its profiles.
BYTES_PER_CONTACT, SPARE_BYTES = 64 * 1024, 1024 * 1024


class OverCap(NamedTuple):
    status: int  # 429: too many bodies, 413: too many bytes
    reason: str


@dataclass
class KnownJob:
    """What the webhook keeps about a job between deliveries, so that a delivery needs no database read:
    its token's hash (it never changes), its status (read again past STATUS_TTL) and what its deliveries
    keep in the inbox (read once, then counted here as this process stores them). With several webhook
    replicas each counts its own stores, so a job may keep up to the caps once per replica: still bounded.
    Used from the event loop only, so the counts need no lock."""

    digest: str
    instance: str
    status: JobStatus
    changed_at: datetime | None  # the job's updated_at: when it became done, once it is
    read_at: datetime
    max_deliveries: int
    max_bytes: int
    kept: int
    kept_bytes: int
    held: int = 0  # deliveries past their cap check, not yet committed: counted, so concurrency cannot
    held_bytes: int = 0  # take a job over its caps

    @classmethod
    def of(cls, job: Job, usage: tuple[int, int], now: datetime) -> KnownJob:
        contacts = job.contact_count
        return cls(
            job.token_sha256, job.instance, job.status, job.updated_at, now,
            max_deliveries=contacts * DELIVERIES_PER_CONTACT + SPARE_DELIVERIES,
            max_bytes=contacts * BYTES_PER_CONTACT + SPARE_BYTES,
            kept=usage[0], kept_bytes=usage[1],
        )  # fmt: skip

    def stale(self, now: datetime) -> bool:
        return not timedelta(0) <= now - self.read_at < STATUS_TTL  # a clock set back is stale too

    def retired(self, now: datetime, grace: timedelta) -> bool:
        return self.status in SETTLED and self.changed_at is not None and now - self.changed_at > grace

    def over_cap(self, size: int) -> OverCap | None:
        if self.kept + self.held >= self.max_deliveries:
            return OverCap(429, f"the job has had its {self.max_deliveries} deliveries")
        if self.kept_bytes + self.held_bytes + size > self.max_bytes:
            return OverCap(413, f"the job's deliveries may not exceed {self.max_bytes} bytes in all")
        return None

    def hold(self, size: int) -> None:
        self.held += 1
        self.held_bytes += size

    def settle(self, size: int, stored: bool, held: bool) -> None:
        if held:
            self.held -= 1
            self.held_bytes -= size
        if stored:
            self.kept += 1
            self.kept_bytes += size


class KnownJobs:
    """Job id → KnownJob, for the jobs seen lately. Only jobs that exist are remembered (a refused id is
    looked up every time: it may be a job not yet created), and the least recently used is forgotten past
    `size`. Used from the event loop only."""

    def __init__(self, size: int = KNOWN_JOBS):
        self._jobs: OrderedDict[str, KnownJob] = OrderedDict()
        self._size = size

    def get(self, job_id: str) -> KnownJob | None:
        job = self._jobs.get(job_id)
        if job is not None:
            self._jobs.move_to_end(job_id)
        return job

    def remember(self, job_id: str, job: KnownJob) -> KnownJob:
        """The job as remembered: `job`, or the one a concurrent first delivery remembered meanwhile (its
        counts are current; this one's may already be behind)."""
        kept = self._jobs.setdefault(job_id, job)
        self._jobs.move_to_end(job_id)
        if len(self._jobs) > self._size:
            self._jobs.popitem(last=False)
        return kept
