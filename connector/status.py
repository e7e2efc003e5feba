"""What `status` says, as one typed model built from the store: the CLI's text, `status --json` and the status
page are three views of the same `StatusReport`, so no two of them can count a thing differently.

Each count has one source, named beside its field. The write-back's words are ApplyReport's: a record
*rejected* is one the CRM refused whole; a field *refused* is one it turned down on a record otherwise
written. Only the latest run of each kind is shown (no line left over from an earlier run)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from connector.apply_report import REFUSED_FIELD
from connector.config import Config
from connector.models import JobStatus
from connector.overdue import MAY_HAVE_BEEN_BILLED
from connector.schedules import next_time
from connector.selection import month_start
from connector.status_series import Series, build_series
from connector.store import Store, instance_lease
from connector.store.database import aware

LISTED = 5  # failures of each kind listed; the totals say how many there are in all
WRITE_KINDS = ("apply", "replay", "retry")  # runs that write results back (a rollback undoes, it is not one)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SyncRun(_Model):
    """The latest sync run: its counts as `Runs.finish` stored them (SyncReport.counts)."""

    id: int
    status: str  # succeeded | stopped | failed | busy | interrupted | running
    started_at: datetime
    finished_at: datetime | None
    message: str | None
    pulled: int
    sent: int
    jobs: int
    skipped: dict[str, int]
    by_types: dict[str, int]
    projected_credits: float
    credits_at_start: float | None
    clock_skew_seconds: float | None


class WriteBack(_Model):
    """Write-back figures (ApplyReport.counts): of the latest pass, or summed over the passes since the
    latest sync that sent contacts started (what `sync --wait` reported for that cycle)."""

    runs: int
    last_run_id: int | None
    status: str | None
    started_at: datetime | None
    message: str | None
    records_written: int
    fields_written: int
    records_rejected: int
    fields_refused: int


NOTHING_WRITTEN = WriteBack(runs=0, last_run_id=None, status=None, started_at=None, message=None, records_written=0,
                            fields_written=0, records_rejected=0, fields_refused=0)  # fmt: skip


class Credits(_Model):
    """Caps are on contacts sent (`[instances.budget]`); credits are LoneScale's, at most `projected`."""

    run_sent: int | None  # the latest sync's contacts sent
    run_projected_credits: float | None
    per_run_cap: int | None
    month_sent: int  # Jobs.contacts_sent_since(the month's start): what the monthly cap counts
    monthly_cap: int | None
    balance_at_last_run: float | None  # LoneScale's balance when the latest sync that read it started


class FailureItem(_Model):
    kind: str  # failed run | stopped run | expired job | record rejected | field refused
    subject: str  # what it is about: a run, a job, a record
    reason: str
    at: datetime | None = None


class InstanceStatus(_Model):
    name: str
    crm: str
    schedule: str
    last_sync: SyncRun | None
    last_write_back: WriteBack | None  # the latest write-back pass
    # Every write-back pass since the latest sync that sent contacts started: its results, however many
    # passes wrote them (a sync that sent nothing has nothing to write back).
    this_cycle: WriteBack | None
    next_run: datetime
    cursor: datetime | None
    cursor_lag_seconds: float | None  # now - cursor: how far behind the CRM's changes the next pull starts
    clock_skew_seconds: float | None  # the latest sync's: this machine ahead (+) or behind (-) the CRM
    busy: str | None  # who holds the instance's lease now
    jobs: dict[str, int]  # Jobs.counts: jobs by state
    results_waiting: int  # Inbox.waiting_for: deliveries stored, not yet applied
    oldest_waiting: datetime | None
    unmatched_results: int  # Inbox.unmatched_results
    uncertain_jobs: int
    billed_expired_jobs: int  # expired, may have been billed
    billed_expired_contacts: int  # their contacts, kept in cooldown
    credits: Credits
    failures: list[FailureItem]  # the first LISTED of each kind, newest first
    failure_totals: dict[str, int]  # kind → how many in all
    series: Series


class StatusReport(_Model):
    generated_at: datetime
    instances: list[InstanceStatus]


def next_run(schedule: str, last: datetime | None, now: datetime) -> datetime:
    """When the daemon runs the instance next: at once with no run yet (a starting daemon runs every instance
    at once), else the schedule's first time after now, an interval kept to its grid from the last run
    (`schedules.next_time`, the daemon's own evaluation)."""
    return now if last is None else next_time(schedule, now, anchor=last)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sorted(counts: Any) -> dict[str, int]:
    """A stored count by name, keys sorted: the same JSON for the same figures."""
    return {str(k): int(v) for k, v in sorted((counts or {}).items())}


def _sync_run(row: dict[str, Any] | None) -> SyncRun | None:
    if row is None:
        return None
    counts = row["counts"] or {}
    return SyncRun(
        id=row["id"], status=row["status"], started_at=_utc(row["started_at"]),
        finished_at=aware(row["finished_at"]), message=row["error"], pulled=int(counts.get("pulled") or 0),
        sent=int(counts.get("sent") or 0), jobs=int(counts.get("jobs") or 0),
        skipped=_sorted(counts.get("skipped")), by_types=_sorted(counts.get("by_types")),
        projected_credits=float(counts.get("projected_credits") or 0.0),
        credits_at_start=counts.get("credits_at_start"), clock_skew_seconds=counts.get("clock_skew_seconds"),
    )  # fmt: skip


def _write_back(rows: list[dict[str, Any]]) -> WriteBack | None:
    """The sum of these write-back runs' counts (oldest first); the last one's id, outcome and message."""
    if not rows:
        return None
    last = rows[-1]

    def total(key: str) -> int:
        return sum(int((row["counts"] or {}).get(key) or 0) for row in rows)

    return WriteBack(
        runs=len(rows), last_run_id=last["id"], status=last["status"], started_at=aware(last["started_at"]),
        message=last["error"], records_written=total("records_written"),
        fields_written=total("fields_written"), records_rejected=total("records_rejected"),
        fields_refused=total("fields_refused"),
    )  # fmt: skip


def _failures(store: Store, name: str, last_sync: SyncRun | None, last_write: WriteBack | None,
              ) -> tuple[list[FailureItem], dict[str, int]]:  # fmt: skip
    items: list[FailureItem] = []
    totals: dict[str, int] = {}
    # Only the latest run of each kind: an earlier failure that a later run got past is history, not news.
    if last_sync is not None and last_sync.status in ("failed", "stopped", "interrupted"):
        items.append(FailureItem(kind=f"{last_sync.status} sync", subject=f"run {last_sync.id}",
                                 reason=last_sync.message or "", at=last_sync.started_at))  # fmt: skip
    if last_write is not None and last_write.status in ("failed", "interrupted"):
        items.append(FailureItem(kind=f"{last_write.status} write-back", subject=f"run {last_write.last_run_id}",
                                 reason=last_write.message or "", at=last_write.started_at))  # fmt: skip
    expired = store.jobs.find(name, [JobStatus.EXPIRED])
    totals["expired job"] = len(expired)
    items += [
        FailureItem(kind="expired job", subject=f"job {job.id} ({job.contact_count} contacts)",
                    reason=job.reason or "", at=job.updated_at)
        for job in reversed(expired[-LISTED:])
    ]  # fmt: skip
    rejected = store.jobs.contacts_with_status(name, "rejected", limit=None)
    for kind, wanted in (("record rejected", False), ("field refused", True)):
        mine = [c for c in rejected if (REFUSED_FIELD in (c.reason or "")) is wanted]
        totals[kind] = len(mine)
        items += [FailureItem(kind=kind, subject=f"record {c.record_id}", reason=c.reason or "")
                  for c in mine[:LISTED]]  # fmt: skip
    return items, {kind: n for kind, n in sorted(totals.items()) if n}


def instance_status(store: Store, config: Config, name: str, now: datetime) -> InstanceStatus:
    settings = next(s for s in config.settings.instances if s.name == name)
    last_sync = _sync_run(store.runs.latest(name, "sync"))
    writes = store.runs.recent(name, 1, kinds=WRITE_KINDS)
    last_write = _write_back(writes)
    syncs = store.runs.recent(name, 50, kinds=["sync"])
    sending = next((r for r in syncs if (r["counts"] or {}).get("sent")), None)
    cycle = None
    if sending is not None:  # its results may not have been written back yet: that is zero, not unknown
        cycle = _write_back(store.runs.since(name, WRITE_KINDS, sending["started_at"])) or NOTHING_WRITTEN
    cursor = store.cursors.get(name)
    holding = store.leases.holding(instance_lease(name))
    jobs = store.jobs.counts(name)
    waiting, oldest = store.inbox.waiting_for(name)
    billed = [(job, held) for job, held in store.jobs.holding(name, "expired")
              if (job.reason or "").startswith(MAY_HAVE_BEEN_BILLED)]  # fmt: skip
    balance = next((r["counts"].get("credits_at_start") for r in syncs
                    if (r["counts"] or {}).get("credits_at_start") is not None), None)  # fmt: skip
    failures, totals = _failures(store, name, last_sync, last_write)
    budget = settings.budget
    return InstanceStatus(
        name=name, crm=settings.crm, schedule=settings.schedule, last_sync=last_sync, last_write_back=last_write,
        this_cycle=cycle, next_run=next_run(settings.schedule, last_sync.started_at if last_sync else None, now),
        cursor=cursor.changed_at if cursor else None,
        cursor_lag_seconds=(now - cursor.changed_at).total_seconds() if cursor else None,
        clock_skew_seconds=last_sync.clock_skew_seconds if last_sync else None,
        busy=holding.describe() if holding is not None else None, jobs=dict(sorted(jobs.items())),
        results_waiting=waiting, oldest_waiting=oldest, unmatched_results=store.inbox.unmatched_results(name),
        uncertain_jobs=jobs.get(JobStatus.UNCERTAIN.value, 0), billed_expired_jobs=len(billed),
        billed_expired_contacts=sum(held for _, held in billed),
        credits=Credits(
            run_sent=last_sync.sent if last_sync else None,
            run_projected_credits=last_sync.projected_credits if last_sync else None,
            per_run_cap=budget.max_contacts_per_run, month_sent=store.jobs.contacts_sent_since(name, month_start(now)),
            monthly_cap=budget.max_contacts_per_month, balance_at_last_run=balance,
        ),
        failures=failures, failure_totals=totals, series=build_series(store, name, config.mapping(settings)),
    )  # fmt: skip


def build_status(store: Store, config: Config, now: datetime | None = None) -> StatusReport:
    """Every configured instance's status, read from the store now."""
    moment = now or datetime.now(UTC)
    return StatusReport(
        generated_at=moment,
        instances=[instance_status(store, config, s.name, moment) for s in config.settings.instances],
    )
