"""Job-change follow-ups through both adapters: Salesforce Tasks and HubSpot notes, against the emulators."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import httpx
import pytest

from connector.adapters.hubspot import HubSpotAdapter
from connector.adapters.salesforce import SalesforceAdapter
from connector.errors import ConnectorError, RetriableError
from connector.models import FollowUp, RecordRef, WriteOutcome
from connector.sandbox import credentials
from tests.adapters.contract import EVERYTHING
from tests.adapters.test_salesforce_adapter import CLIENT
from tests.conftest import Served

SF_CREATE = "/services/data/{version}/composite/sobjects"
HS_CREATE = "/crm/v3/objects/notes/batch/create"
DUE = date(2030, 3, 1)


def follow_up(ref: RecordRef, owner: str | None, n: int = 0) -> FollowUp:
    return FollowUp(
        ref, f"Job change #{n}: reach out", "Moved to Globex as CTO.\nCongratulate them.", owner, DUE
    )


# -- Salesforce --------------------------------------------------------------------------------------------
def salesforce(served: Served, read_timeout: float = 60.0) -> SalesforceAdapter:
    return SalesforceAdapter("acme-sf", CLIENT, instance_url=served.url, timeout=(5.0, read_timeout))


def sf_follow_ups(adapter: SalesforceAdapter, count: int) -> list[FollowUp]:
    records = list(adapter.pull_changed(EVERYTHING, ["OwnerId"]))[:count]
    return [follow_up(r.ref, r.get("OwnerId"), n) for n, r in enumerate(records)]


def tasks(adapter: SalesforceAdapter) -> dict[str, list[dict[str, Any]]]:
    soql = "SELECT Id, Subject, WhoId, OwnerId, ActivityDate, Description FROM Task"
    records = adapter._call("tasks", lambda sf: sf.query_all(soql))["records"]
    found: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        found.setdefault(record["WhoId"], []).append(record)
    return found


def test_salesforce_creates_one_owned_task_per_follow_up_in_batches_of_200(
    salesforce_sandbox: Served,
) -> None:
    adapter = salesforce(salesforce_sandbox)
    wanted = sf_follow_ups(adapter, 250)
    salesforce_sandbox.control.clear_stats()

    results = adapter.create_follow_ups(wanted)

    assert [r.ref for r in results] == [f.ref for f in wanted]
    assert all(r.outcome is WriteOutcome.WRITTEN for r in results)
    assert salesforce_sandbox.control.count(method="POST", route=SF_CREATE) == 2
    made = tasks(adapter)
    for f in wanted:
        [task] = made[f.ref.id]
        assert (task["Subject"], task["OwnerId"], task["ActivityDate"]) == (
            f.subject,
            f.owner_id,
            "2030-03-01",
        )
        assert task["Description"] == f.body


def test_salesforce_rejects_a_bad_reference_with_its_reason_and_creates_the_rest(
    salesforce_sandbox: Served,
) -> None:
    adapter = salesforce(salesforce_sandbox)
    wanted = sf_follow_ups(adapter, 5)
    ghost = follow_up(RecordRef("acme-sf", "Contact", "003000000000000AAA"), None)
    wanted.insert(2, ghost)
    salesforce_sandbox.control.clear_stats()

    results = adapter.create_follow_ups(wanted)

    assert [r.outcome for r in results] == [WriteOutcome.WRITTEN] * 2 + [WriteOutcome.REJECTED] + [
        WriteOutcome.WRITTEN
    ] * 3
    assert results[2].code == "INVALID_CROSS_REFERENCE_KEY"
    assert results[2].reason == "INVALID_CROSS_REFERENCE_KEY: invalid cross reference id"
    assert salesforce_sandbox.control.count(method="POST", route=SF_CREATE) == 1
    made = tasks(adapter)
    assert sorted(made) == sorted(f.ref.id for f in wanted if f is not ghost)


def test_salesforce_follow_ups_on_leads_use_the_who_lookup(salesforce_sandbox: Served) -> None:
    leads = SalesforceAdapter("acme-sf", CLIENT, instance_url=salesforce_sandbox.url, object_name="Lead")
    wanted = sf_follow_ups(leads, 3)

    assert all(r.outcome is WriteOutcome.WRITTEN for r in leads.create_follow_ups(wanted))
    made = tasks(leads)
    assert {f.ref.id: f.owner_id for f in wanted} == {who: t[0]["OwnerId"] for who, t in made.items()}


def test_salesforce_locked_parents_are_retried_without_duplicates(salesforce_sandbox: Served) -> None:
    adapter = salesforce(salesforce_sandbox)
    wanted = sf_follow_ups(adapter, 100)
    salesforce_sandbox.control.configure(lock_row_share=0.3)

    results = adapter.create_follow_ups(wanted)

    assert sum(r.outcome is WriteOutcome.WRITTEN for r in results) > 95
    assert all(r.code == "UNABLE_TO_LOCK_ROW" for r in results if r.outcome is not WriteOutcome.WRITTEN)
    made = tasks(adapter)
    assert all(len(made[r.ref.id]) == 1 for r in results if r.outcome is WriteOutcome.WRITTEN)
    assert sum(len(found) for found in made.values()) == sum(
        r.outcome is WriteOutcome.WRITTEN for r in results
    )


def test_salesforce_does_not_repost_creates_after_a_read_timeout(salesforce_sandbox: Served) -> None:
    adapter = salesforce(salesforce_sandbox, read_timeout=0.3)
    wanted = sf_follow_ups(adapter, 3)  # logs in and reads while the emulator is quick
    salesforce_sandbox.control.configure(latency_ms=800)

    with pytest.raises(ConnectorError, match="not retried") as raised:
        adapter.create_follow_ups(wanted)

    assert not isinstance(raised.value, RetriableError)
    # The emulator counts the POST once its latency has passed, after the client gave up waiting.
    serials = salesforce_sandbox.emulator.request_serials
    posts = [key for key in serials if key[0] == "POST" and "/composite/sobjects" in key[1]]
    deadline = time.monotonic() + 3
    while not posts and time.monotonic() < deadline:
        time.sleep(0.05)
        posts = [key for key in serials if key[0] == "POST" and "/composite/sobjects" in key[1]]
    assert [serials[key] for key in posts] == [1]


# -- HubSpot -----------------------------------------------------------------------------------------------
def hubspot(served: Served, read_timeout: float = 60.0) -> HubSpotAdapter:
    return HubSpotAdapter(
        "acme-hubspot", credentials.HUBSPOT_TOKEN, base_url=served.url, timeout=(5.0, read_timeout)
    )


def hs_follow_ups(adapter: HubSpotAdapter, count: int) -> list[FollowUp]:
    records = list(adapter.pull_changed(EVERYTHING, ["hubspot_owner_id"]))[:count]
    return [follow_up(r.ref, r.get("hubspot_owner_id"), n) for n, r in enumerate(records)]


def notes_of(served: Served, contact_id: str) -> list[dict[str, Any]]:
    """The contact's notes, read over plain HTTP: v4 association list, then each note."""
    headers = {"authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"}
    with httpx.Client(base_url=served.url, headers=headers, timeout=5) as http:
        listed = http.get(f"/crm/v4/objects/contacts/{contact_id}/associations/notes").json()["results"]
        params = {"properties": "hs_note_body,hubspot_owner_id", "associations": "contacts"}
        return [
            http.get(f"/crm/v3/objects/notes/{item['toObjectId']}", params=params).json() for item in listed
        ]


def test_hubspot_creates_one_associated_owned_note_per_follow_up_in_batches_of_100(
    hubspot_sandbox: Served,
) -> None:
    adapter = hubspot(hubspot_sandbox)
    wanted = hs_follow_ups(adapter, 150)
    hubspot_sandbox.control.clear_stats()

    results = adapter.create_follow_ups(wanted)

    assert [r.ref for r in results] == [f.ref for f in wanted]
    assert all(r.outcome is WriteOutcome.WRITTEN for r in results)
    assert hubspot_sandbox.control.count(method="POST", route=HS_CREATE, status=201) == 2
    assert hubspot_sandbox.control.count(method="POST", route=HS_CREATE) == 2
    for f in wanted[::10]:
        [made] = notes_of(hubspot_sandbox, f.ref.id)
        assert made["properties"]["hubspot_owner_id"] == f.owner_id
        assert (
            f.subject in made["properties"]["hs_note_body"]
            and "2030-03-01" in made["properties"]["hs_note_body"]
        )
        assert [a["id"] for a in made["associations"]["contacts"]["results"]] == [f.ref.id]


def test_hubspot_rejects_a_bad_reference_with_its_reason_and_creates_the_rest_once(
    hubspot_sandbox: Served,
) -> None:
    adapter = hubspot(hubspot_sandbox)
    wanted = hs_follow_ups(adapter, 10)
    wanted.insert(4, follow_up(RecordRef("acme-hubspot", "contacts", "999999999"), None))

    results = adapter.create_follow_ups(wanted)

    rejected = [r for r in results if r.outcome is WriteOutcome.REJECTED]
    assert [r.ref.id for r in rejected] == ["999999999"]
    assert rejected[0].code == "VALIDATION_ERROR" and "999999999 does not exist" in (rejected[0].reason or "")
    assert all(len(notes_of(hubspot_sandbox, f.ref.id)) == 1 for f in wanted if f.ref.id != "999999999")


def test_hubspot_refuses_follow_ups_on_other_objects_without_a_call(hubspot_sandbox: Served) -> None:
    adapter = hubspot(hubspot_sandbox)
    hubspot_sandbox.control.clear_stats()

    [result] = adapter.create_follow_ups(
        [follow_up(RecordRef("acme-hubspot", "companies", "900000001"), None)]
    )

    assert result.outcome is WriteOutcome.REJECTED and result.code == "UNSUPPORTED_OBJECT"
    assert hubspot_sandbox.control.count(route=HS_CREATE) == 0


def test_hubspot_does_not_repost_creates_after_a_read_timeout(hubspot_sandbox: Served) -> None:
    adapter = hubspot(hubspot_sandbox, read_timeout=0.3)
    wanted = hs_follow_ups(adapter, 3)
    hubspot_sandbox.control.configure(latency_ms=800)
    seen = hubspot_sandbox.emulator.requests_seen

    with pytest.raises(ConnectorError, match="not retried") as raised:
        adapter.create_follow_ups(wanted)

    assert not isinstance(raised.value, RetriableError)
    assert hubspot_sandbox.emulator.requests_seen == seen + 1  # one POST, counted on arrival
