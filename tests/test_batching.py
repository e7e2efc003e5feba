"""Which contacts share a LoneScale job: one per job until LoneScale's results have shown whose they are."""

from __future__ import annotations

from datetime import UTC, datetime

from connector.batching import Batcher
from connector.mapping import Mapped
from connector.models import Contact, ContactCustom, CrmRecord, EnrichmentType, RecordRef

PROFILE = (EnrichmentType.EMAIL, EnrichmentType.PROFILE)
PHONE = (EnrichmentType.PHONE,)


def person(record_id: str) -> tuple[CrmRecord, Mapped]:
    record = CrmRecord(RecordRef("acme", "Contact", record_id), datetime(2026, 1, 1, tzinfo=UTC), {})
    contact = Contact(
        firstname="Ann", lastname="Lee", domain="acme.com", custom=ContactCustom(contact_id=record_id)
    )
    return record, Mapped(contact)


def ids(batch: list[tuple[CrmRecord, Mapped]] | None) -> list[str]:
    return [record.ref.id for record, _ in batch or []]


def test_until_the_echo_is_seen_every_contact_has_a_job_of_its_own() -> None:
    batcher = Batcher(100, echoed=False)
    assert ids(batcher.add(PHONE, *person("1"))) == ["1"], "nothing in a phone result says whose it is"
    assert ids(batcher.add(PROFILE, *person("2"))) == ["2"]
    assert list(batcher.waiting()) == [] and list(batcher.rest()) == []


def test_with_the_echo_jobs_fill_up_per_set_of_types() -> None:
    batcher = Batcher(2, echoed=True)
    assert batcher.add(PHONE, *person("1")) is None
    assert batcher.add(PROFILE, *person("2")) is None
    assert sorted(batcher.waiting()) == ["1", "2"]
    assert ids(batcher.add(PHONE, *person("3"))) == ["1", "3"]
    assert [(key, ids(batch)) for key, batch in batcher.rest()] == [(PROFILE, ["2"])]
