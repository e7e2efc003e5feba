"""The store on SQLite and, when LONESCALE_SYNC_TEST_POSTGRES_URL names one, on PostgreSQL too."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from connector.models import JobStatus
from connector.store import Job, JobContact, JournalEntry, Store, sha256

T0 = datetime(2026, 11, 1, 9, 30, 15, 123000, tzinfo=UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store(store_url)
    yield opened
    opened.close()


def make_job(store: Store, job_id: str = "job-1", instance: str = "acme") -> Job:
    run_id = store.runs.start(instance, "sync")
    job = Job(
        job_id, instance, run_id, "ab" * 32, None, JobStatus.PENDING, ["email"], 2, T0, None, None, None
    )
    store.jobs.create(
        job,
        [
            JobContact(
                job_id, "003A", "Contact", {"firstname": "Zoë", "lastname": "Lefèvre"}, {"Email": None}
            ),
            JobContact(job_id, "003B", "Contact", {"firstname": "A", "lastname": "B"}, {"Email": "a@b.com"}),
        ],
    )
    return job


def test_a_duplicate_delivery_is_stored_once(store: Store) -> None:
    make_job(store)
    assert store.store_delivery("job-1", b'{"email": "a@x.com"}') is True
    assert store.store_delivery("job-1", b'{"email": "a@x.com"}') is False
    assert store.store_delivery("job-1", b'{"email": "b@x.com"}') is True
    deliveries = store.new_deliveries()
    assert [d.body for d in deliveries] == [b'{"email": "a@x.com"}', b'{"email": "b@x.com"}']
    store.mark_delivery(deliveries[0].id, "applied")
    assert [d.body for d in store.new_deliveries()] == [b'{"email": "b@x.com"}']


def test_a_jobs_inbox_usage_counts_every_body_it_keeps_and_their_bytes(store: Store) -> None:
    make_job(store)
    make_job(store, "job-2")
    assert store.inbox_usage("job-1") == (0, 0) and not store.has_delivery("job-1", sha256(b"[]"))
    store.store_delivery("job-1", b'{"email": "a@x.com"}')
    store.store_delivery("job-1", b"\xff not json", "invalid", "not JSON")  # kept for a person: it counts
    store.store_delivery("job-2", b"[]", "invalid", "no contacts")
    assert store.inbox_usage("job-1") == (2, 20 + 10)
    assert store.has_delivery("job-1", sha256(b"\xff not json"))
    assert not store.has_delivery("job-1", sha256(b"[]")), "job-2's body, not job-1's"
    updated = store.jobs.get("job-1")
    assert updated is not None and updated.updated_at is not None, "when it last changed: a token's grace"


def test_the_journal_keeps_old_and_new_values_per_field(store: Store) -> None:
    run_id = store.runs.start("acme", "apply")
    store.journal(
        [
            JournalEntry(run_id, "job-1", "acme", "003A", "Email", None, "a@x.com", "written", written_at=T0),
            JournalEntry(
                run_id,
                "job-1",
                "acme",
                "003A",
                "Job_Change_Detected__c",
                False,
                True,
                "written",
                written_at=T0,
            ),
            JournalEntry(
                run_id, "job-1", "acme", "003A", "Title", "CEO", "x" * 200, "rejected", "STRING_TOO_LONG", T0
            ),
        ]
    )
    entries = store.journal_for("acme", "003A")
    assert [(e.field, e.old_value, e.new_value, e.outcome) for e in entries] == [
        ("Email", None, "a@x.com", "written"),
        ("Job_Change_Detected__c", False, True, "written"),
        ("Title", "CEO", "x" * 200, "rejected"),
    ]
    assert entries[2].reason == "STRING_TOO_LONG" and entries[0].written_at == T0


def test_concurrent_writers_do_not_lose_deliveries(store: Store) -> None:
    make_job(store)
    errors: list[BaseException] = []

    def deliver(worker: int) -> None:
        try:
            for n in range(25):
                store.store_delivery("job-1", f'{{"w": {worker}, "n": {n}}}'.encode())
        except BaseException as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.new_deliveries(limit=1000)) == 100


def test_old_payloads_are_emptied_but_still_recognised_as_duplicates(store: Store) -> None:
    make_job(store)
    store.store_delivery("job-1", b'{"email": "a@x.com"}')
    store.store_delivery("job-1", b'{"email": "b@x.com"}')
    first, _unapplied = store.new_deliveries()
    store.mark_delivery(first.id, "applied")
    assert store.purge_payloads(datetime.now(UTC) + timedelta(seconds=1)) == 1, (
        "a delivery not yet applied is kept"
    )
    assert [d.body for d in store.deliveries_matching(job_id="job-1")] == [b'{"email": "b@x.com"}']
    assert store.store_delivery("job-1", b'{"email": "a@x.com"}') is False


def test_the_apply_loop_waits_for_a_batch_worth_writing(store: Store) -> None:
    from connector.runtime import FULL_BACKLOG, QUIET, backlog_ready

    assert not backlog_ready(store, datetime.now(UTC)), "nothing to apply"
    make_job(store)
    store.store_delivery("job-1", b'{"n": 0}')
    arrived = datetime.now(UTC)
    assert not backlog_ready(store, arrived), "one result just arrived: more are probably coming"
    assert backlog_ready(store, arrived + QUIET), "arrivals paused: apply what is there"
    for n in range(1, FULL_BACKLOG):
        store.store_delivery("job-1", f'{{"n": {n}}}'.encode())
    assert backlog_ready(store, datetime.now(UTC)), "a full batch is worth a write at once"
