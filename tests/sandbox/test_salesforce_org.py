"""Salesforce emulator: the org as a new one is. No connector fields until an admin creates them in Setup,
datetimes stored to the second, and records of a long transaction that appear behind later ones."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from connector.sandbox.salesforce.org import CONNECTOR_STATUS_FIELDS
from tests.conftest import Served
from tests.sandbox.test_salesforce_auth import client

NO_SUCH_COLUMN = "No such column 'Enrichment_Status__c' on entity 'Contact'"


@pytest.fixture
def sf(salesforce_sandbox: Served) -> Salesforce:
    return client(salesforce_sandbox)


def first_contact(sf: Salesforce) -> str:
    record_id: str = sf.query("SELECT Id FROM Contact ORDER BY Id LIMIT 1")["records"][0]["Id"]
    return record_id


def test_a_new_org_has_none_of_the_connectors_fields_and_refuses_them_as_salesforce_does(
    sf: Salesforce,
) -> None:
    described = {field["name"] for field in sf.Contact.describe()["fields"]}
    record_id = first_contact(sf)

    with pytest.raises(SalesforceMalformedRequest) as queried:
        sf.query("SELECT Id, Enrichment_Status__c FROM Contact")
    with pytest.raises(SalesforceMalformedRequest) as written:
        sf.Contact.update(record_id, {"Title": "CTO", "Enrichment_Status__c": "Enriched"})

    assert not {"Enrichment_Status__c", "Last_Enriched__c", "Job_Change_Detected__c"} & described
    assert "LinkedIn_URL__c" in described, "the org's own custom field is there"
    assert queried.value.content[0]["errorCode"] == "INVALID_FIELD"
    assert NO_SUCH_COLUMN in queried.value.content[0]["message"]
    assert written.value.content == [
        {
            "message": "No such column 'Enrichment_Status__c' on sobject of type Contact",
            "errorCode": "INVALID_FIELD",
            "fields": ["Enrichment_Status__c"],
        }
    ]
    assert sf.Contact.get(record_id)["Title"] != "CTO", "nothing of the refused update was written"


def test_fields_an_admin_creates_in_setup_are_described_read_and_written(
    salesforce_sandbox: Served, sf: Salesforce
) -> None:
    created = salesforce_sandbox.control.create_fields("Contact", CONNECTOR_STATUS_FIELDS)
    fields = {field["name"]: field for field in sf.Contact.describe()["fields"]}
    record_id = first_contact(sf)
    before = sf.Contact.get(record_id)
    sf.Contact.update(record_id, {"Enrichment_Status__c": "Enriched", "Job_Change_Detected__c": True})

    assert created == ["Enrichment_Status__c", "Last_Enriched__c", "Job_Change_Detected__c"]
    status = fields["Enrichment_Status__c"]
    assert (status["type"], status["custom"], status["restrictedPicklist"]) == ("picklist", True, True)
    assert [value["value"] for value in status["picklistValues"]] == [
        "Pending", "Enriched", "Not Found", "Failed", "Skipped"
    ]  # fmt: skip
    assert (fields["Last_Enriched__c"]["type"], fields["Job_Change_Detected__c"]["type"]) == (
        "datetime",
        "boolean",
    )
    assert fields["Job_Change_Detected__c"]["nillable"] is False
    assert (before["Enrichment_Status__c"], before["Job_Change_Detected__c"]) == (None, False), "new: empty"
    after = sf.Contact.get(record_id)
    assert (after["Enrichment_Status__c"], after["Job_Change_Detected__c"]) == ("Enriched", True)
    assert "Enrichment_Status__c" not in {f["name"] for f in sf.Lead.describe()["fields"]}, "Contact only"


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        ({"name": "Title", "type": "text"}, "not a custom field API name"),
        ({"name": "Bad__Name__c", "type": "text"}, "not a custom field API name"),
        ({"name": "Status__c", "type": "picklist"}, "a picklist needs its values"),
        ({"name": "LinkedIn_URL__c", "type": "url"}, "Contact already has a field named linkedin_url__c"),
    ],
)
def test_setup_refuses_what_its_wizard_refuses(
    salesforce_sandbox: Served, field: dict[str, str], reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        salesforce_sandbox.control.create_fields("Contact", [field])


def test_datetimes_are_stored_to_the_second(salesforce_sandbox: Served, sf: Salesforce) -> None:
    salesforce_sandbox.control.create_fields("Contact", CONNECTOR_STATUS_FIELDS)
    record_id = first_contact(sf)
    sf.Contact.update(record_id, {"Last_Enriched__c": "2026-05-01T10:00:00.482Z"})

    record = sf.Contact.get(record_id)
    stamps = [r["SystemModstamp"] for r in sf.query_all("SELECT SystemModstamp FROM Contact")["records"]]

    assert record["Last_Enriched__c"] == "2026-05-01T10:00:00.000+0000"
    assert record["SystemModstamp"].endswith(".000+0000") and record["CreatedDate"].endswith(".000+0000")
    assert all(stamp.endswith(".000+0000") for stamp in stamps)
    assert len(set(stamps)) < len(stamps), "many records share one second"


def test_a_long_transaction_commits_behind_records_written_after_it_began(
    salesforce_sandbox: Served, sf: Salesforce
) -> None:
    late, early = (r["Id"] for r in sf.query("SELECT Id FROM Contact ORDER BY Id LIMIT 2")["records"])
    salesforce_sandbox.control.configure(long_transaction_seconds=1.0)
    sf.Contact.update(late, {"Title": "Written in a long transaction"})
    stamped = datetime.now(UTC).replace(microsecond=0)  # its stamp is this second or an earlier one
    salesforce_sandbox.control.configure(long_transaction_seconds=0.0)
    while datetime.now(UTC).replace(microsecond=0) <= stamped:
        time.sleep(0.02)  # the next second: the later write gets a later stamp
    sf.Contact.update(early, {"Title": "Written after it, committed at once"})

    meanwhile = sf.Contact.get(late)
    seen = sf.Contact.get(early)
    deadline = time.monotonic() + 10
    while sf.Contact.get(late)["Title"] != "Written in a long transaction" and time.monotonic() < deadline:
        time.sleep(0.05)
    committed = sf.Contact.get(late)

    assert meanwhile["Title"] != "Written in a long transaction", "invisible until it commits"
    assert committed["Title"] == "Written in a long transaction"
    assert committed["SystemModstamp"] < seen["SystemModstamp"], "visible now, stamped before what was seen"
    window = sf.query(
        f"SELECT Id FROM Contact WHERE SystemModstamp < {seen['SystemModstamp'].replace('+0000', 'Z')}"
        f" AND Id = '{late}'"
    )
    assert window["totalSize"] == 1


def test_the_admin_route_is_the_only_way_to_create_fields(salesforce_sandbox: Served, sf: Salesforce) -> None:
    """The data API has no resource that adds a field (the Metadata and Tooling APIs are not emulated)."""
    token = sf.session_id
    answer = httpx.post(
        f"{salesforce_sandbox.url}/services/data/v62.0/tooling/sobjects/CustomField",
        json={"FullName": "Contact.Enrichment_Status__c"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert (answer.status_code, answer.json()[0]["errorCode"]) == (404, "NOT_FOUND")
