"""Several results for one record in one pass: merged by type, a type's values replaced only by a newer one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from connector.inbox import Pending
from connector.merging import merge
from connector.models import EnrichmentResult, EnrichmentType, JobStatus
from connector.store import Job, JobContact

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def result_of(job_id: str, types: list[str], minutes: int, found: bool = True, **values: Any) -> Pending:
    created = T0 + timedelta(minutes=minutes)
    job = Job(
        job_id, "acme", 1, "0" * 64, None, JobStatus.PARTLY_APPLIED, types, 1, created, created, None, None
    )
    contact = JobContact(job_id, "003A", "Contact", {"firstname": "A", "lastname": "B"}, {})
    return Pending(job, contact, EnrichmentResult("003A", found, values), delivery_id=minutes)


def test_an_older_email_and_a_newer_phone_are_both_kept() -> None:
    email = result_of("A", ["email"], 1, email="a@x.com", email_status="valid", first_name="Ann")
    phone = result_of("B", ["phone"], 2, phone="+331", first_name="Ann")
    record = merge([phone, email])  # in any order
    assert dict(record.merged.result.values) == {
        "email": "a@x.com", "email_status": "valid", "phone": "+331", "first_name": "Ann"
    }  # fmt: skip
    assert record.contributors == (email, phone) and record.superseded == ()
    assert (record.job_for("email_status"), record.job_for("phone")) == ("A", "B")
    assert record.found == {"email": True, "phone": True}


def test_a_newer_email_replaces_the_older_one_whole_and_supersedes_its_job() -> None:
    older = result_of("A", ["email"], 1, email="old@x.com", email_status="valid")
    newer = result_of("B", ["email"], 2, email="new@x.com")
    record = merge([older, newer])
    assert dict(record.merged.result.values) == {"email": "new@x.com"}, "no stale status for a newer address"
    assert record.superseded == (older,) and record.job_of_type == {EnrichmentType.EMAIL: "B"}


def test_a_newer_miss_does_not_erase_an_older_find() -> None:
    found = result_of("A", ["phone"], 1, phone="+331")
    missed = result_of("B", ["phone"], 2, found=False)
    record = merge([found, missed])
    assert record.merged.result.values == {"phone": "+331"} and record.merged.result.found
    assert record.found == {"phone": True}
    assert record.merged.job.id == "B" and record.contributors == (found, missed)


def test_names_that_come_back_with_an_email_do_not_replace_a_profile_that_was_paid_for() -> None:
    profile = result_of("A", ["profile"], 1, job_title="CTO", first_name="Ann")
    email = result_of("B", ["email"], 2, email="a@x.com", first_name="Annie")
    values = merge([profile, email]).merged.result.values
    assert (values["job_title"], values["first_name"], values["email"]) == ("CTO", "Ann", "a@x.com")
