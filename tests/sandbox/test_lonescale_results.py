"""What the LoneScale emulator finds: deterministic per input and seed, only the requested types, the
documented field names and types (docs/lonescale.md#result-payloads), predicted emails, job-change semantics
and test presets."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from connector.sandbox.people import generate_people
from tests.conftest import SANDBOX_CONTACTS, SANDBOX_SEED, Served

PROFILE_FIELDS = {
    "firstName",
    "lastName",
    "fullName",
    "linkedinUrl",
    "universalName",
    "jobTitle",
    "jobTitleSince",
    "companySince",
    "companyName",
    "companyDomain",
    "companyDescription",
    "companyEmployeeCount",
    "companyEmployeeRange",
    "companyIndustry",
    "companyLinkedinId",
    "companyLinkedinUrl",
    "companyCountryCode",
    "companyCountry",
    "companyCity",
}
FOUND_EMAIL_FIELDS = {"email", "emailStatus", "emails"}
PREDICTED_EMAIL_FIELDS = FOUND_EMAIL_FIELDS | {"predicted_email", "email_pattern", "predicted_email_score"}
PHONE_FIELDS = {"phone", "phoneType", "phoneCountryCode", "phones"}
EMAIL_STATUSES = {"valid", "catch_all", "invalid", "unknown", "predicted"}
E164 = re.compile(r"^\+[1-9]\d{7,14}$")


@pytest.fixture
def api(lonescale_sandbox: Served, _client: httpx.Client) -> httpx.Client:
    # These tests read results by polling (the route as the CLI trace shows it) and tell them apart by each
    # contact's `custom`: both kind readings, turned on by name.
    lonescale_sandbox.control.configure(webhook_delay_seconds=0, run_route="served", echo_custom=True)
    return _client


def enrich(
    api: httpx.Client, contacts: list[dict[str, Any]], types: list[str], **extra: Any
) -> list[dict[str, Any]]:
    """Starts a job and polls it, within a bounded wait, until it is finished; returns its items."""
    body = {"enrichment_type": types, "contacts": contacts, "webhook_url": "http://127.0.0.1:9/hook", **extra}
    response = api.post("/trigger/enrich", json=body)
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        run = api.get(f"/trigger/run/{response.json()['id']}").json()
        if run["status"] == "finished":
            items: list[dict[str, Any]] = run["contacts"]
            return items
        time.sleep(0.01)
    raise AssertionError("the job did not finish within 5 s")


def crm_contacts(count: int, seed: int = 11) -> list[dict[str, Any]]:
    """Seeded CRM people as the connector would send them: only keys with values, only URI LinkedIn URLs."""
    contacts = []
    for person in generate_people(count, seed):
        contact: dict[str, Any] = {"firstname": person.firstname, "lastname": person.lastname or ""}
        if person.email:
            contact["email"] = person.email
        if person.company:
            contact["domain"] = person.company.domain
            contact["company_name"] = person.company.name
        if person.linkedin_url and person.linkedin_url.startswith("http"):
            contact["linkedin_url"] = person.linkedin_url.replace(" ", "")
        contact["custom"] = {"contact_id": f"003{person.index:05d}"}
        contacts.append(contact)
    return contacts


def with_domain(count: int) -> list[dict[str, Any]]:
    return [
        {
            "firstname": f"Ann{i}",
            "lastname": "Lee",
            "domain": f"firm{i}.com",
            "custom": {"contact_id": str(i)},
        }
        for i in range(count)
    ]


def test_the_same_input_and_seed_give_identical_results(api: httpx.Client, lonescale_sandbox: Served) -> None:
    contacts = crm_contacts(40)

    first = enrich(api, contacts, ["email", "phone", "profile"], detect_job_change=True)
    lonescale_sandbox.fresh()
    lonescale_sandbox.control.configure(webhook_delay_seconds=0, run_route="served", echo_custom=True)
    second = enrich(api, contacts, ["email", "phone", "profile"], detect_job_change=True)
    lonescale_sandbox.control.reset(contacts=SANDBOX_CONTACTS, seed=SANDBOX_SEED + 1)
    lonescale_sandbox.control.configure(webhook_delay_seconds=0, run_route="served", echo_custom=True)
    other_seed = enrich(api, contacts, ["email", "phone", "profile"], detect_job_change=True)

    assert first == second
    assert any("fullName" in item for item in first) and any(item.get("status") == "failed" for item in first)
    assert other_seed != first


def test_a_contacts_result_does_not_depend_on_the_rest_of_the_job(api: httpx.Client) -> None:
    contacts = crm_contacts(12)

    batch = enrich(api, contacts, ["email", "profile"])
    alone = [enrich(api, [contact], ["email", "profile"])[0] for contact in contacts[:4]]

    assert alone == batch[:4]


@pytest.mark.parametrize(
    ("types", "allowed"),
    [
        (["email"], PREDICTED_EMAIL_FIELDS),
        (["phone"], PHONE_FIELDS),
        (["profile"], PROFILE_FIELDS),
        (["email", "phone"], PREDICTED_EMAIL_FIELDS | PHONE_FIELDS),
    ],
)
def test_only_the_requested_types_fields_come_back(
    api: httpx.Client, types: list[str], allowed: set[str]
) -> None:
    items = enrich(api, crm_contacts(30), types)

    data_keys = [set(item) - {"custom", "status"} for item in items]
    assert all(keys <= allowed for keys in data_keys)
    assert any(keys for keys in data_keys)


def test_found_fields_have_the_reference_names_and_types(
    api: httpx.Client, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(not_found_share=0, email_miss_share=0, phone_miss_share=0)

    items = enrich(api, with_domain(10), ["email", "phone", "profile"], detect_job_change=True)

    for item in items:
        assert set(item) == PROFILE_FIELDS | FOUND_EMAIL_FIELDS | PHONE_FIELDS | {
            "jobChangeDetected",
            "custom",
        }
        assert isinstance(item["companyEmployeeCount"], int)
        assert all(
            isinstance(item[k], str)
            for k in PROFILE_FIELDS - {"companyEmployeeCount"} - {"jobTitleSince", "companySince"}
        )
        for since in (item["jobTitleSince"], item["companySince"]):
            assert set(since) == {"month", "year"} and 1 <= since["month"] <= 12
        assert item["fullName"] == f"{item['firstName']} {item['lastName']}"
        assert item["linkedinUrl"].endswith(f"/in/{item['universalName']}/")
        assert item["emailStatus"] in EMAIL_STATUSES - {"predicted"}
        assert item["emails"][0] == {"email": item["email"], "status": item["emailStatus"]}
        assert E164.match(item["phone"]) and item["phoneType"] in {"mobile", "landline"}
        assert re.fullmatch(r"[A-Z]{2}", item["phoneCountryCode"])
        assert all(set(p) == {"number", "region"} and E164.match(p["number"]) for p in item["phones"])
        assert isinstance(item["jobChangeDetected"], bool)


def test_a_missed_email_comes_back_predicted_at_the_input_domain_with_a_string_score(
    api: httpx.Client, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(not_found_share=0, email_miss_share=1)

    items = enrich(api, with_domain(20), ["email"])
    no_domain = enrich(
        api, [{"firstname": "A", "lastname": "B", "linkedin_url": "https://linkedin.com/in/ab"}], ["email"]
    )

    for item, index in zip(items, range(20), strict=True):
        assert set(item) == PREDICTED_EMAIL_FIELDS | {"custom"}
        assert item["emailStatus"] == "predicted" and item["predicted_email"] == item["email"]
        assert item["email"].endswith(f"@firm{index}.com")
        assert isinstance(item["predicted_email_score"], str) and item["predicted_email_score"].isdigit()
        assert item["email_pattern"].endswith("@domain")
    assert {item["predicted_email_score"] == "0" for item in items} == {True, False}
    assert no_domain == [{}]


@pytest.mark.parametrize(
    ("types", "detect", "expected"),
    [
        (["profile"], True, True),
        (["email", "profile"], True, True),
        (["email", "phone"], True, False),
        (["profile"], False, False),
    ],
)
def test_job_change_detected_appears_only_with_detect_job_change_and_profile(
    api: httpx.Client, lonescale_sandbox: Served, types: list[str], detect: bool, expected: bool
) -> None:
    lonescale_sandbox.control.configure(not_found_share=0)

    items = enrich(api, with_domain(5), types, detect_job_change=detect)

    assert all(("jobChangeDetected" in item) is expected for item in items)


def test_job_change_is_true_when_the_current_company_differs_from_the_input(
    api: httpx.Client, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(not_found_share=0, job_change_share=1, job_change_unknown_share=0)

    items = enrich(api, with_domain(10), ["profile"], detect_job_change=True)

    assert all(item["jobChangeDetected"] is True for item in items)
    assert all(item["companyDomain"] != f"firm{i}.com" for i, item in enumerate(items))


def test_job_change_is_false_when_the_person_stayed(api: httpx.Client, lonescale_sandbox: Served) -> None:
    lonescale_sandbox.control.configure(not_found_share=0, job_change_share=0)
    contacts = [{**c, "company_name": f"Firm {i}", "job_title": "CFO"} for i, c in enumerate(with_domain(10))]

    items = enrich(api, contacts, ["profile"], detect_job_change=True)

    assert all(item["jobChangeDetected"] is False for item in items)
    assert [(i["companyDomain"], i["companyName"], i["jobTitle"]) for i in items] == [
        (f"firm{n}.com", f"Firm {n}", "CFO") for n in range(10)
    ]


def test_job_change_is_false_when_the_input_names_no_company(
    api: httpx.Client, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(not_found_share=0, job_change_share=1, job_change_unknown_share=0)
    contacts = [
        {"firstname": "A", "lastname": f"B{i}", "linkedin_url": f"https://linkedin.com/in/ab-{i}"}
        for i in range(5)
    ]

    items = enrich(api, contacts, ["profile"], detect_job_change=True)

    assert [item["jobChangeDetected"] for item in items] == [False] * 5
    assert all(item["companyDomain"] for item in items)


def test_a_move_reported_as_unknown_comes_back_false(api: httpx.Client, lonescale_sandbox: Served) -> None:
    lonescale_sandbox.control.configure(not_found_share=0, job_change_share=1, job_change_unknown_share=1)

    items = enrich(api, with_domain(5), ["profile"], detect_job_change=True)

    assert all(item["jobChangeDetected"] is False for item in items)
    assert all(item["companyDomain"] != f"firm{i}.com" for i, item in enumerate(items))


def test_the_not_found_share_is_respected_and_a_name_alone_is_never_found(
    api: httpx.Client, lonescale_sandbox: Served
) -> None:
    items = enrich(api, with_domain(200), ["email"])
    lonescale_sandbox.control.configure(not_found_share=0)
    name_only = enrich(api, [{"firstname": "Ann", "lastname": "Lee"}], ["email", "profile"])

    failed = sum(item.get("status") == "failed" for item in items)
    assert 20 <= failed <= 60  # realistic default 0.2 of 200
    assert all(set(item) == {"status", "custom"} for item in items if "status" in item)
    assert name_only == [{"status": "failed"}]


def test_every_employee_of_a_company_sees_the_same_company_details(
    api: httpx.Client, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(not_found_share=0, job_change_share=0)
    contacts = [
        {"firstname": name, "lastname": "Lee", "domain": "globex.com"} for name in ("Ann", "Bob", "Cy")
    ]

    items = enrich(api, contacts, ["profile"])

    company = [
        {k: v for k, v in item.items() if k.startswith("company") and k != "companySince"} for item in items
    ]
    assert company[0] == company[1] == company[2]
    assert company[0]["companyDomain"] == "globex.com"


def test_presets_fix_what_is_found_for_a_known_person(api: httpx.Client, lonescale_sandbox: Served) -> None:
    ids = lonescale_sandbox.control.seed(
        [
            {"match": {"email": "ann@firm.com"}, "fields": {"jobTitle": "CFO", "phone": "+14155550100"}},
            {"match": {"linkedin_url": "https://www.linkedin.com/in/Bob-Lee/"}, "found": False},
            {"match": {"firstname": "Cy", "lastname": "Lee", "domain": "firm.com"}, "missing": ["email"]},
        ]
    )
    contacts = [
        {"firstname": "Ann", "lastname": "Lee", "email": "ann@firm.com"},
        {"firstname": "Bob", "lastname": "Lee", "linkedin_url": "https://linkedin.com/in/bob-lee?trk=x"},
        {"firstname": "Cy", "lastname": "Lee", "domain": "FIRM.com"},
    ]

    ann, bob, cy = enrich(api, contacts, ["email", "phone", "profile"])

    assert ids == ["email:ann@firm.com", "linkedin:bob-lee", "name:cy|lee@firm.com"]
    assert (ann["jobTitle"], ann["phone"]) == ("CFO", "+14155550100")
    assert bob == {"status": "failed"}
    assert cy["emailStatus"] == "predicted"


def test_a_preset_with_unknown_fields_is_refused(lonescale_sandbox: Served) -> None:
    with pytest.raises(ValueError, match="refused records"):
        lonescale_sandbox.control.seed([{"match": {"email": "a@b.co"}, "fields": {"mobilePhone": "+1"}}])
