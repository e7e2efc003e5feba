"""HubSpot emulator: what other clients of the API call (extractors, scripts), through a plain HTTP client.
Custom object schemas, every standard type's properties or 403 MISSING_SCOPES, singular type names, the
legacy v2 property lists, 404 bodies with their category, and property definitions of the published types."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connector.sandbox import credentials
from connector.sandbox.hubspot.catalog import TYPES
from connector.sandbox.hubspot.limits import CONNECTOR_SCOPES
from tests.conftest import Served

# The published property types and field types (the properties API's PropertyCreate in HubSpot's public spec
# collection, PublicApiSpecs/CRM/Properties/Rollouts/145899/v3/properties.json) and which go together
# (https://developers.hubspot.com/docs/api/crm/properties).
PUBLISHED = {
    "string": {"text", "textarea", "file", "html", "phonenumber"},
    "number": {"number", "calculation_equation"},
    "date": {"date"},
    "datetime": {"date"},
    "enumeration": {"booleancheckbox", "checkbox", "radio", "select", "calculation_equation"},
    "bool": {"booleancheckbox", "calculation_equation"},
    "phone_number": {"phonenumber"},
}
EVERY_SCOPE = sorted(
    {*CONNECTOR_SCOPES, *(scope for kind in TYPES for scope in kind.scopes), "crm.schemas.custom.read"}
)


@pytest.fixture
def api(hubspot_sandbox: Served) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"}
    with httpx.Client(base_url=hubspot_sandbox.url, headers=headers, timeout=10) as client:
        yield client


def test_a_portal_without_custom_objects_lists_no_schemas_to_a_token_that_may_read_them(
    hubspot_sandbox: Served, api: httpx.Client
) -> None:
    refused = api.get("/crm/v3/schemas")
    hubspot_sandbox.control.configure(token_scopes=[*CONNECTOR_SCOPES, "crm.schemas.custom.read"])

    assert refused.status_code == 403 and refused.json()["category"] == "MISSING_SCOPES"
    for path in ("/crm/v3/schemas", "/crm-object-schemas/v3/schemas"):
        answer = api.get(path)
        assert (answer.status_code, answer.json()) == (200, {"results": []}), path


@pytest.mark.parametrize("kind", [kind.name for kind in TYPES])
def test_every_standard_types_properties_are_listed_to_a_token_with_its_scope(
    hubspot_sandbox: Served, api: httpx.Client, kind: str
) -> None:
    hubspot_sandbox.control.configure(token_scopes=EVERY_SCOPE)

    answer = api.get(f"/crm/v3/properties/{kind}")

    assert answer.status_code == 200, answer.text
    assert "hs_object_id" in {prop["name"] for prop in answer.json()["results"]}


def test_without_the_types_scope_its_properties_are_403_missing_scopes_never_400(api: httpx.Client) -> None:
    contacts = api.get("/crm/v3/properties/contacts")
    deals = api.get("/crm/v3/properties/deals")
    unknown = api.get("/crm/v3/properties/widgets")

    assert contacts.status_code == 200, "the connector's own scopes"
    body = deals.json()
    assert (deals.status_code, body["category"]) == (403, "MISSING_SCOPES")
    assert set(body["errors"][0]["context"]["requiredGranularScopes"]) == {
        "crm.objects.deals.read",
        "crm.schemas.deals.read",
    }
    assert {"status", "message", "correlationId", "category"} <= set(body)
    assert (
        unknown.status_code == 400
        and unknown.json()["message"] == "Unable to infer object type from: widgets"
    )


@pytest.mark.parametrize("name", ["contact", "0-1", "CONTACTS"])
def test_an_object_type_is_named_by_its_singular_or_its_id_on_the_objects_and_search_routes(
    api: httpx.Client, name: str
) -> None:
    plural = api.get("/crm/v3/objects/contacts/1001", params={"properties": "email"}).json()
    other = api.get(f"/crm/v3/objects/{name}/1001", params={"properties": "email"})
    search = api.post(
        f"/crm/v3/objects/{name}/search",
        json={
            "filterGroups": [
                {"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": "1001"}]}
            ]
        },
    )
    batch = api.post(
        f"/crm/v3/objects/{name}/batch/read", json={"inputs": [{"id": "1001"}], "properties": ["email"]}
    )

    assert other.status_code == 200 and other.json()["properties"] == plural["properties"]
    assert search.status_code == 200 and [r["id"] for r in search.json()["results"]] == ["1001"]
    assert batch.status_code == 200 and batch.json()["results"][0]["id"] == "1001"


def test_v4_associations_take_singular_type_names_too(hubspot_sandbox: Served, api: httpx.Client) -> None:
    store = hubspot_sandbox.emulator.contacts_store
    linked = next(r for r in store.live.values() if r.properties.get("associatedcompanyid"))

    batch = api.post(
        "/crm/v4/associations/contact/company/batch/read", json={"inputs": [{"id": str(linked.id)}]}
    )
    listed = api.get(f"/crm/v4/objects/contact/{linked.id}/associations/company")

    assert batch.status_code == 200, batch.text
    assert batch.json()["results"][0]["to"][0]["toObjectId"] == int(linked.properties["associatedcompanyid"])
    assert listed.status_code == 200, listed.text
    assert listed.json()["results"][0]["toObjectId"] == int(linked.properties["associatedcompanyid"])


def test_the_legacy_v2_property_lists_are_bare_arrays(hubspot_sandbox: Served, api: httpx.Client) -> None:
    hubspot_sandbox.control.configure(token_scopes=EVERY_SCOPE)

    contacts = api.get("/properties/v2/contact/properties")
    companies = api.get("/companies/v2/properties")

    for answer in (contacts, companies):
        assert answer.status_code == 200, answer.text
        assert isinstance(answer.json(), list) and answer.json()
    email = next(p for p in contacts.json() if p["name"] == "email")
    assert (email["type"], email["fieldType"], email["groupName"]) == ("string", "text", "contactinformation")
    assert isinstance(email["createdAt"], int) and email["readOnlyValue"] is False
    assert "domain" in {p["name"] for p in companies.json()}


def test_associatedcompanyid_is_a_number_in_the_contact_information_group(api: httpx.Client) -> None:
    prop = api.get("/crm/v3/properties/contacts/associatedcompanyid").json()

    assert (prop["type"], prop["fieldType"], prop["groupName"]) == ("number", "number", "contactinformation")


def test_every_seeded_property_has_a_published_type_a_field_type_that_goes_with_it_and_a_group(
    hubspot_sandbox: Served, api: httpx.Client
) -> None:
    hubspot_sandbox.control.configure(token_scopes=EVERY_SCOPE)
    wrong: list[tuple[str, str, Any, Any, Any]] = []
    for kind in TYPES:
        for prop in api.get(f"/crm/v3/properties/{kind.name}").json()["results"]:
            fits = prop["fieldType"] in PUBLISHED.get(prop["type"], set())
            if not fits or not prop["groupName"] or prop["groupName"] in PUBLISHED:
                wrong.append((kind.name, prop["name"], prop["type"], prop["fieldType"], prop["groupName"]))

    assert not wrong


def test_a_404_body_carries_the_category_the_error_schema_requires(api: httpx.Client) -> None:
    route = api.get("/crm/v3/objects/contacts/1001/nothing-here")
    record = api.get("/crm/v3/objects/contacts/99999999")

    for answer in (route, record):
        assert answer.status_code == 404
        body = answer.json()
        assert {"message", "correlationId", "category"} <= set(body)
        assert body["category"] == "OBJECT_NOT_FOUND"
