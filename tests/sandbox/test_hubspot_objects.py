"""The HubSpot emulator's object routes, driven through hubspot-api-client 12.0.0 over real sockets."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hubspot import HubSpot
from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.companies import BatchReadInputSimplePublicObjectId as CompanyBatchRead
from hubspot.crm.companies import SimplePublicObjectId as CompanyId
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    SimplePublicObjectBatchInput,
    SimplePublicObjectId,
    SimplePublicObjectInput,
)
from hubspot.crm.contacts.exceptions import NotFoundException
from hubspot.crm.properties import ApiException as PropertiesApiException
from hubspot.crm.properties import OptionInput, PropertyCreate
from hubspot.crm.properties.exceptions import ForbiddenException as PropertiesForbidden
from hubspot.crm.properties.exceptions import NotFoundException as PropertyNotFound

from connector.sandbox import credentials
from tests.conftest import Served

TIMEOUT = (5, 30)

SYSTEM = {"createdate", "lastmodifieddate", "hs_object_id"}
BATCH_LIMIT_MESSAGE = "The maximum number of inputs supported in a batch is 100. Please reduce the number of items and try again"


def client(url: str) -> HubSpot:
    return HubSpot(access_token=credentials.HUBSPOT_TOKEN, host=url)


def body_of(error: Exception) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(getattr(error, "body", "") or "{}")
    return parsed


def updates(*pairs: tuple[str, dict[str, str]]) -> BatchInputSimplePublicObjectBatchInput:
    return BatchInputSimplePublicObjectBatchInput(
        inputs=[SimplePublicObjectBatchInput(id=record_id, properties=props) for record_id, props in pairs]
    )


def reads(*ids: str, properties: list[str] | None = None) -> BatchReadInputSimplePublicObjectId:
    return BatchReadInputSimplePublicObjectId(
        inputs=[SimplePublicObjectId(id=record_id) for record_id in ids], properties=properties or ["email"]
    )


def ms(value: str) -> int:
    return int(datetime.fromisoformat(value).astimezone(UTC).timestamp() * 1000)


def test_list_pages_through_every_contact_with_repeated_properties(hubspot_sandbox: Served) -> None:
    basic = client(hubspot_sandbox.url).crm.contacts.basic_api
    seen: list[int] = []
    after = None
    while True:
        page = basic.get_page(
            limit=100, after=after, properties=["email", "phone"], archived=False, _request_timeout=TIMEOUT
        )
        for record in page.results:
            assert set(record.properties) == {"email", "phone", *SYSTEM}
            assert record.archived is False
            seen.append(int(record.id))
        if page.paging is None:
            break
        after = page.paging.next.after
        assert isinstance(after, str) and not after.isdigit()  # opaque cursors, never an id
    assert len(seen) == 300
    assert seen == sorted(set(seen))


def test_list_accepts_comma_separated_properties_and_refuses_a_page_over_100(hubspot_sandbox: Served) -> None:
    headers = {"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"}
    with httpx.Client(base_url=hubspot_sandbox.url, headers=headers) as http:
        page = http.get("/crm/v3/objects/contacts", params={"properties": "jobtitle,city", "limit": 2}).json()
        assert set(page["results"][0]["properties"]) == {"jobtitle", "city", *SYSTEM}
        assert page["results"][0]["properties"]["city"] is None  # requested but unset is null
        default = http.get("/crm/v3/objects/contacts").json()
        assert len(default["results"]) == 10
        assert set(default["results"][0]["properties"]) == {"email", "firstname", "lastname", *SYSTEM}
        too_big = http.get("/crm/v3/objects/contacts", params={"limit": 101})
        assert too_big.status_code == 400
        assert too_big.json()["category"] == "VALIDATION_ERROR"


def test_get_by_id_and_by_email_with_the_primary_company_twice(hubspot_sandbox: Served) -> None:
    store = hubspot_sandbox.emulator.contacts_store
    record = next(
        r for r in store.live.values() if r.properties.get("associatedcompanyid") and "email" in r.properties
    )
    basic = client(hubspot_sandbox.url).crm.contacts.basic_api
    found = basic.get_by_id(str(record.id), associations=["companies"], _request_timeout=TIMEOUT)
    company = record.properties["associatedcompanyid"]
    assert [(a.id, a.type) for a in found.associations["companies"].results] == [
        (company, "contact_to_company"),
        (company, "contact_to_company_unlabeled"),
    ]
    by_email = basic.get_by_id(
        record.properties["email"].upper(), id_property="email", _request_timeout=TIMEOUT
    )
    assert by_email.id == str(record.id)
    with pytest.raises(NotFoundException):
        basic.get_by_id("999999999", _request_timeout=TIMEOUT)


def test_patch_moves_lastmodifieddate_and_an_empty_string_clears(hubspot_sandbox: Served) -> None:
    basic = client(hubspot_sandbox.url).crm.contacts.basic_api
    before = basic.get_by_id("1001", properties=["phone", "jobtitle"], _request_timeout=TIMEOUT)
    updated = basic.update(
        "1001",
        SimplePublicObjectInput(properties={"jobtitle": "Chief Enrichment Officer", "phone": ""}),
        _request_timeout=TIMEOUT,
    )
    assert updated.properties["jobtitle"] == "Chief Enrichment Officer"
    assert "phone" not in updated.properties
    assert ms(updated.properties["lastmodifieddate"]) > ms(before.properties["lastmodifieddate"])
    assert updated.updated_at > before.updated_at
    again = basic.update(
        "1001", SimplePublicObjectInput(properties={"city": "Lyon"}), _request_timeout=TIMEOUT
    )
    assert ms(again.properties["lastmodifieddate"]) > ms(updated.properties["lastmodifieddate"])


def test_delete_archives_so_reads_no_longer_find_the_contact(hubspot_sandbox: Served) -> None:
    hubspot = client(hubspot_sandbox.url)
    assert hubspot.crm.contacts.basic_api.archive("1002", _request_timeout=TIMEOUT) is None
    with pytest.raises(NotFoundException):
        hubspot.crm.contacts.basic_api.get_by_id("1002", _request_timeout=TIMEOUT)
    result = hubspot.crm.contacts.batch_api.read(reads("1002"), archived=False, _request_timeout=TIMEOUT)
    assert result.errors[0].context == {"ids": ["1002"]}


def test_batch_read_with_unknown_ids_is_a_207_with_the_found_ones(hubspot_sandbox: Served) -> None:
    batch = client(hubspot_sandbox.url).crm.contacts.batch_api
    result, status, _ = batch.read_with_http_info(
        reads("1001", "42", "1003", properties=["email", "jobtitle"]),
        archived=False,
        _request_timeout=TIMEOUT,
    )
    assert status == 207
    assert type(result).__name__ == "BatchResponseSimplePublicObjectWithErrors"
    assert sorted(r.id for r in result.results) == ["1001", "1003"]
    assert result.num_errors == 1
    error = result.errors[0]
    assert (error.status, error.category, error.context) == ("error", "OBJECT_NOT_FOUND", {"ids": ["42"]})
    assert "CONTACT" in error.message
    assert result.status == "COMPLETE" and result.started_at <= result.completed_at
    full = batch.read(reads("1001", "1003"), archived=False, _request_timeout=TIMEOUT)
    assert type(full).__name__ == "BatchResponseSimplePublicObject"


def test_batch_read_by_email_uses_id_property(hubspot_sandbox: Served) -> None:
    store = hubspot_sandbox.emulator.contacts_store
    record = next(r for r in store.live.values() if "email" in r.properties)
    request = BatchReadInputSimplePublicObjectId(
        inputs=[SimplePublicObjectId(id=record.properties["email"])],
        properties=["firstname"],
        id_property="email",
    )
    result = client(hubspot_sandbox.url).crm.contacts.batch_api.read(request, _request_timeout=TIMEOUT)
    assert [r.id for r in result.results] == [str(record.id)]


@pytest.mark.parametrize("operation", ["read", "update"])
def test_batch_over_100_inputs_is_a_validation_error(hubspot_sandbox: Served, operation: str) -> None:
    batch = client(hubspot_sandbox.url).crm.contacts.batch_api
    ids = [str(1001 + n) for n in range(101)]
    with pytest.raises(ApiException) as raised:
        if operation == "read":
            batch.read(reads(*ids), _request_timeout=TIMEOUT)
        else:
            batch.update(updates(*[(i, {"city": "Paris"}) for i in ids]), _request_timeout=TIMEOUT)
    assert raised.value.status == 400
    body = body_of(raised.value)
    assert (body["status"], body["category"], body["message"]) == (
        "error",
        "VALIDATION_ERROR",
        BATCH_LIMIT_MESSAGE,
    )
    assert body["correlationId"]
    exactly_100 = batch.read(reads(*ids[:100]), _request_timeout=TIMEOUT)
    assert len(exactly_100.results) == 100


def test_batch_update_gives_all_records_one_millisecond_after_their_last(hubspot_sandbox: Served) -> None:
    batch = client(hubspot_sandbox.url).crm.contacts.batch_api
    before = batch.read(reads("1001", "1002", "1003"), _request_timeout=TIMEOUT).results
    result = batch.update(
        updates(("1001", {"jobtitle": "CTO"}), ("1002", {"jobtitle": "CFO"}), ("1003", {"city": "Oslo"})),
        _request_timeout=TIMEOUT,
    )
    stamps = {r.properties["lastmodifieddate"] for r in result.results}
    assert len(stamps) == 1, "one batch write, one millisecond"
    stamp = ms(stamps.pop())
    assert all(stamp > ms(r.properties["lastmodifieddate"]) for r in before)
    assert {r.updated_at for r in result.results} == {result.results[0].updated_at}
    second = batch.update(updates(("1001", {"jobtitle": "CEO"})), _request_timeout=TIMEOUT)
    assert ms(second.results[0].properties["lastmodifieddate"]) > stamp, "even within the same millisecond"


def test_batch_update_with_gone_ids_is_a_207_that_names_them_nowhere_and_updates_the_rest(
    hubspot_sandbox: Served,
) -> None:
    hubspot = client(hubspot_sandbox.url)
    hubspot.crm.contacts.basic_api.archive("1002", _request_timeout=TIMEOUT)
    result, status, _ = hubspot.crm.contacts.batch_api.update_with_http_info(
        updates(
            ("1001", {"jobtitle": "Head of Data"}), ("77", {"jobtitle": "Ghost"}), ("1002", {"city": "Oslo"})
        ),
        _request_timeout=TIMEOUT,
    )
    assert status == 207 and type(result).__name__ == "BatchResponseSimplePublicObjectWithErrors"
    assert [r.id for r in result.results] == ["1001"]
    assert (result.num_errors, result.errors) == (0, [])
    stored = hubspot.crm.contacts.basic_api.get_by_id(
        "1001", properties=["jobtitle"], _request_timeout=TIMEOUT
    )
    assert stored.properties["jobtitle"] == "Head of Data"


def test_batch_update_can_list_gone_ids_as_batch_read_does(hubspot_sandbox: Served) -> None:
    hubspot_sandbox.control.configure(batch_update_lists_missing_ids=True)
    result = client(hubspot_sandbox.url).crm.contacts.batch_api.update(
        updates(("1001", {"jobtitle": "Head of Data"}), ("77", {"jobtitle": "Ghost"})),
        _request_timeout=TIMEOUT,
    )
    assert [r.id for r in result.results] == ["1001"]
    assert (result.errors[0].category, result.errors[0].context) == ("OBJECT_NOT_FOUND", {"ids": ["77"]})


def test_an_html_page_can_stand_in_for_the_json_of_a_call_that_was_carried_out(
    hubspot_sandbox: Served,
) -> None:
    route = "POST /crm/v3/objects/contacts/batch/update"
    hubspot_sandbox.control.configure(html_answers={route: 1})
    headers = {"authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"}
    body = {"inputs": [{"id": "1001", "properties": {"jobtitle": "Proxy victim"}}]}
    with httpx.Client(base_url=hubspot_sandbox.url, headers=headers, timeout=5) as http:
        first = http.post("/crm/v3/objects/contacts/batch/update", json=body)
        second = http.post("/crm/v3/objects/contacts/batch/update", json=body)
        stored = http.get("/crm/v3/objects/contacts/1001", params={"properties": "jobtitle"}).json()
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/html")
    assert first.text.startswith("<!DOCTYPE html>")
    assert second.status_code == 200 and second.json()["results"][0]["id"] == "1001"
    assert stored["properties"]["jobtitle"] == "Proxy victim", "the call behind the page was carried out"
    assert hubspot_sandbox.control.configure()["html_answers"] == {route: 0}


def test_an_invalid_email_rejects_the_whole_batch_and_writes_nothing(hubspot_sandbox: Served) -> None:
    hubspot = client(hubspot_sandbox.url)
    before = hubspot.crm.contacts.batch_api.read(reads("1001", "1002"), _request_timeout=TIMEOUT).results
    with pytest.raises(ApiException) as raised:
        hubspot.crm.contacts.batch_api.update(
            updates(("1001", {"jobtitle": "CTO"}), ("1002", {"email": "foo@bar.comtttt"})),
            _request_timeout=TIMEOUT,
        )
    body = body_of(raised.value)
    assert raised.value.status == 400 and body["category"] == "VALIDATION_ERROR"
    prefix = "Property values were not valid: "
    assert body["message"].startswith(prefix)
    items = json.loads(body["message"].removeprefix(prefix))
    assert [(i["isValid"], i["error"], i["name"], i["message"]) for i in items] == [
        (False, "INVALID_EMAIL", "email", "Email address foo@bar.comtttt is invalid")
    ]
    after = hubspot.crm.contacts.batch_api.read(reads("1001", "1002"), _request_timeout=TIMEOUT).results
    assert [(r.id, r.properties, r.updated_at) for r in after] == [
        (r.id, r.properties, r.updated_at) for r in before
    ]


def test_read_only_and_unknown_properties_are_refused_in_the_same_format(hubspot_sandbox: Served) -> None:
    batch = client(hubspot_sandbox.url).crm.contacts.batch_api
    with pytest.raises(ApiException) as raised:
        batch.update(
            updates(("1001", {"lastmodifieddate": "0", "hs_object_id": "5", "favourite_colour": "red"})),
            _request_timeout=TIMEOUT,
        )
    body = body_of(raised.value)
    items = json.loads(body["message"].removeprefix("Property values were not valid: "))
    assert [(i["name"], i["error"]) for i in items] == [
        ("lastmodifieddate", "READ_ONLY_VALUE"),
        ("hs_object_id", "READ_ONLY_VALUE"),
        ("favourite_colour", "PROPERTY_DOESNT_EXIST"),
    ]
    assert items[1]["message"] == '"hs_object_id" is a calculated property; its value cannot be set.'
    assert [e["code"] for e in body["errors"]] == [
        "READ_ONLY_VALUE",
        "READ_ONLY_VALUE",
        "PROPERTY_DOESNT_EXIST",
    ]


def test_taking_another_contacts_email_is_a_conflict(hubspot_sandbox: Served) -> None:
    store = hubspot_sandbox.emulator.contacts_store
    owner = next(r for r in store.live.values() if "email" in r.properties)
    other = next(r for r in store.live.values() if r.id != owner.id)
    with pytest.raises(ApiException) as raised:
        client(hubspot_sandbox.url).crm.contacts.batch_api.update(
            updates((str(other.id), {"email": owner.properties["email"].upper()})), _request_timeout=TIMEOUT
        )
    assert raised.value.status == 409
    assert body_of(raised.value)["message"] == f"Contact already exists. Existing ID: {owner.id}"


def test_an_unknown_contact_is_a_404_whose_body_says_object_not_found(hubspot_sandbox: Served) -> None:
    with pytest.raises(NotFoundException) as missing:
        client(hubspot_sandbox.url).crm.contacts.basic_api.get_by_id("99999999", _request_timeout=TIMEOUT)

    body = body_of(missing.value)
    assert (body["category"], body["message"]) == ("OBJECT_NOT_FOUND", "resource not found")
    assert body["correlationId"]


def test_a_types_properties_without_its_scope_are_403_missing_scopes_through_the_sdk(
    hubspot_sandbox: Served,
) -> None:
    core = client(hubspot_sandbox.url).crm.properties.core_api
    with pytest.raises(PropertiesForbidden) as refused:
        core.get_all("deals", archived=False, _request_timeout=TIMEOUT)
    hubspot_sandbox.control.configure(token_scopes=["crm.schemas.deals.read"])
    deals = {p.name for p in core.get_all("deals", archived=False, _request_timeout=TIMEOUT).results}

    assert body_of(refused.value)["category"] == "MISSING_SCOPES"
    assert {"dealname", "dealstage", "amount", "hs_object_id"} <= deals


def test_properties_list_flags_read_only_values_and_a_missing_one_is_not_found(
    hubspot_sandbox: Served,
) -> None:
    core = client(hubspot_sandbox.url).crm.properties.core_api
    listed = {p.name: p for p in core.get_all("contacts", archived=False, _request_timeout=TIMEOUT).results}
    for name in ("email", "firstname", "lastname", "jobtitle", "phone", "mobilephone", "company", "website"):
        assert listed[name].modification_metadata.read_only_value is False
    for name in (
        "hs_linkedin_url",
        "city",
        "country",
        "associatedcompanyid",
        "hubspot_owner_id",
        "lifecyclestage",
    ):
        assert name in listed
    for name in ("createdate", "lastmodifieddate", "hs_object_id"):
        assert listed[name].modification_metadata.read_only_value is True
    assert listed["lastmodifieddate"].type == "datetime"
    assert {o.value for o in listed["lifecyclestage"].options} >= {"lead", "customer"}
    assert core.get_by_name("contacts", "email", _request_timeout=TIMEOUT).field_type == "text"
    with pytest.raises(PropertyNotFound):
        core.get_by_name("contacts", "enrichment_status", _request_timeout=TIMEOUT)


def test_a_created_property_is_201_then_writable_and_a_second_create_conflicts(
    hubspot_sandbox: Served,
) -> None:
    hubspot = client(hubspot_sandbox.url)
    core = hubspot.crm.properties.core_api
    create = PropertyCreate(
        name="enrichment_status",
        label="Enrichment status",
        type="enumeration",
        field_type="select",
        group_name="contactinformation",
        options=[OptionInput(label="Pending", value="pending", hidden=False, display_order=0),
                 OptionInput(label="Done", value="done", hidden=False, display_order=1)],
    )  # fmt: skip
    created, status, _ = core.create_with_http_info("contacts", create, _request_timeout=TIMEOUT)
    assert status == 201 and created.name == "enrichment_status" and created.modification_metadata.archivable
    written = hubspot.crm.contacts.batch_api.update(
        updates(("1001", {"enrichment_status": "done"})), _request_timeout=TIMEOUT
    )
    assert written.results[0].properties["enrichment_status"] == "done"
    with pytest.raises(ApiException) as bad_option:
        hubspot.crm.contacts.batch_api.update(
            updates(("1001", {"enrichment_status": "maybe"})), _request_timeout=TIMEOUT
        )
    assert "INVALID_OPTION" in body_of(bad_option.value)["message"]
    with pytest.raises(PropertiesApiException) as again:
        core.create("contacts", create, _request_timeout=TIMEOUT)
    assert again.value.status == 409


@pytest.mark.parametrize(
    ("type_", "field_type", "group"),
    [("enumeration", "text", "contactinformation"), ("bool", "select", "contactinformation"),
     ("string", "text", "no_such_group")],
)  # fmt: skip
def test_property_create_refuses_bad_type_pairs_and_unknown_groups(
    hubspot_sandbox: Served, type_: str, field_type: str, group: str
) -> None:
    core = client(hubspot_sandbox.url).crm.properties.core_api
    create = PropertyCreate(name="x_prop", label="X", type=type_, field_type=field_type, group_name=group)
    with pytest.raises(PropertiesApiException) as raised:
        core.create("contacts", create, _request_timeout=TIMEOUT)
    assert raised.value.status == 400
    assert body_of(raised.value)["category"] == "VALIDATION_ERROR"


def test_companies_batch_read_follows_associatedcompanyid_and_reports_unknown_ids(
    hubspot_sandbox: Served,
) -> None:
    hubspot = client(hubspot_sandbox.url)
    contacts = hubspot.crm.contacts.batch_api.read(
        reads(*[str(1001 + n) for n in range(20)], properties=["associatedcompanyid", "company"]),
        _request_timeout=TIMEOUT,
    ).results
    linked = {
        c.properties["associatedcompanyid"]: c.properties["company"]
        for c in contacts
        if c.properties["company"]
    }
    assert linked, "seeded contacts carry their company"
    request = CompanyBatchRead(
        inputs=[CompanyId(id=i) for i in [*linked, "123"]], properties=["name", "domain"]
    )
    result = hubspot.crm.companies.batch_api.read(request, archived=False, _request_timeout=TIMEOUT)
    assert type(result).__name__ == "BatchResponseSimplePublicObjectWithErrors"
    assert {r.id: r.properties["name"] for r in result.results} == linked
    assert all(r.properties["domain"] and r.properties["hs_lastmodifieddate"] for r in result.results)
    assert result.errors[0].context == {"ids": ["123"]} and "COMPANY" in result.errors[0].message


def test_v4_association_batch_read_lists_the_primary_company(hubspot_sandbox: Served) -> None:
    store = hubspot_sandbox.emulator.contacts_store
    linked = next(r for r in store.live.values() if r.properties.get("associatedcompanyid"))
    lonely = next(r for r in store.live.values() if not r.properties.get("associatedcompanyid"))
    request = BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[PublicFetchAssociationsBatchRequest(id=str(linked.id)),
                PublicFetchAssociationsBatchRequest(id=str(lonely.id))]
    )  # fmt: skip
    result = client(hubspot_sandbox.url).crm.associations.v4.batch_api.get_page(
        "contacts", "companies", request, _request_timeout=TIMEOUT
    )
    assert [r._from.id for r in result.results] == [str(linked.id)]
    to = result.results[0].to[0]
    assert to.to_object_id == linked.properties["associatedcompanyid"]
    assert [t.type_id for t in to.association_types] == [1, 279]
    assert result.errors[0].context == {"fromObjectId": [str(lonely.id)]}
