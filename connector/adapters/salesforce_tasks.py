"""Job-change follow-ups as Salesforce Tasks: one Task per follow-up, created through sObject Collections.

`POST composite/sobjects` takes up to 200 records and answers 200 with one SaveResult per record, in order,
failures included (docs/salesforce.md#sobject-collections); simple-salesforce has no method for it, so it
goes through `sf.restful`. A Task points at a Contact or Lead through WhoId, at anything else through WhatId.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import requests
import urllib3

from connector.fencing import guarded
from connector.models import FollowUp, WriteOutcome, WriteResult

TASK_BATCH = 200  # sObject Collections create takes 200 records
SUBJECT_LENGTH = 255  # Task.Subject; longer is STRING_TOO_LONG, so the follow-up is cut rather than lost
DESCRIPTION_LENGTH = 32_000  # Task.Description (textarea)
PEOPLE = ("Contact", "Lead")  # the objects WhoId reaches; WhatId takes the rest


def task_record(follow_up: FollowUp) -> dict[str, Any]:
    link = "WhoId" if follow_up.ref.object in PEOPLE else "WhatId"
    record: dict[str, Any] = {
        "attributes": {"type": "Task"},
        link: follow_up.ref.id,
        "Subject": _cut(follow_up.subject, SUBJECT_LENGTH),
        "Description": _cut(follow_up.body, DESCRIPTION_LENGTH),
    }
    if follow_up.owner_id:  # unset, Salesforce makes the API user the owner
        record["OwnerId"] = follow_up.owner_id
    if follow_up.due is not None:
        record["ActivityDate"] = follow_up.due.isoformat()  # a date field: YYYY-MM-DD
    return record


def _cut(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def create_in_batches(
    follow_ups: Sequence[FollowUp],
    create_batch: Callable[[list[FollowUp]], list[WriteResult]],
    lock_retries: int,
) -> list[WriteResult]:
    """Batches of 200; records refused with UNABLE_TO_LOCK_ROW go again, as updates do
    (docs/salesforce.md#error-bodies): a refused create made nothing, so trying again cannot make a
    duplicate."""
    results: dict[int, WriteResult] = {}
    pending = list(range(len(follow_ups)))
    for attempt in range(lock_retries + 1):
        retry: list[int] = []
        for start in range(0, len(pending), TASK_BATCH):
            chunk = pending[start : start + TASK_BATCH]
            created = guarded(create_batch)([follow_ups[i] for i in chunk])
            for index, result in zip(chunk, created, strict=True):
                if result.outcome is WriteOutcome.LOCKED and attempt < lock_retries:
                    retry.append(index)
                results[index] = result
        if not retry:
            break
        pending = retry
    return [results[index] for index in range(len(follow_ups))]


def maybe_processed(exc: requests.RequestException) -> bool:
    """A read timeout or a connection dropped mid-answer: the request may have been carried out. A refused
    or timed-out connect was not."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.ReadTimeout):
        return True
    cause = exc.args[0] if exc.args else None
    return isinstance(cause, urllib3.exceptions.ProtocolError)
