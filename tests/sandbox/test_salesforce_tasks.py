"""Salesforce emulator: the Task sObject, owners on contacts and leads, sObject Collections create."""

from __future__ import annotations

from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from connector.sandbox.salesforce.store import INTEGRATION_USER_ID, SALES_USER_IDS
from tests.conftest import Served
from tests.sandbox.test_salesforce_auth import client

COLLECTION_ROUTE = "/services/data/{version}/composite/sobjects"
UNKNOWN_CONTACT = "003000000000000AAA"


@pytest.fixture
def sf(salesforce_sandbox: Served) -> Salesforce:
    return client(salesforce_sandbox)


def create(sf: Salesforce, records: list[dict[str, Any]], all_or_none: bool = False) -> list[dict[str, Any]]:
    body = {"allOrNone": all_or_none, "records": [{"attributes": {"type": "Task"}, **r} for r in records]}
    results: list[dict[str, Any]] = sf.restful("composite/sobjects", method="POST", json=body)
    return results


def first(sf: Salesforce, sobject: str, count: int = 1) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = sf.query(f"SELECT Id, OwnerId FROM {sobject} ORDER BY Id LIMIT {count}")[
        "records"
    ]
    return records


def tasks_of(sf: Salesforce, who_id: str) -> list[dict[str, Any]]:
    soql = (
        "SELECT Id, Subject, WhoId, OwnerId, Status, Priority, ActivityDate, Description "
        f"FROM Task WHERE WhoId = '{who_id}'"
    )
    records: list[dict[str, Any]] = sf.query(soql)["records"]
    return records


def test_task_describe_has_the_activity_fields(sf: Salesforce) -> None:
    described = sf.Task.describe()
    fields = {field["name"]: field for field in described["fields"]}

    assert (described["name"], described["keyPrefix"]) == ("Task", "00T")
    who = fields["WhoId"]
    assert (who["type"], who["referenceTo"], who["relationshipName"], who["polymorphicForeignKey"]) == (
        "reference",
        ["Contact", "Lead"],
        "Who",
        True,
    )
    assert (fields["WhatId"]["relationshipName"], fields["OwnerId"]["referenceTo"]) == ("What", ["User"])
    assert (fields["Subject"]["type"], fields["Subject"]["length"]) == ("combobox", 255)
    assert (fields["Description"]["type"], fields["Description"]["length"]) == ("textarea", 32000)
    assert fields["ActivityDate"]["type"] == "date"
    status = fields["Status"]
    assert [value["value"] for value in status["picklistValues"]] == [
        "Not Started",
        "In Progress",
        "Completed",
        "Waiting on someone else",
        "Deferred",
    ]
    assert [value["value"] for value in status["picklistValues"] if value["defaultValue"]] == ["Not Started"]
    assert [value["value"] for value in fields["Priority"]["picklistValues"]] == ["High", "Normal", "Low"]
    assert {"IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp"} <= set(fields)


def test_contacts_and_leads_are_owned_by_a_few_sales_reps(sf: Salesforce) -> None:
    for sobject in ("Contact", "Lead"):
        owners = {record["OwnerId"] for record in first(sf, sobject, 200)}
        assert len(owners) > 1 and owners <= set(SALES_USER_IDS), sobject
    assert all(owner.startswith("005") and len(owner) == 18 for owner in SALES_USER_IDS)


def test_collection_create_answers_per_record_in_order_and_creates_the_good_ones(
    salesforce_sandbox: Served, sf: Salesforce
) -> None:
    [contact] = first(sf, "Contact")
    [lead] = first(sf, "Lead")
    salesforce_sandbox.control.clear_stats()

    results = create(
        sf,
        [
            {"WhoId": contact["Id"], "Subject": "Call about the new job", "OwnerId": contact["OwnerId"]},
            {"WhoId": UNKNOWN_CONTACT, "Subject": "Ghost"},
            {"Id": "00T000000000001AAA", "WhoId": contact["Id"], "Subject": "With an Id"},
            {"WhoId": contact["Id"], "Description": "no subject"},
            {
                "WhoId": lead["Id"],
                "Subject": "Lead moved on",
                "ActivityDate": "2030-01-31",
                "Priority": "High",
            },
        ],
    )

    assert [result["success"] for result in results] == [True, False, False, False, True]
    assert [result["errors"][0]["statusCode"] for result in results if not result["success"]] == [
        "INVALID_CROSS_REFERENCE_KEY",
        "INVALID_FIELD",
        "REQUIRED_FIELD_MISSING",
    ]
    assert results[1]["errors"][0] == {
        "statusCode": "INVALID_CROSS_REFERENCE_KEY",
        "message": "invalid cross reference id",
        "fields": ["WhoId"],
    }
    assert results[3]["errors"][0]["fields"] == ["Subject"]
    assert all(result["id"].startswith("00T") for result in results if result["success"])
    assert salesforce_sandbox.control.count(method="POST", route=COLLECTION_ROUTE, status=200) == 1

    [task] = tasks_of(sf, contact["Id"])
    assert (task["Id"], task["Subject"], task["OwnerId"]) == (
        results[0]["id"],
        "Call about the new job",
        contact["OwnerId"],
    )
    assert (task["Status"], task["Priority"]) == ("Not Started", "Normal")  # defaulted on create
    [lead_task] = tasks_of(sf, lead["Id"])
    assert (lead_task["ActivityDate"], lead_task["Priority"], lead_task["OwnerId"]) == (
        "2030-01-31",
        "High",
        INTEGRATION_USER_ID,  # no OwnerId sent: the API user owns it
    )


def test_the_who_relationship_follows_the_id_to_contact_or_lead(sf: Salesforce) -> None:
    [contact] = first(sf, "Contact")
    [lead] = first(sf, "Lead")
    create(sf, [{"WhoId": contact["Id"], "Subject": "a"}, {"WhoId": lead["Id"], "Subject": "b"}])

    records = sf.query("SELECT Subject, Who.Name FROM Task ORDER BY Subject")["records"]

    assert [(r["Subject"], r["Who"]["attributes"]["type"]) for r in records] == [
        ("a", "Contact"),
        ("b", "Lead"),
    ]
    assert all(r["Who"]["Name"] for r in records)
    with pytest.raises(SalesforceMalformedRequest, match="on entity 'Name'"):
        sf.query("SELECT Who.MobilePhone FROM Task")


def test_all_or_none_rolls_every_record_back(sf: Salesforce) -> None:
    [contact] = first(sf, "Contact")

    results = create(
        sf, [{"WhoId": contact["Id"], "Subject": "fine"}, {"WhoId": UNKNOWN_CONTACT, "Subject": "bad"}], True
    )

    assert [result["success"] for result in results] == [False, False]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert tasks_of(sf, contact["Id"]) == []


def test_more_than_200_records_is_a_400_and_bad_values_are_refused(sf: Salesforce) -> None:
    [contact] = first(sf, "Contact")
    with pytest.raises(SalesforceMalformedRequest) as too_many:
        create(sf, [{"WhoId": contact["Id"], "Subject": "x"}] * 201)
    assert too_many.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"

    results = create(
        sf,
        [
            {"WhoId": contact["Id"], "Subject": "x", "Status": "Maybe"},
            {"WhoId": "001000000000000AAA", "Subject": "an account is not a Who"},
            {"WhoId": contact["Id"], "Subject": "s" * 256},
        ],
    )
    assert [result["errors"][0]["statusCode"] for result in results] == [
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "MALFORMED_ID",
        "STRING_TOO_LONG",
    ]
    assert tasks_of(sf, contact["Id"]) == []


def test_a_locked_parent_fails_the_create_with_unable_to_lock_row(
    salesforce_sandbox: Served, sf: Salesforce
) -> None:
    salesforce_sandbox.control.configure(lock_row_share=1.0)
    [contact] = first(sf, "Contact")

    [result] = create(sf, [{"WhoId": contact["Id"], "Subject": "x"}])

    assert result["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert contact["Id"] in result["errors"][0]["message"]
    assert tasks_of(sf, contact["Id"]) == []
