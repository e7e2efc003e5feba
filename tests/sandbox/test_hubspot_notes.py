"""The HubSpot emulator's notes: batch create with associations, read back, listed from the contact (v4)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hubspot import HubSpot
from hubspot.crm.objects.notes import (
    ApiException,
    AssociationSpec,
    BatchInputSimplePublicObjectBatchInputForCreate,
    PublicAssociationsForObject,
    PublicObjectId,
    SimplePublicObjectBatchInputForCreate,
)

from connector.sandbox import credentials
from connector.sandbox.hubspot.seed import OWNER_IDS
from tests.conftest import Served

TIMEOUT = (5, 30)
BATCH_CREATE_ROUTE = "/crm/v3/objects/notes/batch/create"
V4_LIST_ROUTE = "/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}"


def client(url: str) -> HubSpot:
    return HubSpot(access_token=credentials.HUBSPOT_TOKEN, host=url)


def note(contact_id: str, body: str, owner: str | None = None, type_id: int = 202) -> Any:
    properties = {"hs_note_body": body, "hs_timestamp": "2030-01-02T03:04:05.678Z"}
    if owner:
        properties["hubspot_owner_id"] = owner
    association = PublicAssociationsForObject(
        to=PublicObjectId(id=contact_id),
        types=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=type_id)],
    )
    return SimplePublicObjectBatchInputForCreate(properties=properties, associations=[association])


def batch(*inputs: Any) -> BatchInputSimplePublicObjectBatchInputForCreate:
    return BatchInputSimplePublicObjectBatchInputForCreate(inputs=list(inputs))


def contacts(hs: HubSpot, count: int) -> list[Any]:
    page = hs.crm.contacts.basic_api.get_page(
        limit=count, properties=["hubspot_owner_id"], _request_timeout=TIMEOUT
    )
    return list(page.results)


def notes_of(hs: HubSpot, contact_id: str) -> list[str]:
    page = hs.crm.associations.v4.basic_api.get_page(
        "contacts", contact_id, "notes", _request_timeout=TIMEOUT
    )
    assert all([t.type_id for t in item.association_types] == [201] for item in page.results)
    return [str(item.to_object_id) for item in page.results]


def test_seeded_contacts_have_owners(hubspot_sandbox: Served) -> None:
    owners = {c.properties["hubspot_owner_id"] for c in contacts(client(hubspot_sandbox.url), 100)}
    assert len(owners) > 1 and owners <= set(OWNER_IDS)


def test_batch_create_makes_associated_owned_notes_in_one_201(hubspot_sandbox: Served) -> None:
    hs = client(hubspot_sandbox.url)
    first, second = contacts(hs, 2)
    hubspot_sandbox.control.clear_stats()

    response, status, _ = hs.crm.objects.notes.batch_api.create_with_http_info(
        batch(
            note(first.id, "<p>New job</p>", first.properties["hubspot_owner_id"]),
            note(second.id, "<p>Moved on</p>"),
        ),
        _request_timeout=TIMEOUT,
    )

    assert status == 201 and response.status == "COMPLETE" and len(response.results) == 2
    made = {r.properties["hs_note_body"]: r for r in response.results}
    assert made["<p>New job</p>"].properties["hubspot_owner_id"] == first.properties["hubspot_owner_id"]
    assert made["<p>New job</p>"].properties["hs_timestamp"] == "2030-01-02T03:04:05.678Z"
    assert set(made["<p>Moved on</p>"].properties) >= {"hs_createdate", "hs_lastmodifieddate", "hs_object_id"}
    assert hubspot_sandbox.control.count(method="POST", route=BATCH_CREATE_ROUTE, status=201) == 1

    assert notes_of(hs, first.id) == [made["<p>New job</p>"].id]
    assert notes_of(hs, second.id) == [made["<p>Moved on</p>"].id]
    assert hubspot_sandbox.control.count(method="GET", route=V4_LIST_ROUTE, status=200) == 2
    read = hs.crm.objects.notes.basic_api.get_by_id(
        made["<p>New job</p>"].id,
        properties=["hs_note_body", "hubspot_owner_id"],
        associations=["contacts"],
        _request_timeout=TIMEOUT,
    )
    assert read.properties["hs_note_body"] == "<p>New job</p>"
    assert [(a.id, a.type) for a in read.associations["contacts"].results] == [(first.id, "note_to_contact")]


def test_an_unknown_contact_fails_the_whole_batch_with_a_400(hubspot_sandbox: Served) -> None:
    hs = client(hubspot_sandbox.url)
    [known] = contacts(hs, 1)

    with pytest.raises(ApiException) as refused:
        hs.crm.objects.notes.batch_api.create(
            batch(note(known.id, "fine"), note("999999999", "ghost")), _request_timeout=TIMEOUT
        )

    assert refused.value.status == 400
    body = json.loads(refused.value.body)
    assert body["category"] == "VALIDATION_ERROR" and "999999999" in body["message"]
    assert notes_of(hs, known.id) == []  # nothing was created


def test_batch_limits_and_association_types_are_checked(hubspot_sandbox: Served) -> None:
    hs = client(hubspot_sandbox.url)
    [known] = contacts(hs, 1)

    with pytest.raises(ApiException) as too_many:
        hs.crm.objects.notes.batch_api.create(batch(*[note(known.id, "x")] * 101), _request_timeout=TIMEOUT)
    assert too_many.value.status == 400
    assert (
        "maximum number of inputs supported in a batch is 100" in json.loads(too_many.value.body)["message"]
    )

    with pytest.raises(ApiException) as wrong_type:
        hs.crm.objects.notes.batch_api.create(batch(note(known.id, "x", type_id=2)), _request_timeout=TIMEOUT)
    assert wrong_type.value.status == 400

    with pytest.raises(ApiException) as bad_owner:
        hs.crm.objects.notes.batch_api.create(
            batch(note(known.id, "x", owner="nobody")), _request_timeout=TIMEOUT
        )
    assert "INVALID_OPTION" in json.loads(bad_owner.value.body)["message"]
    assert notes_of(hs, known.id) == []


def test_a_reset_forgets_the_notes(hubspot_sandbox: Served) -> None:
    hs = client(hubspot_sandbox.url)
    [known] = contacts(hs, 1)
    hs.crm.objects.notes.batch_api.create(batch(note(known.id, "x")), _request_timeout=TIMEOUT)
    assert len(notes_of(hs, known.id)) == 1

    hubspot_sandbox.fresh()

    assert notes_of(hs, known.id) == []
