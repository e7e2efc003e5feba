"""Every webhook shape LoneScale documents (or once used) parses to the same normalised results."""

from __future__ import annotations

import json

import pytest

from connector.lonescale import PayloadError, parse_payload

CURRENT = {
    "firstName": "John", "lastName": "Doe", "fullName": "John Doe",
    "linkedinUrl": "https://www.linkedin.com/in/john-doe/", "jobTitle": "CEO", "companyName": "Globex",
    "companyDomain": "globex.com", "email": "john@globex.com", "emailStatus": "valid",
    "emails": [{"email": "john@globex.com", "status": "valid"}], "phone": "+14155552671", "phoneType": "mobile",
    "jobChangeDetected": True, "custom": {"contact_id": "44479301"},
}  # fmt: skip
LEGACY = {
    "firstname": "John", "lastname": "Doe", "domain": "globex.com", "most_probable_email": "john@globex.com",
    "most_probable_email_status": "valid", "most_probable_phone": "+14155552671",
    "most_probable_phone_type": "mobile",
    "profile": {"linkedin_url": "https://www.linkedin.com/in/john-doe/", "firstname": "John",
                "position": {"title": "CEO", "company": {"name": "Globex", "domain": "globex.com"}}},
    "job_change_detected": True, "custom": {"contact_id": "44479301"},
}  # fmt: skip
EXPECTED = {
    "email": "john@globex.com", "email_status": "valid", "phone": "+14155552671", "phone_type": "mobile",
    "linkedin_url": "https://www.linkedin.com/in/john-doe/", "job_title": "CEO", "company_name": "Globex",
    "company_domain": "globex.com",
}  # fmt: skip


@pytest.mark.parametrize("item", [CURRENT, LEGACY], ids=["camelCase", "legacy snake_case"])
@pytest.mark.parametrize(
    "wrap",
    [
        lambda i: i,
        lambda i: {"contacts": [i]},
        lambda i: {"id": "job-1", "status": "finished", "contacts": [i]},
        lambda i: [i],
    ],
    ids=["per contact", "contacts envelope", "job envelope", "bare array"],
)
def test_every_shape_gives_the_same_result(item: dict[str, object], wrap: object) -> None:
    payload = parse_payload(json.dumps(wrap(item)).encode())  # type: ignore[operator]
    (result,) = payload.results
    assert result.contact_id == "44479301"
    assert result.found and result.job_change_detected is True
    assert {k: result.values[k] for k in EXPECTED} == EXPECTED


def test_the_job_id_is_read_from_a_job_envelope() -> None:
    assert parse_payload({"id": 123, "contacts": [CURRENT]}).job_id == "123"
    assert parse_payload(CURRENT).job_id is None


def test_custom_on_the_envelope_names_its_contact_only_when_it_holds_just_one() -> None:
    item = {k: v for k, v in CURRENT.items() if k != "custom"}
    assert parse_payload({"custom": {"contact_id": "9"}, "contacts": [item]}).results[0].contact_id == "9"
    assert parse_payload(item).results[0].contact_id is None
    two = parse_payload({"custom": {"contact_id": "9"}, "contacts": [item, item]}).results
    assert [r.contact_id for r in two] == [None, None], "a request-level custom speaks for the whole job"


def test_a_request_id_echoed_in_custom_is_not_taken_for_a_contact() -> None:
    (result,) = parse_payload(
        {"custom": {"id": "job-7", "provider": "lonescale"}, "contacts": [CURRENT]}
    ).results
    assert result.contact_id == "44479301", "the contact's own custom"
    (bare,) = parse_payload(
        {**{k: v for k, v in CURRENT.items() if k != "custom"}, "custom": {"id": "job-7"}}
    ).results
    assert bare.contact_id is None


def test_a_predicted_email_is_kept_but_marked_predicted() -> None:
    (result,) = parse_payload(
        {"firstName": "A", "predicted_email": "a.b@x.com", "predicted_email_score": "87"}
    ).results
    assert result.values["email"] == "a.b@x.com" and result.values["email_status"] == "predicted"


def test_a_failed_or_empty_contact_is_not_found() -> None:
    failed = parse_payload({"status": "failed", "custom": {"contact_id": "1"}}).results[0]
    empty = parse_payload({"firstName": "A", "lastName": "B", "custom": {"contact_id": "2"}}).results[0]
    assert not failed.found and not empty.found
    assert failed.job_change_detected is None


@pytest.mark.parametrize(
    "body",
    [b"not json", b"42", b'"text"', b"[]", b'{"contacts": []}', b'{"contacts": [1]}', b'{"contacts": "x"}'],
)
def test_shapes_no_one_documents_are_refused(body: bytes) -> None:
    with pytest.raises(ValueError):  # PayloadError, or json's own ValueError
        parse_payload(body)


def test_payload_error_names_the_problem() -> None:
    with pytest.raises(PayloadError, match="contact 0 is int"):
        parse_payload({"contacts": [1]})
