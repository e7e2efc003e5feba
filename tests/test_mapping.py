"""Mappings: CRM records become schema-valid Contacts; results become writes only where the policy allows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connector.errors import ConfigError
from connector.lonescale import parse_payload
from connector.mapping import (
    FieldMapping,
    Mapped,
    Skip,
    WritePolicy,
    WriteRule,
    decide,
    load_mapping,
    plan_writes,
    to_contact,
)
from connector.models import CrmRecord, EnrichmentResult, EnrichmentType, RecordRef
from connector.values import same_value

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

MAPPING = FieldMapping.model_validate(
    {
        "schema_version": 1,
        "crm": "salesforce",
        "object": "Contact",
        "changed_field": "SystemModstamp",
        "to_contact": {
            "firstname": "FirstName",
            "lastname": "LastName",
            "email": "Email",
            "job_title": "Title",
            "company_name": "Account.Name",
            "linkedin_url": {"field": "LinkedIn_URL__c", "transform": "linkedin_url"},
            "domain": [
                {"field": "Account.Website", "transform": "domain_from_url"},
                {"field": "Email", "transform": "domain_from_email"},
            ],
        },
        "write_back": [
            {"result": "email", "field": "Email", "only_if": {"email_status": ["valid", "catch_all"]}},
            {"result": "phone", "field": "Phone", "policy": "overwrite"},
            {"result": "job_title", "field": "Title", "policy": "overwrite_if_unchanged"},
            {"result": "company_name", "field": "Department", "policy": "never"},
        ],
        "status": {
            "status": "Enrichment_Status__c",
            "enriched_at": "Last_Enriched__c",
            "job_change": "Job_Change_Detected__c",
        },
    }
)


def record(**fields: Any) -> CrmRecord:
    return CrmRecord(RecordRef("acme", "Contact", "003A"), NOW, fields)


def test_a_record_maps_to_a_contact_carrying_its_crm_id() -> None:
    mapped = to_contact(
        MAPPING,
        record(
            FirstName=" Zoë ", LastName="Lefèvre", Email="zoe@gmail.com", **{"Account.Website": "www.acme.fr"}
        ),
    )
    assert isinstance(mapped, Mapped)
    assert mapped.contact.to_request() == {
        "firstname": "Zoë",
        "lastname": "Lefèvre",
        "email": "zoe@gmail.com",
        "domain": "acme.fr",
        "custom": {"contact_id": "003A"},
    }


def test_the_domain_falls_back_to_a_business_email_but_not_a_personal_one() -> None:
    business = to_contact(MAPPING, record(FirstName="A", LastName="B", Email="a@globex.com"))
    personal = to_contact(MAPPING, record(FirstName="A", LastName="B", Email="a@gmail.com"))
    assert isinstance(business, Mapped) and business.contact.domain == "globex.com"
    assert isinstance(personal, Mapped) and personal.contact.domain is None


def test_records_without_names_or_anything_to_match_on_are_skipped_with_a_reason() -> None:
    assert to_contact(MAPPING, record(LastName="B", Email="a@b.com")) == Skip("no firstname")
    assert to_contact(MAPPING, record(FirstName="A", LastName="  ", Email="a@b.com")) == Skip("no lastname")
    assert to_contact(MAPPING, record(FirstName="A", LastName="B")) == Skip("nothing to match on")


def test_values_the_schema_would_reject_are_left_out_not_sent() -> None:
    mapped = to_contact(
        MAPPING,
        record(
            FirstName="A",
            LastName="B",
            Email="not-an-email",
            LinkedIn_URL__c="linkedin.com/in/ab",
            **{"Account.Name": "Acme"},
        ),
    )
    assert isinstance(mapped, Mapped)
    assert mapped.dropped == ("email",)
    assert mapped.contact.email is None
    assert mapped.contact.linkedin_url == "https://www.linkedin.com/in/ab/"


def result(found: bool = True, job_change: bool | None = None, **values: Any) -> EnrichmentResult:
    return EnrichmentResult(contact_id="003A", found=found, values=values, job_change_detected=job_change)


def rule(policy: str, **extra: Any) -> WriteRule:
    return WriteRule.model_validate({"result": "email", "field": "Email", "policy": policy, **extra})


def test_fill_empty_keeps_a_value_a_person_typed() -> None:
    decision = decide(rule("fill_empty"), result(email="new@acme.com"), current="typed@acme.com", ours=None)
    assert not decision.write and "already has a value" in decision.reason
    assert decide(rule("fill_empty"), result(email="new@acme.com"), current="", ours="").write


def test_a_blank_result_never_writes_whatever_the_policy() -> None:
    for policy in WritePolicy:
        assert not decide(rule(policy.value), result(email="  "), current=None, ours=None).write


def test_an_equal_value_is_not_written_again() -> None:
    decision = decide(rule("overwrite"), result(email="Jane@Acme.com"), current="jane@acme.com ", ours=None)
    assert not decision.write and decision.reason == "already equal"


def test_overwrite_replaces_a_different_value() -> None:
    assert decide(rule("overwrite"), result(email="b@x.com"), current="a@x.com", ours="a@x.com").write


def test_overwrite_if_unchanged_replaces_only_an_empty_field_or_the_value_we_wrote_last() -> None:
    policy = rule("overwrite_if_unchanged")
    ours_still_there = decide(policy, result(email="b@x.com"), current="a@x.com", ours="a@x.com")
    edited_after_us = decide(policy, result(email="b@x.com"), current="human@x.com", ours="a@x.com")
    # Unchanged since the pull, but nobody journaled it: a person typed it, or an import put it there.
    never_ours = decide(policy, result(email="b@x.com"), current="human@x.com", ours=None)
    empty = decide(policy, result(email="b@x.com"), current="", ours=None)
    assert (ours_still_there.write, edited_after_us.write, never_ours.write, empty.write) == (
        True,
        False,
        False,
        True,
    )
    assert edited_after_us.reason == never_ours.reason == "overwrite_if_unchanged: not the value we wrote"


def test_a_placeholder_the_mapping_calls_blank_is_an_empty_field_when_writing_too() -> None:
    placeholders = frozenset({"n/a", "-"})
    filled = decide(
        rule("fill_empty"), result(email="a@x.com"), current=" N/A ", ours=None, placeholders=placeholders
    )
    assert filled.write and filled.reason == "empty field filled"
    assert not decide(rule("fill_empty"), result(email="a@x.com"), current="N/A", ours=None).write, (
        "without the mapping's placeholders, 'N/A' is a value"
    )


def test_only_if_gates_on_other_result_fields() -> None:
    gated = rule("fill_empty", only_if={"email_status": ["valid"]})
    assert not decide(gated, result(email="a@x.com", email_status="catch_all"), None, None).write
    assert decide(gated, result(email="a@x.com", email_status="valid"), None, None).write


def test_plan_writes_applies_every_rule_and_stamps_status_fields() -> None:
    decisions = plan_writes(
        MAPPING,
        result(
            email="a@x.com",
            email_status="valid",
            phone="+14155552671",
            job_title="CTO",
            company_name="Globex",
            job_change=True,
        ),
        current={"Email": None, "Phone": "+1 000", "Title": "Edited by a human"},
        ours={"Title": "CEO"},
        now=NOW,
    )
    verdicts = {d.field: (d.write, d.proposed) for d in decisions}
    assert verdicts == {
        "Email": (True, "a@x.com"),
        "Phone": (True, "+14155552671"),
        "Title": (False, "CTO"),
        "Department": (False, "Globex"),
        "Enrichment_Status__c": (True, "enriched"),
        "Last_Enriched__c": (True, NOW),
        "Job_Change_Detected__c": (True, True),
    }


def test_a_false_job_change_is_unknown_and_never_written() -> None:
    decisions = plan_writes(MAPPING, result(found=False, job_change=False), current={}, ours={}, now=NOW)
    assert {d.field for d in decisions if d.write} == {"Enrichment_Status__c", "Last_Enriched__c"}
    assert next(d for d in decisions if d.field == "Enrichment_Status__c").proposed == "not_found"


def test_a_result_that_changes_nothing_writes_nothing_not_even_a_status() -> None:
    current = {"Email": "a@x.com", "Phone": "+14155552671", "Title": "CTO", "Enrichment_Status__c": "enriched",
               "Job_Change_Detected__c": True}  # fmt: skip
    found = result(
        email="a@x.com", email_status="valid", phone="+14155552671", job_title="CTO", job_change=True
    )
    assert not [d for d in plan_writes(MAPPING, found, current=current, ours=current, now=NOW) if d.write]


def test_read_fields_cover_inputs_targets_and_status() -> None:
    fields = MAPPING.read_fields()
    for name in ("FirstName", "Account.Website", "Email", "Phone", "Department", "Enrichment_Status__c"):
        assert name in fields
    assert len(fields) == len(set(fields))
    assert "Department" not in MAPPING.write_fields()


def test_a_broken_mapping_file_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        """
schema_version = 2
crm = "pipedrive"
object = "Contact"
changed_field = "SystemModstamp"
[to_contact]
lastname = "LastName"
domain = { field = "Website", transform = "domain_from_vibes" }
[[write_back]]
result = "emails"
field = "Email"
policy = "sometimes"
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_mapping(path)
    text = "\n".join(caught.value.problems)
    for expected in (
        "schema_version",
        "crm",
        "unknown transform 'domain_from_vibes'",
        "write_back[0].result",
        "write_back[0].policy",
    ):
        assert expected in text, text


def test_check_reports_missing_read_only_mistyped_and_short_fields() -> None:
    from connector.checks import mapping_problems
    from connector.models import FieldInfo

    described = {
        name: FieldInfo(name, "string", writable=True, length=255)
        for name in (
            "FirstName",
            "LastName",
            "Email",
            "Title",
            "Account.Name",
            "Account.Website",
            "LinkedIn_URL__c",
        )
    }
    described["Email"] = FieldInfo("Email", "email", writable=True, length=80)
    described["Phone"] = FieldInfo("Phone", "phone", writable=True, length=12)
    described["Title"] = FieldInfo("Title", "string", writable=False, length=128)
    described["Department"] = FieldInfo("Department", "string", writable=True, length=80)
    described["Enrichment_Status__c"] = FieldInfo("Enrichment_Status__c", "picklist", writable=True)
    described["Last_Enriched__c"] = FieldInfo("Last_Enriched__c", "boolean", writable=True)
    problems = [str(p) for p in mapping_problems(MAPPING, described)]
    assert problems == [
        "write_back[1] (phone -> Phone): field holds 12 characters; phone values need 20",
        "write_back[2] (job_title -> Title): field 'Title' is read-only for the connector: allow edits "
        "(field-level security in Setup) or change the mapping",
        "status.enriched_at: field 'Last_Enriched__c' has type 'boolean', expected ['date', 'datetime', 'string']",
        "status.job_change: field 'Job_Change_Detected__c' does not exist on Contact: create it in Salesforce "
        "Setup (Object Manager → Contact → Fields & Relationships → New, Checkbox, API name "
        "Job_Change_Detected__c) and give the integration user edit access, or change the mapping",
    ]


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        ("Jane@Acme.com ", "jane@acme.com", True),
        ("2026-11-26T12:00:00.123+0000", "2026-11-26T12:00:00.123456+00:00", True),
        ("2026-11-26T12:00:00.123Z", datetime(2026, 11, 26, 12, 0, 0, 123999, tzinfo=UTC), True),
        ("2026-11-26T13:00:00.000+0100", "2026-11-26T12:00:00Z", True),
        ("2026-11-26T12:00:00.482Z", "2026-11-26T12:00:00.000+0000", True),  # Salesforce keeps no ms
        ("2026-11-26T12:00:01.000Z", "2026-11-26T12:00:00.999Z", False),
        (True, "true", True),
        ("CTO", "CEO", False),
    ],
)
def test_values_compare_as_a_crm_stores_them(left: object, right: object, same: bool) -> None:
    assert same_value(left, right) is same


def test_a_rule_can_wait_for_a_detected_job_change() -> None:
    new_company = WriteRule.model_validate(
        {"result": "company_name", "field": "New_Company__c", "policy": "overwrite",
         "only_if": {"job_change_detected": ["true"]}}
    )  # fmt: skip
    moved = parse_payload({"companyName": "Globex", "jobChangeDetected": True}).results[0]
    stayed = parse_payload({"companyName": "Globex", "jobChangeDetected": False}).results[0]
    assert decide(new_company, moved, current="Acme", ours="Acme").write
    assert not decide(new_company, stayed, current="Acme", ours="Acme").write
    assert stayed.found and "job_change_detected" not in stayed.values


def test_a_copied_mapping_answers_for_its_own_rules() -> None:
    assert MAPPING.targets(EnrichmentType.EMAIL) == ["Email"]
    assert not MAPPING.is_blank("n/a")
    copy = MAPPING.model_copy(update={"write_back": [], "blank_values": ["N/A"]})
    assert copy.targets(EnrichmentType.EMAIL) == [] and copy.is_blank(" n/a ")
    assert MAPPING.targets(EnrichmentType.EMAIL) == ["Email"] and not MAPPING.is_blank("n/a"), (
        "the original keeps its own"
    )


@pytest.mark.parametrize(
    ("crm", "object_name", "changed", "said"),
    [
        (
            "salesforce",
            "Account",
            "SystemModstamp",
            "object 'Account' is not one the salesforce adapter pulls",
        ),
        ("salesforce", "Lead", "CreatedDate", "changed_field 'CreatedDate' is not a salesforce timestamp"),
        (
            "hubspot",
            "companies",
            "lastmodifieddate",
            "object 'companies' is not one the hubspot adapter pulls",
        ),
    ],
)
def test_a_mapping_names_only_an_object_and_a_timestamp_its_adapter_pulls_by(
    tmp_path: Path, crm: str, object_name: str, changed: str, said: str
) -> None:
    path = tmp_path / "m.toml"
    path.write_text(
        f'schema_version = 1\ncrm = "{crm}"\nobject = "{object_name}"\nchanged_field = "{changed}"\n'
        '[to_contact]\nfirstname = "FirstName"\nlastname = "LastName"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_mapping(path)
    assert any(said in problem for problem in caught.value.problems), caught.value.problems
