"""Job-change follow-ups as HubSpot notes, created associated to the contact and owned by its owner.

Notes have no subject and no due date: both go into the HTML body. `hs_timestamp` (when the note sits on the
timeline) is the creation time. The association type is HUBSPOT_DEFINED 202, note_to_contact. Each input
carries an `objectWriteTraceId` (its position) so that a multi-status (207) answer can name the inputs that
failed: batch results are not documented to come back in input order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from hubspot.crm.objects.notes import (
    AssociationSpec,
    BatchInputSimplePublicObjectBatchInputForCreate,
    PublicAssociationsForObject,
    PublicObjectId,
    SimplePublicObjectBatchInputForCreate,
)

from connector.models import FollowUp, WriteOutcome, WriteResult

NOTE_TO_CONTACT = 202
NOTE_BATCH = 100  # batch create takes 100 inputs (docs/hubspot.md#batch-endpoints)
CONTACTS = "contacts"


def not_a_contact(follow_up: FollowUp) -> WriteResult | None:
    """The refusal for a follow-up on anything but a contact (the note_to_contact type is all we send)."""
    if follow_up.ref.object == CONTACTS:
        return None
    reason = f"follow-up notes are associated to contacts, not {follow_up.ref.object}"
    return WriteResult(follow_up.ref, WriteOutcome.REJECTED, reason, "UNSUPPORTED_OBJECT")


def notes_request(
    batch: Sequence[FollowUp], now: datetime
) -> BatchInputSimplePublicObjectBatchInputForCreate:
    inputs = [note_input(follow_up, str(index), now) for index, follow_up in enumerate(batch)]
    return BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs)


def outcomes(batch: Sequence[FollowUp], response: Mapping[str, Any]) -> list[WriteResult]:
    """201: every note made. 207: the errors name their inputs by objectWriteTraceId; the rest were made.
    An answer that accounts for fewer notes than were asked is not trusted (ValueError): some may exist."""
    failed: dict[str, tuple[str, str]] = {}
    for error in response.get("errors") or []:
        for trace in (error.get("context") or {}).get("objectWriteTraceId", []):
            failed[str(trace)] = (str(error.get("message")), str(error.get("category")))
    made = response.get("results")
    if not isinstance(made, list) or len(made) + len(failed) != len(batch):
        raise ValueError(
            f"{len(batch)} notes asked, the answer accounts for {made!r:.100} and {len(failed)} refused"
        )
    return [
        WriteResult(f.ref, WriteOutcome.REJECTED, *failed[str(index)])
        if str(index) in failed
        else WriteResult(f.ref, WriteOutcome.WRITTEN)
        for index, f in enumerate(batch)
    ]


def note_input(follow_up: FollowUp, trace_id: str, now: datetime) -> SimplePublicObjectBatchInputForCreate:
    properties = {
        "hs_note_body": note_body(follow_up),
        "hs_timestamp": now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    if follow_up.owner_id:
        properties["hubspot_owner_id"] = follow_up.owner_id
    association = PublicAssociationsForObject(
        to=PublicObjectId(id=follow_up.ref.id),
        types=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=NOTE_TO_CONTACT)],
    )
    return SimplePublicObjectBatchInputForCreate(
        properties=properties, associations=[association], object_write_trace_id=trace_id
    )


def note_body(follow_up: FollowUp) -> str:
    """`hs_note_body` is HTML: the subject in bold, the body's lines as paragraphs, then the due date."""
    parts = [f"<p><strong>{escape(follow_up.subject)}</strong></p>"]
    parts += [f"<p>{escape(line)}</p>" for line in follow_up.body.splitlines() if line.strip()]
    if follow_up.due is not None:
        parts.append(f"<p>Follow up by {follow_up.due.isoformat()}</p>")
    return "".join(parts)
