"""Salesforce write-back when a value does not fit: the field is refused with a reason, the record still written.

Through simple-salesforce against the Salesforce emulator. Values the describe says cannot fit are kept back
before sending; fields Salesforce itself refuses by name are dropped and the rest of the record sent again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from connector.adapters.salesforce import SalesforceAdapter
from connector.errors import ConnectorError, RetriableError
from connector.models import FieldUpdate, FollowUp, RecordRef, WriteOutcome
from connector.retry import RetryPolicy
from tests.adapters.contract import EVERYTHING
from tests.adapters.test_salesforce_adapter import CLIENT, make
from tests.conftest import Served
from tests.support import create_status_fields

UPDATE = "/services/data/{version}/composite/sobjects"
DESCRIBE = "/services/data/{version}/sobjects/{sobject}/describe"
READ = "/services/data/{version}/composite/sobjects/{sobject}"
RULE_MESSAGE = "Titles are set by the sales team, not by tools"
QUICK = RetryPolicy(attempts=2, base_delay=0.01)


@pytest.fixture
def adapter(salesforce_sandbox: Served) -> SalesforceAdapter:
    create_status_fields(salesforce_sandbox)
    return make(salesforce_sandbox)


def contacts(adapter: SalesforceAdapter, count: int) -> list[RecordRef]:
    return [r.ref for r in adapter.pull_changed(EVERYTHING, ["Title"])][:count]


def now(adapter: SalesforceAdapter, ref: RecordRef, *fields: str) -> dict[str, Any]:
    return dict(adapter.read_current([ref.id], list(fields))[ref.id])


def test_a_field_the_org_has_not_created_yet_is_refused_with_salesforces_reason_and_the_rest_written(
    salesforce_sandbox: Served,
) -> None:
    """A new org: nobody has created the status fields in Setup. The write of one is refused as Salesforce
    refuses it (INVALID_FIELD, "No such column"), never sent, and the record's other fields are written."""
    adapter = make(salesforce_sandbox)
    record, *_ = contacts(adapter, 1)

    [result] = adapter.write_back([FieldUpdate(record, {"Title": "CTO", "Enrichment_Status__c": "Enriched"})])

    assert result.outcome is WriteOutcome.WRITTEN
    assert result.refused_fields == {
        "Enrichment_Status__c": "INVALID_FIELD: No such column 'Enrichment_Status__c' on sobject of type "
        "Contact; not sent"
    }
    assert now(adapter, record, "Title") == {"Id": record.id, "Title": "CTO"}


def test_a_title_too_long_for_its_field_is_not_sent_and_the_phone_and_status_are_written(
    salesforce_sandbox: Served, adapter: SalesforceAdapter
) -> None:
    record, other = contacts(adapter, 2)
    before = now(adapter, record, "Title")["Title"]
    salesforce_sandbox.control.clear_stats()

    results = adapter.write_back(
        [
            FieldUpdate(
                record,
                {
                    "Title": "Head of " + "x" * 192,
                    "Phone": "+1 415 555 0100",
                    "Enrichment_Status__c": "Enriched",
                },
            ),
            FieldUpdate(other, {"Title": "CTO"}),
        ]
    )

    assert [r.outcome for r in results] == [WriteOutcome.WRITTEN, WriteOutcome.WRITTEN]
    assert results[0].refused_fields == {
        "Title": "STRING_TOO_LONG: Title: data value too large: 200 characters (max length=128); not sent"
    }
    assert not results[1].refused_fields
    assert now(adapter, record, "Title", "Phone", "Enrichment_Status__c") == {
        "Id": record.id,
        "Title": before,
        "Phone": "+1 415 555 0100",
        "Enrichment_Status__c": "Enriched",
    }
    assert salesforce_sandbox.control.count(method="PATCH", route=UPDATE) == 1, "checked before sending"


def test_each_value_is_checked_against_its_described_type_and_a_record_left_with_nothing_is_not_sent(
    salesforce_sandbox: Served, adapter: SalesforceAdapter
) -> None:
    mixed, hopeless = contacts(adapter, 2)
    salesforce_sandbox.control.clear_stats()

    results = adapter.write_back(
        [
            FieldUpdate(
                mixed,
                {
                    "Email": "not an email",
                    "Enrichment_Status__c": "Maybe",  # a restricted picklist
                    "Job_Change_Detected__c": "yes",  # a checkbox
                    "Last_Enriched__c": datetime(2026, 5, 1, 10, tzinfo=UTC),
                    "Department": "😀" * 41,  # 82 UTF-16 units: Salesforce counts an emoji twice
                    "No_Such_Field__c": "x",
                    "MobilePhone": "+33 6 12 34 56 78",
                },
            ),
            FieldUpdate(hopeless, {"Title": "y" * 129, "Email": "@nowhere"}),
        ]
    )

    written, rejected = results
    assert written.outcome is WriteOutcome.WRITTEN
    assert {name: reason.split(":")[0] for name, reason in written.refused_fields.items()} == {
        "Email": "INVALID_EMAIL_ADDRESS",
        "Enrichment_Status__c": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "Job_Change_Detected__c": "INVALID_TYPE_ON_FIELD_IN_RECORD",
        "Department": "STRING_TOO_LONG",
        "No_Such_Field__c": "INVALID_FIELD",
    }
    assert written.refused_fields["Enrichment_Status__c"] == (
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST: Enrichment Status: bad value for restricted picklist field: "
        "Maybe; not sent"
    )
    assert now(adapter, mixed, "MobilePhone", "Last_Enriched__c")["MobilePhone"] == "+33 6 12 34 56 78"
    assert rejected.outcome is WriteOutcome.REJECTED and rejected.code == "STRING_TOO_LONG"
    assert rejected.reason == (
        "STRING_TOO_LONG: Title: data value too large: 129 characters (max length=128); not sent; "
        "INVALID_EMAIL_ADDRESS: Email: invalid email address: @nowhere; not sent"
    )
    assert salesforce_sandbox.control.count(method="PATCH", route=UPDATE) == 1
    assert salesforce_sandbox.control.count(route=DESCRIBE) == 1


def test_a_field_a_validation_rule_refuses_by_name_is_dropped_and_the_rest_sent_again(
    salesforce_sandbox: Served, adapter: SalesforceAdapter
) -> None:
    refused, only_title, fine = contacts(adapter, 3)
    before = now(adapter, refused, "Title")["Title"]
    rule = {"field": "Title", "value_pattern": "(?i)chief", "message": RULE_MESSAGE, "on_field": True}
    salesforce_sandbox.control.configure(validation_rules=[rule])
    salesforce_sandbox.control.clear_stats()

    results = adapter.write_back(
        [
            FieldUpdate(refused, {"Title": "Chief Data Officer", "Phone": "+1 415 555 0101"}),
            FieldUpdate(only_title, {"Title": "Chief of Staff"}),
            FieldUpdate(fine, {"Title": "Data Engineer"}),
        ]
    )

    assert results[0].outcome is WriteOutcome.WRITTEN
    assert results[0].refused_fields == {"Title": f"FIELD_CUSTOM_VALIDATION_EXCEPTION: {RULE_MESSAGE}"}
    assert now(adapter, refused, "Title", "Phone") == {
        "Id": refused.id,
        "Title": before,
        "Phone": "+1 415 555 0101",
    }
    assert (results[1].outcome, results[1].code) == (
        WriteOutcome.REJECTED,
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
    )
    assert results[1].reason == f"FIELD_CUSTOM_VALIDATION_EXCEPTION: {RULE_MESSAGE}"
    assert results[2].outcome is WriteOutcome.WRITTEN and not results[2].refused_fields
    # One call for all three, one more for the refused record's other fields.
    assert salesforce_sandbox.control.count(method="PATCH", route=UPDATE) == 2


def test_a_validation_rule_that_names_no_field_or_one_not_sent_rejects_the_record_with_its_message(
    salesforce_sandbox: Served, adapter: SalesforceAdapter
) -> None:
    top_of_page, other_field = contacts(adapter, 2)
    adapter.write_back([FieldUpdate(other_field, {"Department": "Office of the Chief"})])
    rules = [
        {"field": "Title", "value_pattern": "(?i)chief", "message": RULE_MESSAGE},
        {"field": "Department", "value_pattern": "Chief", "message": "No chiefs here", "on_field": True},
    ]
    salesforce_sandbox.control.configure(validation_rules=rules)
    salesforce_sandbox.control.clear_stats()

    results = adapter.write_back(
        [
            FieldUpdate(top_of_page, {"Title": "Chief Data Officer", "Phone": "+1 415 555 0102"}),
            FieldUpdate(other_field, {"Phone": "+1 415 555 0103"}),
        ]
    )

    assert [(r.outcome, r.code) for r in results] == [
        (WriteOutcome.REJECTED, "FIELD_CUSTOM_VALIDATION_EXCEPTION")
    ] * 2
    assert results[0].reason == f"FIELD_CUSTOM_VALIDATION_EXCEPTION: {RULE_MESSAGE}"
    assert results[1].reason == "FIELD_CUSTOM_VALIDATION_EXCEPTION: No chiefs here"
    assert salesforce_sandbox.control.count(method="PATCH", route=UPDATE) == 1, (
        "nothing to isolate: no resend"
    )
    assert now(adapter, top_of_page, "Phone")["Phone"] != "+1 415 555 0102"


def test_the_object_is_described_once_for_many_write_passes(
    salesforce_sandbox: Served, adapter: SalesforceAdapter
) -> None:
    refs = contacts(adapter, 3)
    salesforce_sandbox.control.clear_stats()
    for n, ref in enumerate(refs):
        assert (
            adapter.write_back([FieldUpdate(ref, {"Title": f"Title {n}"})])[0].outcome is WriteOutcome.WRITTEN
        )
    assert salesforce_sandbox.control.count(route=DESCRIBE) == 1


# -- answers that are not JSON --------------------------------------------------------------------------------
def quick(served: Served) -> SalesforceAdapter:
    return SalesforceAdapter("acme-sf", CLIENT, instance_url=served.url, retry_policy=QUICK)


def test_an_html_page_instead_of_json_fails_a_read_as_retriable_and_the_retry_reads(
    salesforce_sandbox: Served,
) -> None:
    adapter = quick(salesforce_sandbox)
    refs = contacts(adapter, 2)
    salesforce_sandbox.control.configure(html_answers={f"POST {READ}": 1})

    current = adapter.read_current([r.id for r in refs], ["Title"])

    assert set(current) == {r.id for r in refs}
    salesforce_sandbox.control.configure(html_answers={f"POST {READ}": 2})
    with pytest.raises(RetriableError, match="not JSON"):
        adapter.read_current([r.id for r in refs], ["Title"])


def test_an_html_page_after_an_update_is_sent_again_and_the_record_written(
    salesforce_sandbox: Served,
) -> None:
    adapter = quick(salesforce_sandbox)
    [ref] = contacts(adapter, 1)
    salesforce_sandbox.control.configure(html_answers={f"PATCH {UPDATE}": 1})
    salesforce_sandbox.control.clear_stats()

    [result] = adapter.write_back([FieldUpdate(ref, {"Title": "Twice sent, once set"})])

    assert result.outcome is WriteOutcome.WRITTEN
    assert salesforce_sandbox.control.count(method="PATCH", route=UPDATE) == 2
    assert now(adapter, ref, "Title")["Title"] == "Twice sent, once set"


@pytest.mark.parametrize("knob", ["html_answers", "garbled_answers"])
def test_an_unreadable_answer_to_a_task_create_is_a_connector_error_and_never_posted_again(
    salesforce_sandbox: Served, knob: str
) -> None:
    adapter = quick(salesforce_sandbox)
    [ref] = contacts(adapter, 1)
    salesforce_sandbox.control.configure(**{knob: {f"POST {UPDATE}": 1}})
    salesforce_sandbox.control.clear_stats()

    with pytest.raises(ConnectorError, match="may exist already") as raised:
        adapter.create_follow_ups([FollowUp(ref, "Job change: reach out", "Moved to Globex.")])

    assert not isinstance(raised.value, RetriableError)
    assert salesforce_sandbox.control.count(method="POST", route=UPDATE) == 1
    tasks = adapter._call("tasks", lambda sf: sf.query_all(f"SELECT Id FROM Task WHERE WhoId = '{ref.id}'"))
    assert tasks["totalSize"] == 1, "the create behind the answer was carried out, once"
