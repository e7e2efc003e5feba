"""The LoneScale emulator refuses exactly what the published `EnrichmentRequest` schema refuses, with the
documented error bodies, and says why on `/__sandbox/rejections`."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Served

BAD_REQUEST = {"message": "Bad request", "error": "Bad request", "statusCode": 400}
UNAUTHORISED = {"message": "Invalid API Key", "error": "Unauthorized", "statusCode": 401}
NOWHERE = "http://127.0.0.1:9/hooks/lonescale?token=t0k3n"  # the discard port: nothing is ever sent there


def valid_body() -> dict[str, Any]:
    return {
        "enrichment_type": ["email"],
        "contacts": [{"firstname": "John", "lastname": "Doe", "domain": "acme.com"}],
        "webhook_url": NOWHERE,
    }


@pytest.fixture(scope="module")
def bare(_lonescale_server: Served) -> Iterator[httpx.Client]:
    """One client for the module: building an httpx client costs tens of milliseconds (its TLS context)."""
    with httpx.Client(base_url=_lonescale_server.url, timeout=5) as client:
        yield client


@pytest.fixture
def api(lonescale_sandbox: Served, bare: httpx.Client) -> Iterator[httpx.Client]:
    # A long delay: accepted jobs never reach the webhook before the next reset cancels them.
    lonescale_sandbox.control.configure(webhook_delay_seconds=60)
    bare.headers["x-api-key"] = lonescale_sandbox.emulator.api_key
    yield bare
    del bare.headers["x-api-key"]


def last_rejection(client: httpx.Client) -> dict[str, Any]:
    rejections: list[dict[str, Any]] = client.get("/__sandbox/rejections").json()["rejections"]
    return rejections[-1]


def without(key: str) -> dict[str, Any]:
    body = valid_body()
    del body[key]
    return body


def with_top(**changes: Any) -> dict[str, Any]:
    return {**valid_body(), **changes}


def with_contact(**changes: Any) -> dict[str, Any]:
    body = valid_body()
    body["contacts"][0].update(changes)
    return body


def without_contact_key(key: str) -> dict[str, Any]:
    body = valid_body()
    del body["contacts"][0][key]
    return body


INVALID: list[tuple[str, Any, str]] = [
    ("missing enrichment_type", without("enrichment_type"), "missing required key 'enrichment_type'"),
    ("missing contacts", without("contacts"), "missing required key 'contacts'"),
    ("missing webhook_url", without("webhook_url"), "missing required key 'webhook_url'"),
    ("extra top-level key", with_top(priority="high"), "body has unknown keys ['priority']"),
    ("OAS-next force_refresh is not in the seed", with_top(force_refresh=True), "force_refresh"),
    ("OAS-next sync_to_crm is not in the seed", with_top(sync_to_crm=False), "sync_to_crm"),
    ("enrichment_type not an array", with_top(enrichment_type="email"), "must be an array"),
    ("enrichment_type empty", with_top(enrichment_type=[]), "minItems"),
    ("enrichment_type unknown value", with_top(enrichment_type=["mail"]), "not one of"),
    ("enrichment_type wrong item type", with_top(enrichment_type=[1]), "not one of"),
    ("enrichment_type repeated", with_top(enrichment_type=["email", "phone", "email"]), "uniqueItems"),
    ("contacts empty", with_top(contacts=[]), "minItems"),
    ("contacts an object", with_top(contacts={"firstname": "John", "lastname": "Doe"}), "must be an array"),
    ("contact not an object", with_top(contacts=["John Doe"]), "contacts[0] must be an object"),
    ("contact missing firstname", without_contact_key("firstname"), "missing required key 'firstname'"),
    ("contact missing lastname", without_contact_key("lastname"), "missing required key 'lastname'"),
    ("contact extra key", with_contact(phone="+33612345678"), "unknown keys ['phone']"),
    ("contact firstname null", with_contact(firstname=None), "firstname must be a string, got null"),
    ("contact lastname a number", with_contact(lastname=7), "lastname must be a string"),
    ("contact email null", with_contact(email=None), "email must be a string, got null"),
    ("contact job_title a number", with_contact(job_title=3), "job_title must be a string"),
    ("contact domain an array", with_contact(domain=["acme.com"]), "domain must be a string"),
    ("contact company_name null", with_contact(company_name=None), "company_name must be a string"),
    ("email without @", with_contact(email="john.acme.com"), "format: email"),
    ("email with two @", with_contact(email="john@doe@acme.com"), "format: email"),
    ("email empty local part", with_contact(email="@acme.com"), "format: email"),
    ("email with a space", with_contact(email="john doe@acme.com"), "format: email"),
    ("email without a dotted domain", with_contact(email="john@localhost"), "format: email"),
    ("email empty", with_contact(email=""), "format: email"),
    ("linkedin_url without scheme", with_contact(linkedin_url="linkedin.com/in/john-doe"), "format: uri"),
    ("linkedin_url www without scheme", with_contact(linkedin_url="www.linkedin.com/in/jd/"), "format: uri"),
    (
        "linkedin_url with a space",
        with_contact(linkedin_url="https://linkedin.com/in/john doe"),
        "format: uri",
    ),
    (
        "linkedin_url non-ASCII (an IRI)",
        with_contact(linkedin_url="https://linkedin.com/in/josé"),
        "format: uri",
    ),
    ("webhook_url not a URI", with_top(webhook_url="not a url"), "webhook_url"),
    ("webhook_url relative", with_top(webhook_url="/hooks/lonescale"), "webhook_url"),
    ("webhook_url http without host", with_top(webhook_url="http://"), "webhook_url"),
    ("webhook_url bad port", with_top(webhook_url="http://127.0.0.1:port/x"), "webhook_url"),
    ("webhook_url a number", with_top(webhook_url=42), "webhook_url must be a string"),
    ("detect_job_change a string", with_top(detect_job_change="true"), "must be a boolean"),
    ("detect_job_change a number", with_top(detect_job_change=1), "must be a boolean"),
    ("request custom not an object", with_top(custom="lonescale"), "custom must be an object"),
    ("request custom.id not a string", with_top(custom={"id": 12}), "custom.id must be a string"),
    ("contact custom an array", with_contact(custom=["003"]), "contacts[0].custom must be an object"),
    ("contact custom.contact_id a number", with_contact(custom={"contact_id": 44479301}), "contact_id"),
    ("body an array", [valid_body()], "body must be an object"),
    ("body a string", "enrich please", "body must be an object"),
]


@pytest.mark.parametrize(("body", "reason"), [(b, r) for _, b, r in INVALID], ids=[n for n, _, _ in INVALID])
def test_a_request_breaking_the_schema_gets_the_documented_400(
    api: httpx.Client, body: Any, reason: str
) -> None:
    response = api.post("/trigger/enrich", json=body)

    assert response.status_code == 400
    assert response.json() == BAD_REQUEST
    rejection = last_rejection(api)
    assert rejection["status"] == 400
    assert reason in rejection["reason"]


def seed_example() -> dict[str, Any]:
    return {
        "enrichment_type": ["email", "phone"],
        "contacts": [
            {
                "firstname": "John",
                "lastname": "Doe",
                "email": "john@acme.com",
                "job_title": "ceo",
                "linkedin_url": "https://www.linkedin.com/in/john-doe/",
                "domain": "acme.com",
                "company_name": "Acmeo",
                "custom": {"contact_id": "44479301"},
            }
        ],
        "webhook_url": NOWHERE,
        "custom": {"provider": "lonescale", "enrichment_type": "email and phone"},
    }


VALID: list[tuple[str, dict[str, Any]]] = [
    ("the minimal request", valid_body()),
    ("the seed's own example", seed_example()),
    (
        "all three types and job change",
        with_top(enrichment_type=["profile", "email", "phone"], detect_job_change=True),
    ),
    ("detect_job_change false", with_top(detect_job_change=False)),
    ("open custom objects take extra keys", with_top(custom={"id": "run-1", "batch": 3, "nested": {"a": 1}})),
    (
        "contact custom takes extra keys",
        with_contact(custom={"contact_id": "003A", "object": "Lead", "n": 1}),
    ),
    ("empty names are still strings", with_contact(firstname="", lastname="")),
    ("email with plus tag and sub-domain", with_contact(email="john.doe+crm@mail.acme.co.uk")),
    (
        "linkedin_url with query string",
        with_contact(linkedin_url="https://linkedin.com/in/jd?utm_source=share"),
    ),
    ("linkedin_url on a country host", with_contact(linkedin_url="http://fr.linkedin.com/in/jd")),
    ("linkedin_url percent-encoded", with_contact(linkedin_url="https://www.linkedin.com/in/jos%C3%A9/")),
    (
        "webhook_url with port and token",
        with_top(webhook_url="https://hooks.example.com:8443/ls/job-1?token=a%2Fb"),
    ),
    ("many contacts", with_top(contacts=[{"firstname": f"P{i}", "lastname": "Doe"} for i in range(50)])),
]


@pytest.mark.parametrize("body", [b for _, b in VALID], ids=[n for n, _ in VALID])
def test_a_request_matching_the_schema_starts_a_job(api: httpx.Client, body: dict[str, Any]) -> None:
    response = api.post("/trigger/enrich", json=copy.deepcopy(body))

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    started = response.json()
    assert set(started) == {"id", "status"}
    assert started["status"] == "processing"
    assert isinstance(started["id"], str) and started["id"]


def test_each_accepted_request_gets_its_own_job_id(api: httpx.Client) -> None:
    ids = {api.post("/trigger/enrich", json=valid_body()).json()["id"] for _ in range(5)}

    assert len(ids) == 5


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b'{"enrichment_type": NaN}', b"\xff\xfe{}", b""],
    ids=["broken", "NaN", "not UTF-8", "empty"],
)
def test_a_body_that_is_not_json_gets_the_documented_400(api: httpx.Client, raw: bytes) -> None:
    response = api.post("/trigger/enrich", content=raw, headers={"content-type": "application/json"})

    assert response.status_code == 400
    assert response.json() == BAD_REQUEST
    assert "not JSON" in last_rejection(api)["reason"]


def test_a_json_body_sent_as_text_plain_is_refused(api: httpx.Client) -> None:
    content = json.dumps(valid_body()).encode()

    response = api.post("/trigger/enrich", content=content, headers={"content-type": "text/plain"})

    assert response.status_code == 400
    assert response.json() == BAD_REQUEST
    assert "content-type" in last_rejection(api)["reason"]


UNAUTHORISED_HEADERS: list[tuple[str, dict[str, str]]] = [
    ("no key", {}),
    ("a wrong key", {"x-api-key": "ls_wrong"}),
    ("an empty key", {"x-api-key": ""}),
    ("the key as a bearer token", {"authorization": "Bearer {key}"}),
]


@pytest.mark.parametrize(
    "headers", [h for _, h in UNAUTHORISED_HEADERS], ids=[n for n, _ in UNAUTHORISED_HEADERS]
)
@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/trigger/enrich"), ("GET", "/users"), ("GET", "/trigger/run/x")]
)
def test_a_missing_or_wrong_api_key_gets_the_documented_401(
    lonescale_sandbox: Served, bare: httpx.Client, headers: dict[str, str], method: str, path: str
) -> None:
    lonescale_sandbox.control.configure(run_route="served")  # a route that is there checks the key first
    key = lonescale_sandbox.emulator.api_key
    sent = {name: value.format(key=key) for name, value in headers.items()}

    response = bare.request(method, path, json=valid_body(), headers=sent)

    assert response.status_code == 401
    assert response.json() == UNAUTHORISED


def test_the_api_key_is_checked_before_the_body(lonescale_sandbox: Served, bare: httpx.Client) -> None:
    response = bare.post("/trigger/enrich", json={"contacts": "nonsense"})

    assert response.status_code == 401
    assert response.json() == UNAUTHORISED


def test_the_api_key_header_name_is_case_insensitive(lonescale_sandbox: Served, bare: httpx.Client) -> None:
    response = bare.get("/users", headers={"X-API-KEY": lonescale_sandbox.emulator.api_key})

    assert response.status_code == 200


def test_the_start_can_answer_a_plain_string_instead_of_an_object(
    api: httpx.Client, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(start_response="string")

    response = api.post("/trigger/enrich", json=with_top(contacts=[valid_body()["contacts"][0]] * 2))

    assert response.status_code == 200
    assert response.json() == "Enrichment started for 2 contacts"


def test_a_contact_count_limit_when_set_answers_400(api: httpx.Client, lonescale_sandbox: Served) -> None:
    lonescale_sandbox.control.configure(max_contacts_per_request=2)
    contacts = [{"firstname": f"P{i}", "lastname": "Doe"} for i in range(3)]

    assert api.post("/trigger/enrich", json=with_top(contacts=contacts[:2])).status_code == 200
    response = api.post("/trigger/enrich", json=with_top(contacts=contacts))

    assert response.status_code == 400
    assert response.json() == BAD_REQUEST
    assert "exceed the limit of 2" in last_rejection(api)["reason"]


def test_a_body_size_limit_when_set_answers_413(api: httpx.Client, lonescale_sandbox: Served) -> None:
    lonescale_sandbox.control.configure(max_body_bytes=2_000)
    contacts = [{"firstname": f"Person {i}", "lastname": "Doe", "domain": "acme.com"} for i in range(100)]

    response = api.post("/trigger/enrich", json=with_top(contacts=contacts))

    assert response.status_code == 413
    assert response.json() == {
        "message": "request entity too large",
        "error": "Payload Too Large",
        "statusCode": 413,
    }


def test_unknown_routes_answer_like_nestjs(api: httpx.Client) -> None:
    unknown = api.get("/trigger/enrichment")
    wrong_method = api.get("/trigger/enrich")

    assert unknown.status_code == 404
    assert unknown.json() == {
        "message": "Cannot GET /trigger/enrichment",
        "error": "Not Found",
        "statusCode": 404,
    }
    assert wrong_method.status_code == 404
    assert wrong_method.json()["message"] == "Cannot GET /trigger/enrich"
