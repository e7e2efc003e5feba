"""Write a planned pass: journal ahead, write, then settle journal, cooldowns and contacts together.

Every field we write, or try to, is journaled with its old value before the call; a crash in between leaves
`pending` rows, which `resolve_pending` settles against the CRM on the next pass.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from connector.apply_plan import OWNER_TASK, Plan
from connector.apply_report import GONE, REFUSED_FIELD, ApplyReport, jsonable, reason_code
from connector.apply_unique import merged, remember_written, to_send
from connector.errors import ConnectorError
from connector.fencing import fenced
from connector.merging import RecordResults
from connector.models import WriteOutcome
from connector.store import Emails, Fence, Journal, JournalEntry, Lease
from connector.values import same_value
from connector.wiring import Instance

log = logging.getLogger(__name__)


Marks = dict[tuple[str, str, str | None], list[str]]  # (job, contact status, reason) → record ids


def _mark(marks: Marks, record: RecordResults, status: str, reason: str | None) -> None:
    """Every job whose result the record's writes used gets the outcome; the others were superseded."""
    for item in record.contributors:
        marks[(item.job.id, status, reason)].append(record.record_id)
    for item in record.superseded:
        marks[(item.job.id, "superseded", "a later result of the same type replaced it")].append(
            record.record_id
        )


def write_plan(instance: Instance, journal: Journal, plan: Plan, run_id: int, report: ApplyReport,
               lease: Lease | None, emails: Emails | None = None) -> None:  # fmt: skip
    """Journal ahead, write, then settle journal, cooldowns and contacts in one transaction: a crash in
    between leaves `pending` journal rows, which the next pass confirms against the CRM. A unique value
    another record holds (`plan.taken`) is journaled like the rest and refused without being sent; what we
    wrote of it goes to `emails`, the index of who holds which."""
    result_of = {rule.field: rule.result for rule in instance.mapping.write_back}
    ahead = [
        JournalEntry(run_id, plan.records[u.ref.id].job_for(result_of.get(name, "")), instance.name, u.ref.id,
                     name, jsonable(plan.before[u.ref.id].get(name)), jsonable(value), "pending")
        for u in plan.updates
        for name, value in u.values.items()
    ]  # fmt: skip
    fence = lease.fence if lease is not None else None
    ids = iter(journal.add(ahead, fence))
    # Fencing: each CRM batch renews the lease first, and the settlement commits only while it is ours, so a
    # holder that froze and lost it writes no batch more and records nothing (its pending rows are resolved
    # by the new holder against the CRM).
    sending = to_send(instance, plan)
    with fenced(lease.check if lease is not None else None):
        answers = instance.adapter.write_back(sending) if sending else []
    results = merged(instance, plan, answers)
    outcomes: dict[int, tuple[str, str | None]] = {}
    marks: Marks = defaultdict(list)
    written: set[str] = set()
    for update, outcome in zip(plan.updates, results, strict=True):
        record, ok = plan.records[update.ref.id], outcome.outcome is WriteOutcome.WRITTEN
        refused = outcome.refused_fields if ok else {}
        for name in update.values:
            if name in refused:
                outcomes[next(ids)] = ("rejected", refused[name])
            else:
                outcomes[next(ids)] = ("written", None) if ok else ("rejected", outcome.reason)
        if ok:
            written.add(update.ref.id)
            report.records_written += 1
            report.fields_written += len(update.values) - len(refused)
            if refused:  # the rest is written; the record is listed with what was refused, and why
                reason = "; ".join(f"{name}{REFUSED_FIELD}{why}" for name, why in refused.items())
                report.fields_refused += len(refused)
                report.refused_by_code.update(reason_code(why) for why in refused.values())
                report.refusals.append((update.ref.id, reason))
                _mark(marks, record, "rejected", reason)
            else:
                _mark(marks, record, "applied", None)
        else:
            report.records_rejected += 1
            report.rejected_by_code[outcome.code or reason_code(outcome.reason)] += 1
            report.rejections.append((update.ref.id, outcome.reason or "rejected"))
            _mark(marks, record, "rejected", outcome.reason)
    for record in plan.unchanged:
        _mark(marks, record, "applied", "nothing to change")
    for record in plan.gone:
        report.records_rejected += 1
        report.rejected_by_code[GONE] += 1
        report.rejections.append((record.record_id, "the record no longer exists (deleted or merged)"))
        _mark(marks, record, "rejected", "record no longer exists")
    with fenced(lease.check if lease is not None else None):
        outcomes.update(_create_follow_ups(instance, journal, plan, written, run_id, fence))
    found = {rid: record.found for rid, record in plan.records.items()}
    journal.settle(instance.name, outcomes, found, marks, fence=fence)
    if emails is not None:
        remember_written(instance, emails, plan.updates, results)


def _create_follow_ups(instance: Instance, journal: Journal, plan: Plan, written: set[str],
                       run_id: int, fence: Fence | None) -> dict[int, tuple[str, str | None]]:  # fmt: skip
    """Owner tasks for the records whose job-change flag was just written, journaled ahead like fields."""
    todo = [f for rid, f in plan.follow_ups.items() if rid in written]
    if not todo:
        return {}
    ids = journal.add([JournalEntry(run_id, plan.records[f.ref.id].merged.job.id, instance.name, f.ref.id, OWNER_TASK,
                                      None, f.subject, "pending") for f in todo], fence)  # fmt: skip
    try:
        outcomes = instance.adapter.create_follow_ups(todo)
    except ConnectorError as exc:  # e.g. a timed-out create: never re-posted, so whether it exists is unknown
        log.warning(
            "%s: owner tasks not confirmed (%s); check the CRM before creating them by hand",
            instance.name,
            exc,
        )
        return dict.fromkeys(ids, ("unknown", str(exc)))
    return {
        entry: ("written", None) if o.outcome is WriteOutcome.WRITTEN else ("rejected", o.reason)
        for entry, o in zip(ids, outcomes, strict=True)
    }


def resolve_pending(instance: Instance, journal: Journal) -> int:
    """Journal rows a crash left `pending`: kept as written where the CRM holds the value, else dropped (the
    write never landed; its contact is still waiting and is planned again). Owner tasks cannot be checked."""
    pending = journal.pending(instance.name)
    if not pending:
        return 0
    fields = sorted({e.field for e in pending if e.field != OWNER_TASK})
    current = instance.adapter.read_current(sorted({e.record_id for e in pending}), fields) if fields else {}
    outcomes: dict[int, tuple[str, str | None]] = {}
    drop: list[int] = []
    for entry in pending:
        assert entry.id is not None
        value = current.get(entry.record_id, {}).get(entry.field)
        if entry.field == OWNER_TASK:
            outcomes[entry.id] = ("unknown", "the daemon stopped while creating it: check the CRM")
        elif entry.record_id in current and same_value(value, entry.new_value):
            outcomes[entry.id] = ("written", "confirmed after a restart")
        else:
            drop.append(entry.id)
    journal.settle(instance.name, outcomes, {}, {}, drop)
    log.info("%s: %d write(s) left pending by a stop: %d confirmed, %d never landed",
             instance.name, len(pending), len(outcomes), len(drop))  # fmt: skip
    return len(pending)
