"""Runs: what each sync or pass did and how it ended; what a crash left running, found at the next start."""

from __future__ import annotations

from collections.abc import Callable

from connector.models import JobStatus
from connector.store import Job, Store


def test_a_run_records_its_counts_and_outcome(store: Store) -> None:
    run_id = store.runs.start("acme", "sync")
    store.runs.finish(run_id, "succeeded", {"pulled": 10, "skipped": {"no lastname": 2}})
    (run,) = store.runs.recent("acme")
    assert (run["id"], run["status"], run["counts"]) == (
        run_id,
        "succeeded",
        {"pulled": 10, "skipped": {"no lastname": 2}},
    )
    assert run["finished_at"] is not None
    assert store.runs.get(run_id) == run
    assert store.runs.get(run_id + 1) is None


def test_the_latest_runs_come_first_and_only_the_instances_own(store: Store) -> None:
    first, second = store.runs.start("acme", "sync"), store.runs.start("acme", "apply")
    store.runs.start("other", "sync")
    assert [r["id"] for r in store.runs.recent("acme")] == [second, first]
    assert [r["id"] for r in store.runs.recent("acme", limit=1)] == [second]


def test_what_a_crash_left_unfinished_is_interrupted_and_its_unposted_jobs_uncertain(
    store: Store, make_job: Callable[..., Job]
) -> None:
    unposted = make_job("job-1")  # pending: stored, maybe never posted
    make_job("job-2")
    store.jobs.update("job-2", JobStatus.SENT)
    finished = store.runs.start("acme", "apply")
    store.runs.finish(finished, "succeeded", {})
    make_job("job-3", instance="other")
    assert store.runs.interrupt_unfinished("acme") == (2, 1), "job-1's and job-2's sync runs; job-1"
    crashed = store.runs.get(unposted.run_id)
    assert crashed is not None and crashed["status"] == "interrupted" and crashed["finished_at"] is not None
    done = store.runs.get(finished)
    assert done is not None and done["status"] == "succeeded", "a finished run stays as it ended"
    job = store.jobs.get("job-1")
    assert job is not None and job.status is JobStatus.UNCERTAIN
    assert job.reason == "the daemon stopped while posting it"
    elsewhere = store.jobs.get("job-3")
    assert elsewhere is not None and elsewhere.status is JobStatus.PENDING, (
        "another instance's is not touched"
    )
