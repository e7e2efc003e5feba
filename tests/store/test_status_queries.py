"""The store's reads behind `status` and its page (connector.status, status_series), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from connector.models import JobStatus
from connector.store import Job, JournalEntry, Store


def test_fill_rate_parts_are_counted_per_sync_run(store: Store, make_job: Callable[..., Job]) -> None:
    job = make_job("job-1")
    other = make_job("job-2", instance="elsewhere")
    apply_run = store.runs.start("acme", "apply")
    store.journal.add([
        JournalEntry(apply_run, job.id, "acme", "003A", "Email", None, "z@x.com", "written"),
        JournalEntry(apply_run, job.id, "acme", "003B", "Email", None, "a@b.com", "rejected", "too long"),
        JournalEntry(apply_run, job.id, "acme", "003B", "Phone", None, "+1", "written"),
        JournalEntry(apply_run, other.id, "elsewhere", "003A", "Email", None, "q@x.com", "written"),
    ])  # fmt: skip
    assert store.journal.written_by_cycle("acme", [job.run_id]) == {
        (job.run_id, "Email"): 1,
        (job.run_id, "Phone"): 1,
    }
    assert store.journal.written_by_cycle("acme", []) == {}

    assert store.jobs.results_by_cycle("acme", [job.run_id]) == {}, (
        "results not settled yet: nothing to divide by"
    )
    store.jobs.mark_contacts(job.id, ["003A"], "applied")
    store.jobs.mark_contacts(job.id, ["003B"], "rejected", "Email not written: too long")
    assert store.jobs.results_by_cycle("acme", [job.run_id]) == {job.run_id: {"email": 2}}
    assert store.jobs.count_contacts_with_status("acme", "rejected") == 1
    assert store.jobs.count_contacts_with_status("elsewhere", "rejected") == 0


def test_runs_by_kind_and_since_a_moment(store: Store) -> None:
    sync = store.runs.start("acme", "sync")
    first = store.runs.start("acme", "apply")
    store.runs.start("other", "apply")
    second = store.runs.start("acme", "replay")
    store.runs.finish(first, "failed", {}, "the CRM is down")
    assert [r["id"] for r in store.runs.recent("acme", kinds=["apply", "replay"])] == [second, first]
    assert [r["id"] for r in store.runs.recent("acme", statuses=["failed"])] == [first]
    latest = store.runs.latest("acme", "sync")
    assert latest is not None and latest["id"] == sync and store.runs.latest("acme", "rollback") is None
    since = store.runs.since("acme", ["apply", "replay"], latest["started_at"])
    assert [r["id"] for r in since] == [first, second]
    assert store.runs.since("acme", ["apply"], latest["started_at"] + timedelta(days=1)) == []


def test_results_waiting_are_counted_per_instance(store: Store, make_job: Callable[..., Job]) -> None:
    job = make_job("job-1")
    make_job("job-2", instance="elsewhere")
    assert store.inbox.waiting_for("acme") == (0, None)
    store.inbox.keep(job.id, b'{"contacts": []}')
    store.inbox.keep(job.id, b'{"contacts": [1]}')
    store.inbox.keep("job-2", b"{}")
    count, oldest = store.inbox.waiting_for("acme")
    assert count == 2 and oldest is not None and oldest.tzinfo is not None
    store.jobs.update(job.id, JobStatus.APPLIED)
    delivery = store.inbox.new()[0]
    store.inbox.mark([delivery.id], "applied")
    assert store.inbox.waiting_for("acme")[0] == 1
