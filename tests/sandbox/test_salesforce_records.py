"""Salesforce emulator: describe, single-record REST, sObject Collections retrieve and update, replication."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from connector.sandbox.salesforce.app import SalesforceEmulator
from connector.sandbox.salesforce.org import CONNECTOR_STATUS_FIELDS
from connector.sandbox.salesforce.store import ADMIN_USER_ID, INTEGRATION_USER_ID
from tests.conftest import Served
from tests.sandbox.test_salesforce_auth import client

RECORD_ROUTE = "/services/data/{version}/sobjects/{sobject}/{record_id}"
COLLECTION_ROUTE = "/services/data/{version}/composite/sobjects"
UNKNOWN_CONTACT = "003000000000000AAA"


@pytest.fixture
def sf(salesforce_sandbox: Served) -> Salesforce:
    return client(salesforce_sandbox)


@pytest.fixture
def with_status_fields(salesforce_sandbox: Served) -> None:
    """The connector's status fields, created on Contact as an admin would in Setup."""
    salesforce_sandbox.control.create_fields("Contact", CONNECTOR_STATUS_FIELDS)


def contact_ids(sf: Salesforce, count: int) -> list[str]:
    return [
        record["Id"] for record in sf.query(f"SELECT Id FROM Contact ORDER BY Id LIMIT {count}")["records"]
    ]


def update(sf: Salesforce, records: list[dict[str, Any]], all_or_none: bool = False) -> list[dict[str, Any]]:
    body = {
        "allOrNone": all_or_none,
        "records": [{"attributes": {"type": "Contact"}, **record} for record in records],
    }
    results: list[dict[str, Any]] = sf.restful("composite/sobjects", method="PATCH", json=body)
    return results


def stamp_of(sf: Salesforce, record_id: str) -> str:
    stamp: str = sf.Contact.get(record_id)["SystemModstamp"]
    return stamp


def test_describe_lists_every_field_with_lengths_and_flags(sf: Salesforce) -> None:
    described = sf.Contact.describe()
    fields = {field["name"]: field for field in described["fields"]}

    assert (described["name"], described["label"], described["keyPrefix"]) == ("Contact", "Contact", "003")
    lengths = {
        name: fields[name]["length"]
        for name in ("Email", "Phone", "MobilePhone", "Title", "FirstName", "LastName", "Department")
    }
    assert lengths == {
        "Email": 80,
        "Phone": 40,
        "MobilePhone": 40,
        "Title": 128,
        "FirstName": 40,
        "LastName": 80,
        "Department": 80,
    }
    assert (
        fields["Email"]["type"],
        fields["LinkedIn_URL__c"]["type"],
        fields["LinkedIn_URL__c"]["length"],
    ) == ("email", "url", 255)
    assert fields["LinkedIn_URL__c"]["custom"] is True
    assert (
        fields["AccountId"]["type"],
        fields["AccountId"]["referenceTo"],
        fields["AccountId"]["relationshipName"],
    ) == ("reference", ["Account"], "Account")
    for name in ("Id", "IsDeleted", "SystemModstamp", "LastModifiedDate", "CreatedDate", "Name"):
        assert fields[name]["updateable"] is False, name
    assert fields["LastName"]["nillable"] is False
    assert all(
        {
            "name",
            "label",
            "type",
            "length",
            "updateable",
            "createable",
            "nillable",
            "custom",
            "picklistValues",
        }
        <= set(field)
        for field in described["fields"]
    )


def test_lead_and_account_describe_too(sf: Salesforce) -> None:
    lead = {field["name"]: field for field in sf.Lead.describe()["fields"]}
    account = {field["name"]: field for field in sf.Account.describe()["fields"]}

    assert (lead["Company"]["length"], lead["Company"]["nillable"], lead["Website"]["type"]) == (
        255,
        False,
        "url",
    )
    assert (account["Name"]["length"], account["Website"]["type"]) == (255, "url")
    assert {"Contact", "Lead", "Account", "Task"} <= {entry["name"] for entry in sf.describe()["sobjects"]}
    assert sf.Contact.metadata()["objectDescribe"]["keyPrefix"] == "003"


def test_retrieve_returns_requested_fields_in_id_order_with_nulls_for_missing_records(sf: Salesforce) -> None:
    first, second, gone = contact_ids(sf, 3)
    sf.Contact.delete(gone)

    result = sf.restful(
        "composite/sobjects/Contact",
        method="POST",
        json={"ids": [second, UNKNOWN_CONTACT, first, gone], "fields": ["email", "Title"]},
    )

    assert [None if item is None else item["attributes"]["url"].rsplit("/", 1)[1] for item in result] == [
        second,
        None,
        first,
        None,
    ]
    assert list(result[0]) == ["attributes", "Email", "Title"]


def test_retrieve_refuses_an_unknown_field_and_too_many_ids(sf: Salesforce) -> None:
    [record_id] = contact_ids(sf, 1)

    with pytest.raises(SalesforceMalformedRequest) as bad_field:
        sf.restful(
            "composite/sobjects/Contact", method="POST", json={"ids": [record_id], "fields": ["Emial"]}
        )
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful(
            "composite/sobjects/Contact", method="POST", json={"ids": [record_id] * 2001, "fields": ["Email"]}
        )

    assert bad_field.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_collection_update_writes_records_with_one_shared_stamp(
    salesforce_sandbox: Served, sf: Salesforce, with_status_fields: None
) -> None:
    first, second = contact_ids(sf, 2)
    before = stamp_of(sf, first)

    results = update(
        sf,
        [
            {"Id": first, "Title": "VP Data"},
            {
                "id": second,
                "Enrichment_Status__c": "Enriched",
                "Last_Enriched__c": "2024-05-01T10:00:00.000+0000",
            },
        ],
    )

    assert results == [
        {"id": first, "success": True, "errors": []},
        {"id": second, "success": True, "errors": []},
    ]
    one, two = sf.Contact.get(first), sf.Contact.get(second)
    assert one["Title"] == "VP Data"
    assert (two["Enrichment_Status__c"], two["Last_Enriched__c"]) == (
        "Enriched",
        "2024-05-01T10:00:00.000+0000",
    )
    assert one["SystemModstamp"] == one["LastModifiedDate"] == two["SystemModstamp"]
    assert one["SystemModstamp"] > before
    assert one["LastModifiedById"] == INTEGRATION_USER_ID
    assert salesforce_sandbox.control.count(method="PATCH", route=COLLECTION_ROUTE, status=200) == 1


def test_collection_update_reports_each_failure_in_order_and_keeps_the_rest(
    sf: Salesforce, with_status_fields: None
) -> None:
    ids = contact_ids(sf, 9)
    sf.Contact.delete(ids[2])
    records = [
        {"Id": ids[0], "Email": "not-an-email"},
        {"Id": ids[1], "Title": "x" * 129},
        {"Id": ids[2], "Title": "Deleted"},
        {"Id": ids[3], "IsDeleted": True, "SystemModstamp": "2020-01-01T00:00:00Z"},
        {"Id": ids[4], "Shoe_Size__c": 44},
        {"Id": "003-bad-id", "Title": "x"},
        {"Id": UNKNOWN_CONTACT, "Title": "x"},
        {"Title": "no id"},
        {"Id": ids[5], "Enrichment_Status__c": "Maybe"},
        {"Id": ids[6], "Title": "Still fine", "Email": "ok@example.com"},
    ]

    results = update(sf, records)

    codes = [result["errors"][0]["statusCode"] if result["errors"] else None for result in results]
    assert codes == [
        "INVALID_EMAIL_ADDRESS",
        "STRING_TOO_LONG",
        "ENTITY_IS_DELETED",
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        "INVALID_FIELD",
        "MALFORMED_ID",
        "NOT_FOUND",
        "MISSING_ARGUMENT",
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        None,
    ]
    assert results[0]["errors"][0] == {
        "statusCode": "INVALID_EMAIL_ADDRESS",
        "message": "Email: invalid email address: not-an-email",
        "fields": ["Email"],
    }
    assert results[1]["errors"][0]["message"] == f"Title: data value too large: {'x' * 129} (max length=128)"
    assert results[3]["errors"][0]["fields"] == ["IsDeleted", "SystemModstamp"]
    assert all("id" not in result for result in results[:-1])
    assert results[-1] == {"id": ids[6], "success": True, "errors": []}
    assert sf.Contact.get(ids[6])["Title"] == "Still fine"
    assert sf.Contact.get(ids[0])["Email"] != "not-an-email"


def test_a_validation_rule_refuses_saves_and_names_its_field_only_when_shown_on_it(
    salesforce_sandbox: Served, sf: Salesforce
) -> None:
    first, second, third, fourth = contact_ids(sf, 4)
    update(sf, [{"Id": fourth, "Department": "Office of the Chief"}])  # before the rule exists
    message = "Titles are typed by the sales team"
    rule = {"field": "Title", "value_pattern": "(?i)chief", "message": message}
    salesforce_sandbox.control.configure(
        validation_rules=[rule, {**rule, "field": "Department", "on_field": True}]
    )

    results = update(
        sf,
        [
            {"Id": first, "Title": "Chief Data Officer"},
            {"Id": second, "Department": "Office of the Chief"},
            {"Id": third, "Title": "Engineer"},
            {"Id": fourth, "Phone": "+1 555 0100"},
        ],
    )

    error = {"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "message": message}
    assert results[0]["errors"] == [{**error, "fields": []}], "Top of Page, Setup's default: no field"
    assert results[1]["errors"] == [{**error, "fields": ["Department"]}]
    assert results[2]["success"] is True
    assert results[3]["errors"] == [{**error, "fields": ["Department"]}], "a rule runs on every save"
    assert sf.Contact.get(first)["Title"] != "Chief Data Officer"
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.Contact.update(first, {"Title": "Chief of Staff"})
    assert raised.value.content[0]["errorCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"


def test_an_html_page_can_stand_in_for_the_json_of_a_call_that_was_carried_out(
    salesforce_sandbox: Served, sf: Salesforce
) -> None:
    [record_id] = contact_ids(sf, 1)
    salesforce_sandbox.control.configure(html_answers={f"PATCH {COLLECTION_ROUTE}": 1})
    with pytest.raises(ValueError):  # requests' JSONDecodeError, from `result.json()` inside the library
        update(sf, [{"Id": record_id, "Title": "Proxy victim"}])
    assert sf.Contact.get(record_id)["Title"] == "Proxy victim", "the call behind the page was carried out"
    assert update(sf, [{"Id": record_id, "Title": "Second"}])[0]["success"] is True


def test_all_or_none_rolls_every_record_back_when_one_fails(sf: Salesforce) -> None:
    good, bad = contact_ids(sf, 2)
    before = sf.Contact.get(good)

    results = update(
        sf, [{"Id": good, "Title": "Should not stick"}, {"Id": bad, "Phone": "1" * 41}], all_or_none=True
    )

    assert results[0] == {
        "success": False,
        "errors": [
            {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
                "fields": [],
            }
        ],
    }
    assert results[1]["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    after = sf.Contact.get(good)
    assert (after["Title"], after["SystemModstamp"]) == (before["Title"], before["SystemModstamp"])


def test_all_or_none_writes_everything_when_all_are_valid(sf: Salesforce) -> None:
    ids = contact_ids(sf, 3)

    results = update(sf, [{"Id": record_id, "Department": "Growth"} for record_id in ids], all_or_none=True)

    assert all(result["success"] for result in results)
    assert {sf.Contact.get(record_id)["Department"] for record_id in ids} == {"Growth"}


def test_collection_update_refuses_more_than_200_records_or_records_without_a_type(sf: Salesforce) -> None:
    [record_id] = contact_ids(sf, 1)

    with pytest.raises(SalesforceMalformedRequest):
        update(sf, [{"Id": record_id, "Title": "t"}] * 201)
    with pytest.raises(SalesforceMalformedRequest) as untyped:
        sf.restful("composite/sobjects", method="PATCH", json={"records": [{"Id": record_id, "Title": "t"}]})

    assert untyped.value.content[0]["errorCode"] == "INVALID_TYPE"
    assert sf.Contact.get(record_id)["Title"] != "t"


def test_lock_failures_hit_the_same_records_for_a_seed_and_retries_get_through(
    salesforce_sandbox: Served,
) -> None:
    def first_attempt() -> tuple[list[str], Salesforce]:
        salesforce_sandbox.control.reset(contacts=300, seed=7)
        salesforce_sandbox.control.configure(lock_row_share=0.3)
        sf = client(salesforce_sandbox)
        ids = contact_ids(sf, 100)
        results = update(sf, [{"Id": record_id, "Title": "Locked?"} for record_id in ids])
        return [
            record_id for record_id, result in zip(ids, results, strict=True) if not result["success"]
        ], sf

    locked, sf = first_attempt()
    again, _ = first_attempt()

    assert locked == again
    assert 10 < len(locked) < 60
    for _ in range(10):
        if not locked:
            break
        results = update(sf, [{"Id": record_id, "Title": "Locked?"} for record_id in locked])
        assert {result["errors"][0]["statusCode"] for result in results if not result["success"]} <= {
            "UNABLE_TO_LOCK_ROW"
        }
        locked = [
            record_id for record_id, result in zip(locked, results, strict=True) if not result["success"]
        ]
    assert locked == []


def test_patching_one_record_answers_204_and_moves_its_stamps(
    salesforce_sandbox: Served, sf: Salesforce
) -> None:
    [record_id] = contact_ids(sf, 1)
    before = sf.Contact.get(record_id)
    assert before["LastModifiedById"] == ADMIN_USER_ID

    status = sf.Contact.update(
        record_id, {"Title": "Head of RevOps", "LinkedIn_URL__c": "https://www.linkedin.com/in/x"}
    )

    after = sf.Contact.get(record_id)
    assert status == 204
    assert after["Title"] == "Head of RevOps"
    assert after["SystemModstamp"] > before["SystemModstamp"]
    assert after["LastModifiedDate"] == after["SystemModstamp"]
    assert after["LastModifiedById"] == INTEGRATION_USER_ID
    assert salesforce_sandbox.control.count(method="PATCH", route=RECORD_ROUTE, status=204) == 1
    assert salesforce_sandbox.control.count(method="GET", route=RECORD_ROUTE, status=200) == 2


def test_patching_a_bad_value_is_a_400_error_list(sf: Salesforce) -> None:
    [record_id] = contact_ids(sf, 1)

    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.Contact.update(record_id, {"Email": "x" * 75 + "@a.com"})

    assert refused.value.content == [
        {
            "message": f"Email: data value too large: {'x' * 75}@a.com (max length=80)",
            "errorCode": "STRING_TOO_LONG",
            "fields": ["Email"],
        }
    ]


def test_clearing_a_required_field_is_refused(sf: Salesforce) -> None:
    [record_id] = contact_ids(sf, 1)

    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.Contact.update(record_id, {"LastName": ""})

    assert refused.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"


def test_get_narrows_to_the_requested_fields(sf: Salesforce) -> None:
    [record_id] = contact_ids(sf, 1)

    record = sf.Contact.get(record_id, params={"fields": "Id,Email"})

    assert list(record) == ["attributes", "Id", "Email"]


def test_deleting_marks_the_record_deleted_and_later_writes_fail(sf: Salesforce) -> None:
    [record_id] = contact_ids(sf, 1)

    assert sf.Contact.delete(record_id) == 204

    with pytest.raises(SalesforceResourceNotFound) as fetching:
        sf.Contact.get(record_id)
    with pytest.raises(SalesforceResourceNotFound) as patching:
        sf.Contact.update(record_id, {"Title": "ghost"})
    assert fetching.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"
    assert patching.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"
    assert sf.query(f"SELECT IsDeleted FROM Contact WHERE Id = '{record_id}'", include_deleted=True)[
        "records"
    ][0]["IsDeleted"]


def test_an_unknown_or_malformed_id_is_not_found(sf: Salesforce) -> None:
    with pytest.raises(SalesforceResourceNotFound) as unknown:
        sf.Contact.get(UNKNOWN_CONTACT)
    with pytest.raises(SalesforceResourceNotFound) as malformed:
        sf.Contact.update("not-an-id", {"Title": "x"})

    assert unknown.value.content == [
        {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}
    ]
    assert "Provided external ID field does not exist" in malformed.value.content[0]["message"]


def test_create_checks_required_fields_and_answers_201_with_the_id(sf: Salesforce) -> None:
    created = sf.Lead.create({"LastName": "Nguyen", "Company": "Acme", "Email": "n@acme.com"})

    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.Lead.create({"LastName": "No Company"})

    assert created["success"] is True
    assert created["id"].startswith("00Q")
    assert sf.Lead.get(created["id"])["Status"] == "Open - Not Contacted"
    assert refused.value.content[0] == {
        "message": "Required fields are missing: [Company]",
        "errorCode": "REQUIRED_FIELD_MISSING",
        "fields": ["Company"],
    }


def test_get_updated_and_get_deleted_cover_a_window(salesforce_sandbox: Served, sf: Salesforce) -> None:
    changed, removed = contact_ids(sf, 2)
    start = datetime.now(UTC) - timedelta(minutes=1)
    sf.Contact.update(changed, {"Title": "Changed"})
    sf.Contact.delete(removed)
    end = datetime.now(UTC) + timedelta(minutes=2)

    updated = sf.Contact.updated(start, end)
    deleted = sf.Contact.deleted(start, end)

    assert updated["ids"] == [changed]
    assert [entry["id"] for entry in deleted["deletedRecords"]] == [removed]
    assert updated["latestDateCovered"].endswith(":00.000+0000")


def test_limits_and_sobject_routes_are_counted_by_their_templates(
    salesforce_sandbox: Served, sf: Salesforce
) -> None:
    [record_id] = contact_ids(sf, 1)
    sf.Contact.get(record_id)
    sf.Contact.describe()
    sf.limits()

    calls = {(call["method"], call["route"]): call["count"] for call in salesforce_sandbox.control.calls()}

    assert calls == {
        ("POST", "/services/oauth2/token"): 1,
        ("GET", "/services/data/{version}/query"): 1,
        ("GET", RECORD_ROUTE): 1,
        ("GET", "/services/data/{version}/sobjects/{sobject}/describe"): 1,
        ("GET", "/services/data/{version}/limits"): 1,
    }


def test_seeded_records_get_ids_and_can_replace_existing_ones(
    salesforce_sandbox: Served, sf: Salesforce
) -> None:
    [new_id] = salesforce_sandbox.control.seed(
        [{"sobject": "Lead", "LastName": "Seeded", "Company": "Initech", "IsDeleted": True}]
    )
    [existing] = contact_ids(sf, 1)
    [same] = salesforce_sandbox.control.seed([{"sobject": "Contact", "Id": existing, "LastName": "Replaced"}])

    assert new_id.startswith("00Q")
    assert same == existing
    assert sf.Contact.get(existing)["Name"] == "Replaced"
    assert sf.query(f"SELECT Id FROM Lead WHERE Id = '{new_id}'")["totalSize"] == 0
    assert sf.query(f"SELECT Id FROM Lead WHERE Id = '{new_id}'", include_deleted=True)["totalSize"] == 1
    with pytest.raises(ValueError):
        salesforce_sandbox.control.seed([{"sobject": "Contact", "LastName": "x", "Nope__c": 1}])


def test_the_modstamp_index_walks_inclusive_and_exclusive_bounds_both_ways() -> None:
    emulator = SalesforceEmulator(contacts=5000, seed=3)
    table = emulator.store.tables["contact"]
    ordered = sorted(table.records.values(), key=lambda row: (row["SystemModstamp"], row["Id"]))
    low, high = ordered[1000]["SystemModstamp"], ordered[1100]["SystemModstamp"]

    walked = list(table.index_range("SystemModstamp", low, True, high, False))

    assert walked == [row["Id"] for row in ordered if low <= row["SystemModstamp"] < high]
    assert list(table.index_range("SystemModstamp", low, False, high, True, descending=True)) == [
        row["Id"] for row in reversed(ordered) if low < row["SystemModstamp"] <= high
    ]
