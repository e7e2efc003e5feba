"""The pull side of a cycle (docs/architecture.md#the-sync-cycle): pull, map, select, store jobs, trigger.

Nothing is paid twice. What a record is sent for is chosen in `connector.selection` (only the types it
still needs, outside their cooldowns); caps on contacts per run and per month, and the credit balance, stop
a run cleanly. A job row exists before LoneScale is called, and a trigger is posted again only when it
provably never reached LoneScale (connector.sender); the posts go on a thread of their own while the pull
goes on (connector.send_ahead). The cursor moves only once the whole window is stored (`connector.window`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from connector.adapters.base import Window
from connector.batching import Batch, Batcher
from connector.checks import CannotWrite, preflight
from connector.config import LoneScaleSettings
from connector.errors import Busy, ConnectorError, QuotaExhausted
from connector.fencing import fenced
from connector.inbox import echo_seen
from connector.logs import log_context
from connector.lonescale import LoneScaleClient
from connector.mapping import Mapped, to_contact
from connector.models import CrmRecord, EnrichmentType
from connector.readahead import ReadAhead
from connector.retry import call_with_retry
from connector.selection import allowance as budget_allowance
from connector.selection import select_types
from connector.send_ahead import SendAhead
from connector.sender import JOB_DEADLINE, CapReached, Sender, StopSending
from connector.store import Cursor, Lease, Store, instance_lease
from connector.sync_report import EACH_JOB_ID, SyncReport, custom_shown
from connector.window import Claims, FirstSight, cursor_end, window_for
from connector.wiring import Instance

# Re-exported: what callers and tests have always imported from here.
__all__ = ["EACH_JOB_ID", "JOB_DEADLINE", "CapReached", "Sender", "StopSending", "SyncReport", "custom_shown",
           "pull_and_trigger"]  # fmt: skip
log = logging.getLogger(__name__)
CHUNK = 500  # records looked up in the store at once
Send = Callable[[Sequence[EnrichmentType], Batch], None]


def _triage(
    instance: Instance,
    configured: Sequence[EnrichmentType],
    record: CrmRecord,
    history: Mapping[str, Any],
    now: datetime,
    report: SyncReport,
) -> tuple[tuple[EnrichmentType, ...], Mapped] | None:
    """Map one record and choose its types; None (with the reason counted) when it is not to be sent."""
    outcome = to_contact(instance.mapping, record)
    if not isinstance(outcome, Mapped):
        report.skipped[outcome.reason] += 1
        return None
    report.dropped.update(outcome.dropped)
    types, reason = select_types(configured, instance.mapping, record, history, instance.settings.budget, now)
    if reason:
        report.skipped[reason] += 1
        return None
    return tuple(types), outcome


def pull_and_trigger(
    instance: Instance,
    store: Store,
    lonescale: LoneScaleClient,
    settings: LoneScaleSettings,
    webhook_base: str,
    *,
    dry_run: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    progress: Callable[[SyncReport], None] | None = None,
    wait_for_lease: float = 0.0,
) -> SyncReport:
    """One cycle's pull side, under the instance's lease: another process syncing or writing back the same
    instance makes this a `busy` report, nothing done, once `wait_for_lease` seconds have passed. A dry run
    reads the CRM and LoneScale's balance and changes nothing anywhere."""
    lease = None
    if not dry_run:
        try:
            lease = store.leases.acquire(instance_lease(instance.name), "sync", wait=wait_for_lease)
        except Busy as exc:
            log.warning("%s: sync not started: %s", instance.name, exc)
            return SyncReport(instance.name, 0, status="busy", message=str(exc))
    try:
        # Every CRM call of the sync checks the lease first (connector/fencing.py), reads included.
        with log_context(instance=instance.name), fenced(lease.check if lease is not None else None):
            return _pull_and_trigger(instance, store, lonescale, settings, webhook_base, lease, now, progress)
    finally:
        if lease is not None:
            lease.release()


def _send_window(instance: Instance, store: Store, settings: LoneScaleSettings, window: Window,
                 started: datetime, sender: Sender, send: Send,
                 progress: Callable[[SyncReport], None] | None) -> None:  # fmt: skip
    """Pull the window chunk by chunk, triage each record, and hand full batches to `send` as they fill; then
    the rest."""
    report, lease = sender.report, sender.lease
    batcher = Batcher(settings.batch_size, echoed=settings.assume_custom_echoed or echo_seen(store))
    claims, once = Claims(batcher.waiting), FirstSight()
    instance.adapter.server_clock.start(sender.now)
    # The field the CRM keeps unique (HubSpot's email) is read too, and each chunk's values go to the store's
    # index of who holds which, so the write-back can leave out a found email another contact holds
    # (connector/apply_unique.py). A dry run changes nothing, the index included.
    unique, fields = instance.adapter.unique_field, instance.mapping.read_fields()
    if unique and unique not in fields:
        fields = [*fields, unique]
    records = instance.adapter.pull_changed(window, fields)
    for chunk in ReadAhead(records, CHUNK, name=f"pull-{instance.name}"):
        if lease is not None:
            lease.renew()
            if unique:
                store.emails.seen(instance.name, {r.ref.id: r.get(unique) for r in chunk})
        histories = store.ledger.states(instance.name, [r.ref.id for r in chunk])
        claims.new_chunk()
        for record in chunk:
            if not once.first(record):
                continue
            report.pulled += 1
            history = (histories.get(record.ref.id) or {}).get("types") or {}
            triaged = _triage(instance, settings.enrichment_type, record, history, started, report)
            if triaged is None:
                continue
            if not claims.take(record.ref.id):
                report.skipped["read again: changed during this pull"] += 1
                continue
            key, outcome = triaged
            ready = batcher.add(key, record, outcome)
            if ready is not None:
                send(key, ready)
        if progress:
            progress(report)
    for key, batch in batcher.rest():
        send(key, batch)


def _pull_and_trigger(instance: Instance, store: Store, lonescale: LoneScaleClient, settings: LoneScaleSettings,
                      webhook_base: str, lease: Lease | None, now: Callable[[], datetime],
                      progress: Callable[[SyncReport], None] | None) -> SyncReport:  # fmt: skip
    dry_run = lease is None
    report = SyncReport(
        instance.name, 0 if dry_run else store.runs.start(instance.name, "sync"), dry_run=dry_run
    )
    with log_context(run_id=report.run_id or None):
        return _run_window(instance, store, lonescale, settings, webhook_base, lease, now, progress, report)


def _run_window(instance: Instance, store: Store, lonescale: LoneScaleClient, settings: LoneScaleSettings,
                webhook_base: str, lease: Lease | None, now: Callable[[], datetime],
                progress: Callable[[SyncReport], None] | None, report: SyncReport) -> SyncReport:  # fmt: skip
    dry_run = lease is None
    started = now()
    allowance = budget_allowance(instance, store.jobs, started)
    sender = Sender(instance, store, lonescale, settings, webhook_base, report, now, allowance, lease)
    window = report.window = window_for(instance, store.cursors, started)
    try:
        preflight(instance)  # before anything is spent: every field the results go to can take them
        report.credits_at_start = call_with_retry(
            lonescale.credits, what="LoneScale credits", policy=lonescale.retry_policy
        ).enrichment
        if report.credits_at_start <= 0:
            raise QuotaExhausted("LoneScale has no enrichment credits left: nothing was sent")
        if sender.allowance <= 0:
            cap = instance.settings.budget.max_contacts_per_month
            raise CapReached(f"the monthly cap of {cap} contacts is already reached")
        if dry_run:  # nothing is posted: counted in turn
            _send_window(instance, store, settings, window, started, sender, sender.send, progress)
        else:  # posted on a thread of their own while the pull goes on; every send has ended past this block
            with SendAhead(sender, name=f"send-{instance.name}") as ahead:
                _send_window(instance, store, settings, window, started, sender, ahead.send, progress)
        sender.settle(stopped=False)
        report.cursor, report.clock_skew = cursor_end(instance, window)
        if lease is not None:  # the whole window is stored: the cursor moves, while the lease is still ours
            store.cursors.set(instance.name, Cursor(report.cursor), fence=lease.fence)
        report.status = "succeeded"
    except (CannotWrite, QuotaExhausted, CapReached, StopSending) as exc:
        report.status, report.message = "stopped", str(exc)
        report.at_budget = isinstance(exc, QuotaExhausted | CapReached)
        sender.settle(stopped=True)
        log.warning("%s: stopped, cursor kept for the next run: %s", instance.name, exc)
    except ConnectorError as exc:
        report.status, report.message = "failed", str(exc)
        sender.settle(stopped=True)
        log.error("%s: sync failed, cursor kept for the next run: %s", instance.name, exc)
    finally:
        if report.status == "running":  # an unexpected exception is on its way up
            report.status = "failed"
        if not dry_run:
            store.runs.finish(report.run_id, report.status, report.counts(), report.message)
        if progress:
            progress(report)
    return report
