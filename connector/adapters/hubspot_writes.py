"""HubSpot batch updates of contacts: refusals undone record by record, and every write confirmed.

`POST /crm/v3/objects/contacts/batch/update` fails as a whole on one invalid value (400) or one email another
contact holds (409), and answers 200 or 207 otherwise (hubspot-api-python's batch_api maps 207 to a
`...WithErrors` answer without raising). An input is written when `results` lists it and refused when
`errors[].context.ids` names it. An input in neither is unknown, not written: the API reference documents
200 and 207 but not how an id it could not update (archived, merged, never there) is reported
(https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/batch/post-crm-v3-objects-contacts-batch-update),
and one community report saw a 207 with no results and no errors. Those inputs are read back, and only a
record that now holds every value sent is journaled as written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from connector.errors import RequestRejected
from connector.halving import halving
from connector.models import FieldUpdate, WriteOutcome, WriteResult
from connector.values import same_value

BATCH = 100  # batch read/update maximum
UNIQUE = "email"  # unique per portal: another contact's email is a 409 for the whole batch
EXISTING = re.compile(r"Existing ID: (\d+)")
IN_BATCH = re.compile(r"Duplicate email in batch input: (.+)$")
GONE = "the record no longer exists (archived or merged)"
NOT_LANDED = (
    "HubSpot neither confirmed nor refused this update, and reading the record back shows it did not land"
)

Update = Callable[[list[FieldUpdate]], dict[str, Any]]
Read = Callable[[Sequence[str], Sequence[str]], dict[str, Mapping[str, Any]]]


def _refused_alone(update: FieldUpdate, refusal: RequestRejected) -> WriteResult:
    return WriteResult(update.ref, WriteOutcome.REJECTED, str(refusal), "VALIDATION_ERROR")


def to_hubspot_value(value: Any) -> str:
    """HubSpot properties are strings: booleans 'true'/'false', datetimes ISO-8601 in UTC, None clears."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return str(value)


def update_request(updates: Sequence[FieldUpdate]) -> dict[str, Any]:
    return {
        "inputs": [
            {"id": u.ref.id, "properties": {k: to_hubspot_value(v) for k, v in u.values.items()}}
            for u in updates
        ]
    }


class BatchWriter:
    """Writes one batch of at most 100 updates; one result per update, in order."""

    def __init__(self, update: Update, read: Read):
        self._update = update  # one batch update call: its JSON answer, or RequestRejected for a 4xx
        self._read = read  # the adapter's read_current

    def write(self, updates: list[FieldUpdate]) -> list[WriteResult]:
        """One batch update, with HubSpot's all-or-nothing refusals undone record by record: a unique-value
        conflict (409) costs one retry without that value; any other refusal (one invalid value gets the whole
        batch a 400 that names no record) splits the batch in halves until the offending records stand alone."""
        return halving(updates, self._write_whole, _refused_alone)

    def _write_whole(self, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        """The batch as one update, a taken email given up where HubSpot says whose it is; RequestRejected
        for a refusal no record is named in."""
        refused: dict[str, dict[str, str]] = {}
        done: dict[str, WriteResult] = {}
        pending = list(updates)
        while pending:
            try:
                response = self._update(pending)
            except RequestRejected as exc:
                culprit = self._conflicting(pending, exc) if exc.status == 409 else None
                if culprit is None:
                    raise
                update = pending[culprit]
                refused.setdefault(update.ref.id, {})[UNIQUE] = str(exc)
                rest = {k: v for k, v in update.values.items() if k != UNIQUE}
                if rest:
                    pending[culprit] = FieldUpdate(update.ref, rest)
                else:
                    done[update.ref.id] = WriteResult(update.ref, WriteOutcome.REJECTED, str(exc), "CONFLICT")
                    del pending[culprit]
                continue
            done.update(self._outcomes(pending, response))
            break
        return [_with_refused(done[u.ref.id], refused.get(u.ref.id)) for u in updates]

    def _outcomes(self, sent: list[FieldUpdate], response: Mapping[str, Any]) -> dict[str, WriteResult]:
        confirmed = {str(item.get("id")) for item in _objects(response.get("results"))}
        failed: dict[str, tuple[str, str]] = {}
        for error in _objects(response.get("errors")):
            context = error.get("context")
            ids = context.get("ids") if isinstance(context, Mapping) else None
            for record_id in ids if isinstance(ids, list) else []:
                failed[str(record_id)] = (
                    str(error.get("message") or "rejected"),
                    str(error.get("category") or "ERROR"),
                )
        done: dict[str, WriteResult] = {}
        unknown: list[FieldUpdate] = []
        for u in sent:
            if u.ref.id in failed:
                done[u.ref.id] = WriteResult(u.ref, WriteOutcome.REJECTED, *failed[u.ref.id])
            elif u.ref.id in confirmed:
                done[u.ref.id] = WriteResult(u.ref, WriteOutcome.WRITTEN)
            else:
                unknown.append(u)
        if unknown:
            done.update(self._read_back(unknown))
        return done

    def _read_back(self, unknown: list[FieldUpdate]) -> dict[str, WriteResult]:
        """Inputs HubSpot neither confirmed nor refused: written only where the record now holds every value."""
        fields = sorted({name for u in unknown for name in u.values})
        current = self._read([u.ref.id for u in unknown], fields)
        done = {}
        for u in unknown:
            stored = current.get(u.ref.id)
            if stored is None:
                done[u.ref.id] = WriteResult(u.ref, WriteOutcome.REJECTED, GONE, "OBJECT_NOT_FOUND")
            elif all(_landed(value, stored.get(name)) for name, value in u.values.items()):
                done[u.ref.id] = WriteResult(u.ref, WriteOutcome.WRITTEN)
            else:
                done[u.ref.id] = WriteResult(u.ref, WriteOutcome.REJECTED, NOT_LANDED, "UNCONFIRMED")
        return done

    def _conflicting(self, updates: list[FieldUpdate], exc: RequestRejected) -> int | None:
        """Which update holds the unique value a 409 is about. HubSpot names the contact that owns it
        (`Contact already exists. Existing ID: 123`, https://github.com/HubSpot/hubspot-api-python/issues/51),
        not the update: with one candidate that is enough, otherwise one read of the owner's email tells.
        None: unknown, split instead."""
        message = str(exc)
        values = {i: str(u.values[UNIQUE]).lower() for i, u in enumerate(updates) if u.values.get(UNIQUE)}
        duplicate = IN_BATCH.search(message)
        if duplicate:  # two updates in the batch carry one value: the later ones give it up
            value = duplicate.group(1).strip().lower()
            holders = [i for i, v in values.items() if v == value]
            return holders[-1] if len(holders) > 1 else None
        owner = EXISTING.search(message)
        if owner is None or owner.group(1) in {updates[i].ref.id for i in values}:
            return None  # the owner is changing its own email in this batch: too tangled to guess
        if len(values) == 1:
            return next(iter(values))
        held = self._read([owner.group(1)], [UNIQUE]).get(owner.group(1), {}).get(UNIQUE)
        matches = [i for i, v in values.items() if held and v == str(held).lower()]
        return matches[0] if matches else None


def _landed(sent: Any, stored: Any) -> bool:
    """Whether HubSpot holds what was sent, compared as HubSpot stores it: as a string, "" for cleared."""
    text = to_hubspot_value(sent)
    if text == "" or stored in (None, ""):
        return text == "" and stored in (None, "")
    return same_value(text, stored)


def _objects(value: Any) -> list[Mapping[str, Any]]:
    """The objects of a JSON list; anything else reads as none, and leaves its inputs to the read-back."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _with_refused(result: WriteResult, refused: dict[str, str] | None) -> WriteResult:
    if not refused or result.outcome is not WriteOutcome.WRITTEN:
        return result
    return WriteResult(result.ref, result.outcome, refused_fields={**result.refused_fields, **refused})
