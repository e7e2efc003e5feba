"""Plan a pass's writes: each record's results judged by the mapping's policies against its current values.

Current CRM values are read just before writing, so `fill_empty` and `overwrite_if_unchanged` judge the record
as it is now, not as it was at pull time. A run of passes reads the next pass's records while this one writes
(connector/apply_ahead.py), never those this one may write: what it hands in was read after our own last write
to each record. A dry run plans the same way and lists every decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from connector.apply_report import ApplyReport, PlannedField, jsonable
from connector.inbox import Pending
from connector.mapping import Decision, WritePolicy, plan_writes
from connector.merging import RecordResults
from connector.models import FieldUpdate, FollowUp, RecordRef
from connector.store import Journal
from connector.values import same_value
from connector.wiring import Instance

OWNER_TASK = "(owner task)"  # how a job-change follow-up shows in dry runs and in the journal


@dataclass
class Plan:
    """One instance's writes in a pass: the updates to send with the values they replace, and the records
    that need no call (gone, or nothing to change)."""

    records: dict[str, RecordResults]  # each record's results in this pass, merged by type
    updates: list[FieldUpdate] = field(default_factory=list)
    before: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    gone: list[RecordResults] = field(default_factory=list)
    unchanged: list[RecordResults] = field(
        default_factory=list
    )  # results that change nothing on their record
    follow_ups: dict[str, FollowUp] = field(default_factory=dict)  # record id → its owner's to-do
    # Record id → why its unique value (HubSpot's email) is left out: another record holds it now
    # (connector/apply_unique.py). Its other values are still written.
    taken: dict[str, str] = field(default_factory=dict)


def _follow_up(
    instance: Instance, item: Pending, current: Mapping[str, Any], now: datetime
) -> FollowUp | None:
    """A task for the owner when LoneScale reports a job change we had not flagged yet (a replay makes none)."""
    settings, flag = instance.mapping.job_change, instance.mapping.status.job_change
    if not (settings.follow_up and item.result.job_change_detected):
        return None
    if flag and same_value(current.get(flag), True):
        return None
    sent, values = item.contact.sent, item.result.values
    owner = current.get(settings.owner_field) if settings.owner_field else None
    return FollowUp(
        RecordRef(instance.name, item.contact.object, item.contact.record_id),
        settings.render(settings.subject, sent, values),
        settings.render(settings.body, sent, values),
        str(owner) if owner else None,
        (now + timedelta(days=settings.due_in_days)).date(),
    )


def _ours(instance: Instance, journal: Journal, record_ids: list[str]) -> dict[str, dict[str, Any]]:
    """What we last wrote to the fields `overwrite_if_unchanged` may replace (nothing to read otherwise)."""
    fields = [r.field for r in instance.mapping.write_back if r.policy is WritePolicy.OVERWRITE_IF_UNCHANGED]
    return journal.last_written(instance.name, record_ids, fields) if fields and record_ids else {}


# Record id → its current values as read ahead, or None: it no longer exists (a read leaves such ids out).
Known = Mapping[str, Mapping[str, Any] | None]


def read_fields(instance: Instance) -> list[str]:
    """What planning reads of each record: the fields it may write, and the owner a follow-up goes to."""
    owner = instance.mapping.job_change.owner_field if instance.mapping.job_change.follow_up else None
    return [*instance.mapping.write_fields(), *([owner] if owner else [])]


def read_known(instance: Instance, ids: list[str]) -> dict[str, Mapping[str, Any] | None]:
    """`ids`' current values as planning reads them, each id answered (None: gone)."""
    current = instance.adapter.read_current(ids, read_fields(instance)) if ids else {}
    return {rid: current.get(rid) for rid in ids}


def plan_records(instance: Instance, journal: Journal, records: dict[str, RecordResults], report: ApplyReport,
                 now: datetime, dry_run: bool, known: Known | None = None) -> Plan:  # fmt: skip
    """`known`: current values read ahead for some of the records; the others are read now."""
    plan = Plan(records)
    known = known or {}
    read = read_known(instance, [rid for rid in records if rid not in known])
    current = {
        rid: values
        for rid, values in (*known.items(), *read.items())
        if values is not None and rid in records
    }
    ours = _ours(instance, journal, [rid for rid in records if rid in current])
    for record_id, record in records.items():
        item = record.merged
        if record_id not in current:
            plan.gone.append(record)
            continue
        if not item.result.found:
            report.not_found += 1
        decisions = plan_writes(
            instance.mapping, item.result, current[record_id], ours.get(record_id, {}), now
        )
        follow_up = _follow_up(instance, item, current[record_id], now)
        if follow_up:
            plan.follow_ups[record_id] = follow_up
            decisions.append(Decision(OWNER_TASK, None, follow_up.subject, True, "job change detected"))
        report.kept_by_policy.update(
            d.reason for d in decisions if not d.write and d.reason != "status unchanged"
        )
        if dry_run:
            report.planned += [
                PlannedField(instance.name, record_id, d.field, jsonable(d.current), jsonable(d.proposed), d.write,
                             d.reason, item.job.id)
                for d in decisions
            ]  # fmt: skip
        values = {d.field: d.proposed for d in decisions if d.write and d.field != OWNER_TASK}
        if not values:  # nothing to say: no API call
            plan.unchanged.append(record)
            continue
        plan.before[record_id] = current[record_id]
        plan.updates.append(FieldUpdate(RecordRef(instance.name, item.contact.object, record_id), values))
    return plan
