"""HubSpot CRM v3 through hubspot-api-client: incremental search pull, batch reads, batch writes, paced.

Quirks handled here (docs/hubspot.md#client-setup): API objects are bound once (each attribute access builds
a new connection pool); SDK retries stay off (urllib3 would not retry POST anyway); batch calls answer 207
without raising (docs/hubspot.md#sdk-errors); search stops at 10,000 results (docs/hubspot.md#search-paging).
How each call goes out (timeouts, pacing,
JSON answers) and how its errors read: hubspot_calls.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import urllib3
from hubspot import HubSpot

from connector.adapters.base import Window, two_at_a_time
from connector.adapters.hubspot_calls import HubSpotCalls
from connector.adapters.hubspot_notes import NOTE_BATCH, not_a_contact, notes_request, outcomes
from connector.adapters.hubspot_writes import BATCH, UNIQUE, BatchWriter, to_hubspot_value, update_request
from connector.errors import RequestRejected
from connector.fencing import guarded
from connector.halving import halving
from connector.models import (
    CrmRecord,
    FieldInfo,
    FieldUpdate,
    FollowUp,
    RecordRef,
    WriteOutcome,
    WriteResult,
)
from connector.retry import DEFAULT_POLICY, Answered, RetryPolicy, unheard
from connector.user_agent import user_agent

log = logging.getLogger(__name__)

OBJECT = "contacts"
CHANGED = "lastmodifieddate"
SEARCH_PAGE = 200  # the search maximum (docs/hubspot.md#search)
# Search's own limit, per account, whatever the tier (docs/hubspot.md#rate-limits); the general one is a setting.
SEARCHES_PER_SECOND = 5
__all__ = ["SEARCHES_PER_SECOND", "HubSpotAdapter", "to_hubspot_value"]


def _millis(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


class HubSpotAdapter:
    def __init__(
        self,
        name: str,
        access_token: str,
        *,
        base_url: str = "https://api.hubapi.com",
        requests_per_10s: int = 100,
        searches_per_second: int = SEARCHES_PER_SECOND,
        timeout: tuple[float, float] = (5.0, 60.0),
        retry_policy: RetryPolicy = DEFAULT_POLICY,
        changed_field: str = CHANGED,
        answered: Answered = unheard,
    ):
        self.name = name
        self.unique_field: str | None = UNIQUE  # a contact's email is unique per portal: another's is a 409
        self.changed = changed_field  # the mapping's `changed_field`: lastmodifieddate or hs_lastmodifieddate
        # retry=False turns urllib3's own retries off, even its Retry-After retries of GETs: one loop, ours.
        no_retries = urllib3.Retry(total=False, respect_retry_after_header=False)
        client = HubSpot(access_token=access_token, host=base_url.rstrip("/"), retry=no_retries)
        contacts = client.crm.contacts
        self._search, self._batch, self._basic = contacts.search_api, contacts.batch_api, contacts.basic_api
        self._properties = client.crm.properties.core_api
        self._notes = client.crm.objects.notes.batch_api
        for api in (self._search, self._batch, self._basic, self._properties, self._notes):
            # Each API object has its own ApiClient (and pool): each is told who we are and which process.
            api.api_client.user_agent = user_agent(api.api_client.user_agent)
        self._calls = HubSpotCalls(
            requests_per_10s=requests_per_10s,
            searches_per_second=searches_per_second,
            timeout=timeout,
            retry_policy=retry_policy,
            answered=answered,
        )
        self.server_clock = self._calls.server_clock
        self._writer = BatchWriter(self._update, self.read_current)

    def close(self) -> None:
        """The SDK's pools close with the process; nothing to release early."""

    # -- the seam --------------------------------------------------------------------------------------
    def check(self) -> None:
        self._calls.json_call("access check", self._basic.get_page, limit=1, archived=False)

    def describe(self, fields: Sequence[str]) -> dict[str, FieldInfo]:
        wanted = set(fields)

        def described(listing: dict[str, Any]) -> dict[str, FieldInfo]:
            found = {}
            for prop in listing["results"]:
                if prop["name"] in wanted:
                    read_only = bool((prop.get("modificationMetadata") or {}).get("readOnlyValue"))
                    writable = not (read_only or prop.get("calculated"))
                    found[prop["name"]] = FieldInfo(
                        prop["name"], prop["type"], writable=writable, length=None
                    )
            return found

        return self._calls.read_json(
            "properties", self._properties.get_all, described, object_type=OBJECT, archived=False
        )

    def create_property(self, name: str, label: str, kind: str) -> None:
        """Create one of the connector's own contact properties; `kind` is text, datetime or bool."""
        shapes: dict[str, dict[str, Any]] = {
            "text": {"type": "string", "fieldType": "text"},
            "datetime": {"type": "datetime", "fieldType": "date"},
            "bool": {
                "type": "enumeration",
                "fieldType": "booleancheckbox",
                "options": [
                    {"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
                    {"label": "No", "value": "false", "displayOrder": 1, "hidden": False},
                ],
            },
        }
        body = {"name": name, "label": label, "groupName": "contactinformation", **shapes[kind]}
        self._calls.json_call(
            f"create property {name}",
            self._properties.create,
            idempotent=False,
            object_type=OBJECT,
            property_create=body,
        )

    def pull_changed(self, window: Window, fields: Sequence[str]) -> Iterator[CrmRecord]:
        """Keyset pages sorted by lastmodifieddate: each search starts again at the last timestamp seen (GTE)
        and skips the ids already yielded at it, never at an offset (`after`). Why: search pages by offset
        over a live index, so when a record already pulled changes (our own write-back, a person's edit) it
        leaves its place, every later result moves up one, and paging on by offset skips one record per
        change. By keyset a change only moves that record later in the window, where it is read again.
        Ties keep no order across searches (one sort per search), so a page that is all one timestamp (a
        bulk import) is walked by id instead. Offsets never grow either, so the 10,000-result cap of one
        query (docs/hubspot.md#search-paging) never applies."""
        properties = list(dict.fromkeys([*fields, self.changed]))
        start, seen = window.start, set[str]()  # seen: ids yielded at `start`
        while True:
            results = self._search_page(start, window.end, properties).get("results") or []
            last_time, at_last = start, set(seen)
            for item in results:
                record_id, values = str(item["id"]), item.get("properties") or {}
                changed = _parse_time(values[self.changed])
                if changed == start and record_id in seen:
                    continue
                if changed != last_time:
                    last_time, at_last = changed, set()
                at_last.add(record_id)
                yield CrmRecord(RecordRef(self.name, OBJECT, record_id), changed, values)
            if len(results) < SEARCH_PAGE:
                return
            if last_time == start:
                # A whole page shares one millisecond: walk that millisecond by id, then go past it.
                yield from self._pull_one_timestamp(start, properties, at_last)
                start, seen = start + timedelta(milliseconds=1), set()
            else:
                start, seen = last_time, at_last

    def _search_page(self, start: datetime, end: datetime, properties: list[str]) -> dict[str, Any]:
        request = {
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": self.changed, "operator": "GTE", "value": _millis(start)},
                        {"propertyName": self.changed, "operator": "LT", "value": _millis(end)},
                    ]
                }
            ],
            "sorts": [{"propertyName": self.changed, "direction": "ASCENDING"}],
            "properties": properties,
            "limit": SEARCH_PAGE,
        }
        return self._search_json(request)

    def _search_json(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._calls.json_call(
            "search", self._search.do_search, search=True, public_object_search_request=request
        )

    def _pull_one_timestamp(
        self, moment: datetime, properties: list[str], skip: set[str]
    ) -> Iterator[CrmRecord]:
        last_id = "0"
        while True:
            request = {
                "filterGroups": [
                    {
                        "filters": [
                            {"propertyName": self.changed, "operator": "EQ", "value": _millis(moment)},
                            {"propertyName": "hs_object_id", "operator": "GT", "value": last_id},
                        ]
                    }
                ],
                "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                "properties": properties,
                "limit": SEARCH_PAGE,
            }
            results = self._search_json(request).get("results") or []
            for item in results:
                last_id = str(item["id"])
                if last_id not in skip:
                    yield CrmRecord(
                        RecordRef(self.name, OBJECT, last_id), moment, item.get("properties") or {}
                    )
            if len(results) < SEARCH_PAGE:
                return

    def read_current(self, ids: Sequence[str], fields: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        chunks = [list(ids[start : start + BATCH]) for start in range(0, len(ids), BATCH)]
        current: dict[str, Mapping[str, Any]] = {}
        for answer in two_at_a_time(lambda chunk: self._read_batch(chunk, fields), chunks):
            current.update(answer)
        return current

    def _read_batch(self, ids: list[str], fields: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        request = {"inputs": [{"id": i} for i in ids], "properties": list(fields)}

        def found(response: dict[str, Any]) -> dict[str, Mapping[str, Any]]:
            # Unknown ids come back in `errors` (207): absent here.
            return {str(item["id"]): item.get("properties") or {} for item in response.get("results") or []}

        return self._calls.read_json(
            "batch read",
            self._batch.read,
            found,
            batch_read_input_simple_public_object_id=request,
            archived=False,
        )

    def write_back(self, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        """Batches of 100 (hubspot_writes.py); an update HubSpot neither confirms nor refuses is read back."""
        batches = [list(updates[start : start + BATCH]) for start in range(0, len(updates), BATCH)]
        return [result for answer in two_at_a_time(guarded(self._writer.write), batches) for result in answer]

    def _update(self, updates: list[FieldUpdate]) -> dict[str, Any]:
        return self._calls.json_call(
            "batch update",
            self._batch.update,
            batch_input_simple_public_object_batch_input=update_request(updates),
        )

    # -- follow-ups ------------------------------------------------------------------------------------
    def create_follow_ups(self, follow_ups: Sequence[FollowUp]) -> list[WriteResult]:
        """One note per follow-up, associated to its contact, 100 per call; one result each, in order."""
        results = [not_a_contact(f) for f in follow_ups]
        todo = [i for i, result in enumerate(results) if result is None]
        for start in range(0, len(todo), NOTE_BATCH):
            chunk = todo[start : start + NOTE_BATCH]
            notes = guarded(self._create_notes)([follow_ups[i] for i in chunk])
            for index, result in zip(chunk, notes, strict=True):
                results[index] = result
        return [result for result in results if result is not None]

    def _create_notes(self, batch: list[FollowUp]) -> list[WriteResult]:
        # An unknown contact gets the whole batch a 400 and nothing is created (multi-status answers are
        # opt-in, docs/hubspot.md#notes): halved until the offending follow-ups stand alone.
        return halving(batch, self._create_notes_once, _note_refused)

    def _create_notes_once(self, batch: Sequence[FollowUp]) -> list[WriteResult]:
        request = notes_request(batch, datetime.now(UTC))
        return self._calls.read_json(
            "note create",
            self._notes.create,
            lambda response: outcomes(batch, response),
            idempotent=False,  # an answer we cannot read is not retried: the notes may exist
            batch_input_simple_public_object_batch_input_for_create=request,
        )


def _note_refused(follow_up: FollowUp, refusal: RequestRejected) -> WriteResult:
    return WriteResult(follow_up.ref, WriteOutcome.REJECTED, str(refusal), "VALIDATION_ERROR")
