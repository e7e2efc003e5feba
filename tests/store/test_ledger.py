"""The cooldown ledger: per record and type, when it was handed to LoneScale and whether it was found."""

from __future__ import annotations

from datetime import datetime, timedelta

from connector.models import JobStatus
from connector.store import Job, JobContact, Store
from tests.store.conftest import T0


def add_job(store: Store, job_id: str, types: list[str], records: list[str], at: datetime = T0) -> None:
    run_id = store.runs.start("acme", "sync")
    job = Job(
        job_id, "acme", run_id, "ab" * 32, None, JobStatus.PENDING, types, len(records), at, None, None, None
    )
    store.jobs.create(job, [JobContact(job_id, record, "Contact", {}, {}) for record in records])


def test_record_state_keeps_when_each_type_was_sent_and_whether_it_was_found(store: Store) -> None:
    add_job(store, "job-2", ["email", "phone"], ["003A", "003B"])
    store.journal.settle("acme", {}, {"003A": {"email": True, "phone": False}}, {})
    store.ledger.forget("acme", ["003B"], ["email", "phone"])
    states = store.ledger.states("acme", ["003A", "003B", "003C"])
    assert states["003A"]["types"] == {
        "email": {"sent_at": T0.isoformat(), "found": True},
        "phone": {"sent_at": T0.isoformat(), "found": False},
    }
    assert states["003B"]["types"] == {}, "released from cooldown"
    assert "003C" not in states


def test_a_later_job_restarts_the_cooldown_of_its_own_types_only(store: Store) -> None:
    later = T0 + timedelta(hours=1)
    add_job(store, "job-1", ["email"], ["003A"])
    store.journal.settle("acme", {}, {"003A": {"email": False}}, {})
    add_job(store, "job-2", ["phone"], ["003A"], at=later)
    assert store.ledger.states("acme", ["003A"])["003A"]["types"] == {
        "email": {"sent_at": T0.isoformat(), "found": False},
        "phone": {"sent_at": later.isoformat(), "found": None},
    }


def test_releasing_some_types_keeps_the_others_and_other_instances_alone(store: Store) -> None:
    add_job(store, "job-1", ["email", "phone"], ["003A"])
    store.ledger.forget("acme", ["003A"], ["phone"])
    store.ledger.forget("other", ["003A"], ["email"])
    assert store.ledger.states("acme", ["003A"])["003A"]["types"] == {
        "email": {"sent_at": T0.isoformat(), "found": None}
    }
    assert store.ledger.states("other", ["003A"]) == {}
