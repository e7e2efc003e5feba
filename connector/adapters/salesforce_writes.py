"""Salesforce record updates in rounds: one refused field costs that field, not the record.

`PATCH composite/sobjects` answers 200 with one SaveResult per record, in order; a failed one carries
`errors[]` of `{statusCode, message, fields}` (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_update.htm).
Each round sends what is pending, 200 records a call. After it:
- UNABLE_TO_LOCK_ROW: sent again in the next round, as is (the lock clears on retry);
- errors that name only fields the record sends (STRING_TOO_LONG, INVALID_EMAIL_ADDRESS,
  INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST, FIELD_INTEGRITY_EXCEPTION, a validation rule shown on its field):
  those fields are refused with Salesforce's reason and the rest goes again in the next round;
- anything else (no `fields`, as a validation rule shown at the top of the page answers, or a field the
  record does not send): the record is rejected with Salesforce's reason.
Values the describe already says cannot fit are kept back before the first round (salesforce_values.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connector.adapters.base import two_at_a_time
from connector.fencing import guarded
from connector.models import FieldUpdate, RecordRef, WriteOutcome, WriteResult

log = logging.getLogger(__name__)

WRITE_BATCH = 200  # composite/sobjects takes 200 records
LOCKED = "UNABLE_TO_LOCK_ROW"

SendBatch = Callable[[list[FieldUpdate]], list[Mapping[str, Any]]]
Check = Callable[[Mapping[str, Any]], tuple[dict[str, Any], dict[str, str]]]


@dataclass(frozen=True)
class Failure:
    """A failed SaveResult: the first error's code, every error's `code: message`, and, when every error
    names fields, each named field (lower-case, as field names are case-insensitive) with its reason."""

    code: str
    reason: str
    by_field: dict[str, str] | None

    @classmethod
    def of(cls, item: Mapping[str, Any]) -> Failure:
        errors = [e for e in item.get("errors") or [] if isinstance(e, Mapping)] or [{}]
        # Per-record errors say `statusCode` where single-record errors say `errorCode`.
        codes = [str(e.get("statusCode") or e.get("errorCode") or "UNKNOWN") for e in errors]
        texts = [f"{code}: {e.get('message', '')}" for code, e in zip(codes, errors, strict=True)]
        by_field: dict[str, str] = {}
        for error, text in zip(errors, texts, strict=True):
            names = [str(name).lower() for name in error.get("fields") or []]
            if not names:
                return cls(codes[0], "; ".join(texts), None)
            for name in names:
                by_field[name] = f"{by_field[name]}; {text}" if name in by_field else text
        return cls(codes[0], "; ".join(texts), by_field)

    def fields_in(self, values: Mapping[str, Any]) -> dict[str, str] | None:
        """The refused fields, as `values` names them, with their reasons; None when the errors do not
        come down to fields this record sends."""
        if not self.by_field:
            return None
        named = {key: self.by_field[key.lower()] for key in values if key.lower() in self.by_field}
        return named if len({key.lower() for key in named}) == len(self.by_field) else None


def save_result(ref: RecordRef, item: Mapping[str, Any]) -> WriteResult:
    """One SaveResult as a whole: written, locked (RETRY) or rejected with Salesforce's reason."""
    if item.get("success"):
        return WriteResult(ref, WriteOutcome.WRITTEN)
    failure = Failure.of(item)
    outcome = WriteOutcome.LOCKED if failure.code == LOCKED else WriteOutcome.REJECTED
    return WriteResult(ref, outcome, failure.reason, failure.code)


def write_in_rounds(
    updates: Sequence[FieldUpdate], send_batch: SendBatch, check: Check, rounds: int
) -> list[WriteResult]:
    """One result per update, in order; never raises for one record's refusal."""
    refused: dict[RecordRef, dict[str, str]] = {}
    results: dict[RecordRef, WriteResult] = {}
    pending: list[FieldUpdate] = []
    for update in updates:
        fit, kept_back = check(update.values)
        refused[update.ref] = kept_back
        if fit:
            pending.append(FieldUpdate(update.ref, fit))
        else:
            results[update.ref] = _rejected(update.ref, kept_back, None)
    for round_number in range(1, rounds + 1):
        again: list[FieldUpdate] = []
        for update, item in zip(pending, _send(send_batch, pending), strict=True):
            ref, last = update.ref, round_number == rounds
            if item.get("success"):
                results[ref] = WriteResult(ref, WriteOutcome.WRITTEN, refused_fields=refused[ref])
                continue
            failure = Failure.of(item)
            if failure.code == LOCKED and not last:
                again.append(update)
                continue
            named = failure.fields_in(update.values)
            if named is not None:
                refused[ref].update(named)
                rest = {k: v for k, v in update.values.items() if k not in named}
                if not rest:
                    results[ref] = _rejected(ref, refused[ref], failure.code)
                    continue
                if not last:
                    again.append(FieldUpdate(ref, rest))
                    continue
            reasons = list(dict.fromkeys(refused[ref].values()))
            if named is None:
                reasons.append(failure.reason)
            outcome = WriteOutcome.LOCKED if failure.code == LOCKED else WriteOutcome.REJECTED
            results[ref] = WriteResult(ref, outcome, "; ".join(reasons), failure.code)
        if not again:
            break
        log.info("Salesforce: %d record(s) locked or with refused fields; sending them again", len(again))
        pending = again
    return [results[update.ref] for update in updates]


def _rejected(ref: RecordRef, refused: Mapping[str, str], code: str | None) -> WriteResult:
    """Nothing left to write: every field this record would change was refused."""
    first = next(iter(refused.values()), "")
    reason = "; ".join(dict.fromkeys(refused.values()))
    return WriteResult(ref, WriteOutcome.REJECTED, reason, code or first.partition(":")[0] or None)


def _send(send_batch: SendBatch, updates: list[FieldUpdate]) -> list[Mapping[str, Any]]:
    batches = [updates[start : start + WRITE_BATCH] for start in range(0, len(updates), WRITE_BATCH)]
    return [item for answer in two_at_a_time(guarded(send_batch), batches) for item in answer]
