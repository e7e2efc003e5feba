"""Salesforce emulator: what other clients of the API call (extractors, scripts, connected apps), through a
plain HTTP client. The refresh-token grant, compound addresses, the objects of a real org's global describe,
the version's resource directory, and NOT_FOUND for any resource it does not have."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connector.sandbox import credentials
from connector.sandbox.salesforce.store import SALES_USER_IDS
from tests.conftest import Served

DATA = "/services/data/v62.0"


@pytest.fixture
def api(salesforce_sandbox: Served) -> Iterator[httpx.Client]:
    token = refreshed(salesforce_sandbox).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=salesforce_sandbox.url, headers=headers, timeout=10) as client:
        yield client


def refreshed(served: Served, **form: str) -> httpx.Response:
    body = {
        "grant_type": "refresh_token",
        "refresh_token": credentials.SALESFORCE_REFRESH_TOKEN,
        "client_id": credentials.SALESFORCE_CLIENT_ID,
        "client_secret": credentials.SALESFORCE_CLIENT_SECRET,
        **form,
    }
    return httpx.post(f"{served.url}/services/oauth2/token", data=body)


def query(api: httpx.Client, soql: str) -> dict[str, Any]:
    answer = api.get(f"{DATA}/query", params={"q": soql})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_the_refresh_token_grant_hands_out_an_access_token_that_works(salesforce_sandbox: Served) -> None:
    answer = refreshed(salesforce_sandbox)

    body = answer.json()
    assert answer.status_code == 200
    assert set(body) == {
        "access_token",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
        "signature",
        "scope",
    }
    listed = httpx.get(
        f"{salesforce_sandbox.url}{DATA}/limits", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert listed.status_code == 200


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"refresh_token": "5Aep861-not-issued"}, ("invalid_grant", "expired access/refresh token")),
        ({"client_secret": ""}, ("invalid_client", "invalid client credentials")),
        ({"client_id": "3MVG9other"}, ("invalid_client_id", "client identifier invalid")),
    ],
)
def test_a_refresh_with_an_unknown_token_or_client_is_refused_as_salesforce_does(
    salesforce_sandbox: Served, form: dict[str, str], error: tuple[str, str]
) -> None:
    answer = refreshed(salesforce_sandbox, **form)

    assert answer.status_code == 400
    assert (answer.json()["error"], answer.json()["error_description"]) == error


def test_the_contact_describe_has_the_compound_mailing_address_and_its_parts(api: httpx.Client) -> None:
    fields = {field["name"]: field for field in api.get(f"{DATA}/sobjects/Contact/describe").json()["fields"]}

    address = fields["MailingAddress"]
    assert (address["type"], address["soapType"], address["updateable"], address["filterable"]) == (
        "address", "urn:address", False, False
    )  # fmt: skip
    parts = {name for name, field in fields.items() if field["compoundFieldName"] == "MailingAddress"}
    assert parts == {
        "MailingStreet", "MailingCity", "MailingState", "MailingPostalCode", "MailingCountry",
        "MailingLatitude", "MailingLongitude", "MailingGeocodeAccuracy",
    }  # fmt: skip
    assert fields["Email"]["compoundFieldName"] is None


def test_a_compound_address_is_selected_as_one_object_made_of_its_parts(api: httpx.Client) -> None:
    first, second = (r["Id"] for r in query(api, "SELECT Id FROM Contact ORDER BY Id LIMIT 2")["records"])
    patched = api.patch(
        f"{DATA}/sobjects/Contact/{first}", json={"MailingCity": "Lyon", "MailingCountry": "France"}
    )
    rows = query(
        api, f"SELECT Id, MailingAddress FROM Contact WHERE Id IN ('{first}', '{second}') ORDER BY Id"
    )

    assert patched.status_code == 204
    assert rows["records"][0]["MailingAddress"] == {
        "city": "Lyon", "country": "France", "geocodeAccuracy": None, "latitude": None, "longitude": None,
        "postalCode": None, "state": None, "street": None,
    }  # fmt: skip
    assert rows["records"][1]["MailingAddress"] is None, "no part set: null"
    refused = api.patch(f"{DATA}/sobjects/Contact/{first}", json={"MailingAddress": {"city": "Paris"}})
    assert (refused.status_code, refused.json()[0]["errorCode"]) == (400, "INVALID_FIELD_FOR_INSERT_UPDATE")
    filtered = api.get(f"{DATA}/query", params={"q": "SELECT Id FROM Contact WHERE MailingAddress = null"})
    assert filtered.status_code == 400
    assert "field 'MailingAddress' can not be filtered" in filtered.json()[0]["message"]


def test_the_global_describe_lists_a_real_orgs_standard_objects_and_each_one_describes(
    api: httpx.Client,
) -> None:
    listed = api.get(f"{DATA}/sobjects").json()["sobjects"]
    names = [entry["name"] for entry in listed]

    assert names == sorted(names)
    assert {"Account", "Contact", "Lead", "Task", "Event", "Opportunity", "Case", "Campaign", "User"} <= set(
        names
    )
    for entry in listed:
        described = api.get(entry["urls"]["describe"])
        assert described.status_code == 200, entry["name"]
        assert {"Id", "SystemModstamp"} <= {field["name"] for field in described.json()["fields"]}, entry[
            "name"
        ]
    assert query(api, "SELECT Id, Name FROM Opportunity") == {"totalSize": 0, "done": True, "records": []}


def test_users_are_queried_and_reached_through_a_records_owner(api: httpx.Client) -> None:
    users = query(api, "SELECT Id, Name, Username, IsActive FROM User ORDER BY Id")["records"]
    owned = query(api, "SELECT Id, OwnerId, Owner.Name FROM Contact LIMIT 5")["records"]

    assert len(users) == 2 + len(SALES_USER_IDS) and all(user["IsActive"] for user in users)
    assert credentials.SALESFORCE_USERNAME in {user["Username"] for user in users}
    names = {user["Id"]: user["Name"] for user in users}
    assert all(row["Owner"]["Name"] == names[row["OwnerId"]] for row in owned)


def test_the_versions_resource_directory_names_the_resources(api: httpx.Client) -> None:
    directory = api.get(DATA).json()

    assert directory["sobjects"] == f"{DATA}/sobjects" and directory["query"] == f"{DATA}/query"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"{DATA}/tooling/query"),
        ("PUT", f"{DATA}/sobjects/Contact/describe/layouts"),
        ("DELETE", f"{DATA}/analytics/reports"),
        ("PATCH", f"{DATA}/nothing-here"),
        ("GET", f"{DATA}/sobjects/Widget__c/describe"),
    ],
)
def test_a_resource_the_org_does_not_have_is_not_found_whatever_the_method(
    api: httpx.Client, method: str, path: str
) -> None:
    answer = api.request(method, path)

    assert answer.status_code == 404
    assert answer.json() == [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]


def test_a_resource_it_has_with_a_method_it_does_not_take_is_405_as_salesforce_answers(
    api: httpx.Client,
) -> None:
    answer = api.post(f"{DATA}/limits")

    assert answer.status_code == 405
    assert answer.json()[0]["errorCode"] == "METHOD_NOT_ALLOWED"
