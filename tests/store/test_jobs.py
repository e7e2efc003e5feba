"""Jobs and their contacts: stored together, then through their states; what waits, what expired, what
LoneScale was handed this month."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from connector.models import JobStatus
from connector.store import Job, JobContact, Store
from tests.store.conftest import T0


def add_job(store: Store, job_id: str, created_at: datetime, instance: str = "acme",
            records: tuple[str, ...] = ("003A", "003B")) -> Job:  # fmt: skip
    run_id = store.runs.start(instance, "sync")
    job = Job(job_id, instance, run_id, "ab" * 32, None, JobStatus.PENDING, ["email"], len(records), created_at,
              None, None, None)  # fmt: skip
    store.jobs.create(job, [JobContact(job_id, record, "Contact", {}, {}) for record in records])
    return job


def test_a_job_and_its_contacts_are_stored_together_then_move_through_states(
    store: Store, make_job: Callable[..., Job]
) -> None:
    make_job()
    stored = store.jobs.get("job-1")
    assert stored is not None and stored.status is JobStatus.PENDING and stored.created_at == T0
    assert stored.updated_at is not None, "when it last changed: a token's grace"
    store.jobs.update("job-1", JobStatus.SENT, lonescale_id="ls-42", sent_at=T0)
    sent = store.jobs.get("job-1")
    assert sent is not None and (sent.status, sent.lonescale_id, sent.sent_at) == (
        JobStatus.SENT,
        "ls-42",
        T0,
    )
    contacts = {c.record_id: c for c in store.jobs.contacts("job-1")}
    assert contacts["003A"].sent == {"firstname": "Zoë", "lastname": "Lefèvre"}
    assert contacts["003B"].pulled == {"Email": "a@b.com"}
    store.jobs.mark_contacts(
        "job-1", ["003A"], "rejected", "INVALID_EMAIL_ADDRESS: Email: invalid email address"
    )
    assert {c.record_id: c.status for c in store.jobs.contacts("job-1")} == {
        "003A": "rejected",
        "003B": "waiting",
    }
    assert store.jobs.counts("acme") == {"sent": 1}
    assert [j.id for j in store.jobs.find("acme", [JobStatus.SENT])] == ["job-1"]
    assert store.jobs.find("acme", [JobStatus.PENDING]) == []
    assert store.jobs.get("job-2") is None


def test_jobs_are_listed_oldest_first_for_one_instance_or_all(store: Store) -> None:
    add_job(store, "late", T0 + timedelta(minutes=2))
    add_job(store, "early", T0, instance="other")
    add_job(store, "middle", T0 + timedelta(minutes=1))
    assert [j.id for j in store.jobs.find()] == ["early", "middle", "late"]
    assert [j.id for j in store.jobs.find("acme")] == ["middle", "late"]


def test_the_jobs_holding_contacts_in_a_state_say_how_many_oldest_first(store: Store) -> None:
    add_job(store, "job-2", T0 + timedelta(minutes=1))
    add_job(store, "job-1", T0)
    add_job(store, "job-3", T0 + timedelta(minutes=2))
    add_job(store, "elsewhere", T0, instance="other")
    store.jobs.mark_contacts("job-2", ["003A", "003B"], "expired", "no results by the deadline")
    store.jobs.mark_contacts("job-1", ["003B"], "expired")
    store.jobs.mark_contacts("elsewhere", ["003A"], "expired")
    assert [(job.id, held) for job, held in store.jobs.holding("acme", "expired")] == [
        ("job-1", 1),
        ("job-2", 2),
    ]


def test_the_latest_contacts_in_a_state_come_newest_job_first(store: Store) -> None:
    add_job(store, "job-1", T0, records=("003A",))
    add_job(store, "job-2", T0 + timedelta(minutes=1), records=("003B",))
    add_job(store, "elsewhere", T0 + timedelta(minutes=2), instance="other", records=("003C",))
    for job_id in ("job-1", "job-2", "elsewhere"):
        store.jobs.mark_contacts(job_id, [c.record_id for c in store.jobs.contacts(job_id)], "rejected", "no")
    assert [c.record_id for c in store.jobs.contacts_with_status("acme", "rejected")] == ["003B", "003A"]
    assert [c.record_id for c in store.jobs.contacts_with_status("acme", "rejected", limit=1)] == ["003B"]
    assert store.jobs.contacts_with_status("acme", "applied") == []


def test_overdue_jobs_are_those_still_waiting_past_their_deadline_soonest_first(store: Store) -> None:
    now = T0 + timedelta(hours=1)
    waiting = {"sent": JobStatus.SENT, "partly": JobStatus.PARTLY_APPLIED, "unsure": JobStatus.UNCERTAIN}
    for n, (job_id, status) in enumerate(waiting.items()):
        add_job(store, job_id, T0)
        store.jobs.update(job_id, status, deadline=now - timedelta(minutes=n + 1))
    for job_id, status in {"done": JobStatus.APPLIED, "expired": JobStatus.EXPIRED}.items():
        add_job(store, job_id, T0)
        store.jobs.update(job_id, status, deadline=now - timedelta(minutes=10))
    add_job(store, "not-yet", T0)
    store.jobs.update("not-yet", JobStatus.SENT, deadline=now + timedelta(minutes=1))
    assert [j.id for j in store.jobs.overdue(now)] == ["unsure", "partly", "sent"]


def test_contacts_sent_this_month_count_accepted_jobs_only(
    store: Store, make_job: Callable[..., Job]
) -> None:
    make_job("job-1")
    assert store.jobs.contacts_sent_since("acme", T0 - timedelta(days=1)) == 0, (
        "a pending job was not sent yet"
    )
    store.jobs.update("job-1", JobStatus.SENT)
    make_job("job-2")
    store.jobs.update("job-2", JobStatus.FAILED)
    assert store.jobs.contacts_sent_since("acme", T0 - timedelta(days=1)) == 2
    assert store.jobs.contacts_sent_since("acme", T0 + timedelta(seconds=1)) == 0


def test_every_contact_in_a_state_is_listed_when_no_limit_is_given(store: Store) -> None:
    run_id = store.runs.start("acme", "sync")
    job = Job(
        "job-many", "acme", run_id, "ab" * 32, None, JobStatus.SENT, ["email"], 60, T0, None, None, None
    )
    ids = [f"003{n:03}" for n in range(60)]
    store.jobs.create(
        job, [JobContact("job-many", i, "Contact", {"firstname": "A", "lastname": "B"}, {}) for i in ids]
    )
    store.jobs.mark_contacts("job-many", ids, "rejected", "FIELD_CUSTOM_VALIDATION_EXCEPTION")
    assert len(store.jobs.contacts_with_status("acme", "rejected")) == 20, "the default stays a screenful"
    assert sorted(c.record_id for c in store.jobs.contacts_with_status("acme", "rejected", None)) == ids


def test_a_job_lonescale_took_is_sent_unless_its_results_were_applied_meanwhile(store: Store) -> None:
    for job_id, before in (("posted", None), ("unsure", JobStatus.UNCERTAIN), ("done", JobStatus.APPLIED)):
        add_job(store, job_id, T0)
        if before is not None:  # another process took the instance over and settled it, as after a freeze
            store.jobs.update(job_id, before)
        store.jobs.accepted(job_id, f"ls-{job_id}", T0 + timedelta(seconds=1))

    found = {j: store.jobs.get(j) for j in ("posted", "unsure", "done")}
    assert {j: job.status for j, job in found.items() if job} == {
        "posted": JobStatus.SENT,
        "unsure": JobStatus.SENT,  # now known to have reached LoneScale: its results are awaited
        "done": JobStatus.APPLIED,  # never back to awaiting what was already written
    }
    assert all(job and job.lonescale_id == f"ls-{j}" for j, job in found.items())
