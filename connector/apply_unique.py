"""A found value another record holds, left out before it costs a call: HubSpot keeps a contact's email unique
per portal and answers a batch update carrying another contact's email with a 409 for the whole batch.

The refusal used to cost two calls more per batch (the owner's email read to tell which input, then the
batch again without it: connector/adapters/hubspot_writes.py). The store's index of who holds which email
(connector.store.emails, fed by every pull, by the current values read before writing, and by our own
writes) names the likely holders first. It is a hint: a person may have changed the holder since, so the
holders are read from the CRM in one call before any write is refused, and only a record that holds the value
now refuses it. Two records of one pass given the same value: the first keeps it. What the index does not
know still meets the CRM's 409, which stays the safety net.

Refused here, a value is journaled `rejected` with the reason the CRM's 409 gives (same code, same holder), and
the rest of its record is written as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from connector.apply_plan import Plan
from connector.apply_report import ApplyReport
from connector.models import FieldUpdate, WriteOutcome, WriteResult
from connector.store import Emails
from connector.store.emails import key
from connector.wiring import Instance

# As the CRM's own refusal reads (connector/adapters/hubspot_calls.py), so the journal, the reports and
# /metrics count it alike (code CONFLICT), and said to be ours.
REASON = "refused (409 CONFLICT) before sending: Contact already exists. Existing ID: {holder}"
CODE = "CONFLICT"


def find_taken(instance: Instance, emails: Emails, plan: Plan, report: ApplyReport, dry_run: bool) -> None:
    """Fill `plan.taken`: record id → why its planned unique value is left out (another record holds it now).
    Costs one read of the suspected holders when the index names any; a dry run shows the refusals and
    changes nothing, the index included."""
    unique = instance.adapter.unique_field
    if not unique:
        return
    wanted = {u.ref.id: k for u in plan.updates if (k := key(u.values.get(unique))) is not None}
    # What was just read of the records themselves is a sight of their emails too.
    sights: dict[str, Any] = {
        rid: plan.before[rid].get(unique) for rid in wanted if unique in plan.before[rid]
    }
    holders = emails.holders(instance.name, [u.values[unique] for u in plan.updates if u.ref.id in wanted])
    suspects = {rid: holders[k] for rid, k in wanted.items() if holders.get(k, rid) != rid}
    if suspects:
        now_held = instance.adapter.read_current(sorted(set(suspects.values())), [unique])
        sights |= {holder: now_held.get(holder, {}).get(unique) for holder in suspects.values()}  # gone: none
        plan.taken = {
            rid: REASON.format(holder=holder)
            for rid, holder in suspects.items()
            if key(now_held.get(holder, {}).get(unique)) == wanted[rid]
        }
    _within_pass(wanted, plan)
    if dry_run:
        report.planned = [
            replace(p, write=False, reason=plan.taken[p.record_id])
            if p.field == unique and p.write and p.record_id in plan.taken and p.instance == instance.name
            else p
            for p in report.planned
        ]
    elif sights:
        emails.seen(instance.name, sights)


def _within_pass(wanted: dict[str, str], plan: Plan) -> None:
    """Two records of one pass found the same value (LoneScale gives twins that hold no email yet one mailbox):
    the first in the pass keeps it; once it is written, the CRM would refuse each other's batch (409), and
    within one batch the duplicate too. Refused here with the reason the CRM would give, naming the first."""
    first: dict[str, str] = {}
    for rid, value in wanted.items():
        if rid in plan.taken:
            continue
        if value in first:
            plan.taken[rid] = REASON.format(holder=first[value])
        else:
            first[value] = rid


def to_send(instance: Instance, plan: Plan) -> list[FieldUpdate]:
    """The planned updates as they go to the CRM: without a taken value, and none left with nothing to write."""
    unique = instance.adapter.unique_field
    sent = []
    for update in plan.updates:
        if update.ref.id not in plan.taken:
            sent.append(update)
            continue
        rest = {name: value for name, value in update.values.items() if name != unique}
        if rest:
            sent.append(FieldUpdate(update.ref, rest))
    return sent


def merged(instance: Instance, plan: Plan, results: Sequence[WriteResult]) -> list[WriteResult]:
    """One result per planned update, in order, from the CRM's results for what was sent: a taken value
    refused in its record's result, as the CRM's 409 path reports it (connector/adapters/hubspot_writes.py)."""
    unique = instance.adapter.unique_field
    answered = iter(results)
    out = []
    for update in plan.updates:
        reason = plan.taken.get(update.ref.id)
        if reason is None:
            out.append(next(answered))
        elif set(update.values) <= {unique}:  # nothing else to write: rejected whole, and no call
            out.append(WriteResult(update.ref, WriteOutcome.REJECTED, reason, CODE))
        else:
            result = next(answered)
            if result.outcome is WriteOutcome.WRITTEN and unique is not None:
                result = replace(result, refused_fields={**result.refused_fields, unique: reason})
            out.append(result)
    return out


def remember_written(instance: Instance, emails: Emails, updates: Sequence[FieldUpdate],
                     results: Sequence[WriteResult]) -> None:  # fmt: skip
    """Our own writes of the unique value, now held by their records. After the write's settlement, not in
    it: an index row lost to a crash between the two is learnt again from the next pull (our write moves
    the record's modification date), and the CRM's 409 covers the time between."""
    unique = instance.adapter.unique_field
    if not unique:
        return
    held = {
        update.ref.id: update.values[unique]
        for update, result in zip(updates, results, strict=True)
        if unique in update.values
        and result.outcome is WriteOutcome.WRITTEN
        and unique not in result.refused_fields
    }
    if held:
        emails.seen(instance.name, held)
