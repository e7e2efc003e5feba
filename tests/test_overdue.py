"""Jobs whose results never come: polled after the deadline where LoneScale lets us, applied, or expired into
`failures` with a reason. A job that may have reached LoneScale may have been billed: its contacts stay in
cooldown, and nothing sends them again without a person's word."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.models import JobStatus
from connector.overdue import GRACE, MAY_HAVE_BEEN_BILLED, settle_overdue
from connector.review import failures
from connector.sender import JOB_DEADLINE
from connector.store import Job, JobContact, Store, instance_lease
from tests.conftest import Served
from tests.support import Pipeline, salesforce_instance
from tests.test_trigger_safety import in_cooldown

AT_THE_DEADLINE = JOB_DEADLINE + timedelta(seconds=1)
PAST_THE_GRACE = JOB_DEADLINE + GRACE + timedelta(minutes=1)
RUN = "/trigger/run/{id}"


def later(delta: timedelta) -> datetime:
    return datetime.now(UTC) + delta


def expired_jobs(store: Store, instance: str) -> dict[str, str]:
    """Job id → reason, for each `expired job` row of the quarantine."""
    rows = [f for f in failures(store, [instance], limit=10_000) if f.kind == "expired job"]
    return {row.subject.split(":")[0].removeprefix("job "): row.reason for row in rows}


def uncertain_job(store: Store, reason: str = "read timeout") -> Job:
    """A job whose trigger answer was lost an hour ago: stored, its contact in cooldown, no LoneScale id."""
    run_id = store.runs.start("acme-sf", "sync")
    created = datetime.now(UTC) - JOB_DEADLINE - timedelta(minutes=1)
    job = Job("job-u", "acme-sf", run_id, "0" * 64, None, JobStatus.UNCERTAIN, ["email"], 1, created, None,
              created + JOB_DEADLINE, reason)  # fmt: skip
    store.jobs.create(job, [JobContact("job-u", "003A", "Contact", {"firstname": "A", "lastname": "B"}, {})])
    return job


def test_a_job_whose_webhook_never_came_is_polled_and_its_results_applied(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    # LoneScale finishes but never calls back; polling answers (the CLI trace's route, the kind reading).
    lonescale_sandbox.control.configure(webhook_missing_share=1.0, run_route="served")
    instance = salesforce_instance(salesforce_sandbox)
    report = pipeline.sync(instance)
    assert report.sent > 0
    assert pipeline.apply(instance).deliveries == 0

    assert settle_overdue(pipeline.store, pipeline.lonescale).polled == 0, (
        "nothing is overdue before its deadline"
    )
    overdue = settle_overdue(pipeline.store, pipeline.lonescale, now=lambda: later(AT_THE_DEADLINE))

    assert overdue.polled == overdue.recovered == len(report.jobs)
    applied = pipeline.apply(instance)
    assert applied.records_written + applied.records_rejected == report.sent
    assert {pipeline.store.jobs.get(j).status for j in report.jobs} == {JobStatus.APPLIED}  # type: ignore[union-attr]
    assert lonescale_sandbox.control.count(route=RUN, status=200) == len(report.jobs)


def test_a_job_still_processing_after_its_grace_is_expired_into_failures_and_its_contacts_stay_in_cooldown(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(webhook_delay_seconds=3600, run_route="served")  # stuck "processing"
    instance = salesforce_instance(salesforce_sandbox)
    report = pipeline.sync(instance)
    (job_id, *_) = report.jobs
    contacts = {c.record_id for j in report.jobs for c in pipeline.store.jobs.contacts(j)}
    assert in_cooldown(pipeline, instance, contacts) == contacts

    first = settle_overdue(pipeline.store, pipeline.lonescale, now=lambda: later(AT_THE_DEADLINE))
    assert first.polled == len(report.jobs) and first.recovered == 0 and not first.expired
    job = pipeline.store.jobs.get(job_id)
    assert job is not None and job.polls == 1 and job.reason == "LoneScale says 'processing' at the deadline"

    second = settle_overdue(pipeline.store, pipeline.lonescale, now=lambda: later(PAST_THE_GRACE))

    assert second.polled == len(report.jobs), "asked once more before giving up"
    assert {j for j, _ in second.expired} == set(report.jobs)
    job = pipeline.store.jobs.get(job_id)
    assert job is not None and job.status is JobStatus.EXPIRED
    assert (
        job.reason
        == f"{MAY_HAVE_BEEN_BILLED} within 30 min of its deadline. Last poll: LoneScale says 'processing'"
    )
    assert {c.status for c in pipeline.store.jobs.contacts(job_id)} == {"expired"}
    assert in_cooldown(pipeline, instance, contacts) == contacts, "it may have been billed: nothing released"
    assert expired_jobs(pipeline.store, instance.name) == dict.fromkeys(report.jobs, job.reason)
    assert pipeline.store.jobs.counts("acme-sf") == {"expired": len(report.jobs)}


@pytest.mark.parametrize(
    ("route", "answer"),
    [
        ("not_found", "LoneScale refused the run status (404 Cannot GET /trigger/run/"),
        ("forbidden", "LoneScale refused the run status (403 Forbidden resource)"),
    ],
)
def test_a_job_whose_polls_are_refused_is_expired_with_the_polls_answer_and_its_contacts_stay_in_cooldown(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served, route: str, answer: str
) -> None:
    lonescale_sandbox.control.configure(webhook_missing_share=1.0, run_route=route)
    instance = salesforce_instance(salesforce_sandbox)
    report = pipeline.sync(instance)
    contacts = {c.record_id for j in report.jobs for c in pipeline.store.jobs.contacts(j)}
    triggers = lonescale_sandbox.control.count(route="/trigger/enrich")

    first = settle_overdue(pipeline.store, pipeline.lonescale, now=lambda: later(AT_THE_DEADLINE))

    assert first.polled == len(report.jobs) and not first.expired
    for job in (pipeline.store.jobs.get(j) for j in report.jobs):
        assert job is not None and job.polls == 1, "a refused poll counts"
        assert job.reason and job.reason.startswith(f"the poll failed: {answer}")

    second = settle_overdue(pipeline.store, pipeline.lonescale, now=lambda: later(PAST_THE_GRACE))

    assert {j for j, _ in second.expired} == set(report.jobs)
    for _, reason in second.expired:
        assert reason.startswith(f"{MAY_HAVE_BEEN_BILLED} within 30 min of its deadline. Last poll: "
                                 f"the poll failed: {answer}")  # fmt: skip
    assert set(expired_jobs(pipeline.store, instance.name)) == set(report.jobs)
    assert in_cooldown(pipeline, instance, contacts) == contacts, "accepted by LoneScale: nothing released"
    assert lonescale_sandbox.control.count(route="/trigger/enrich") == triggers, "nothing posted again"


def test_an_uncertain_job_without_an_id_waits_out_its_grace_then_is_expired_and_never_released(
    pipeline: Pipeline,
) -> None:
    store = pipeline.store
    uncertain_job(store, "LoneScale's answer to the trigger was lost (ReadTimeout)")

    at_the_deadline = settle_overdue(store, pipeline.lonescale)  # an hour after it was stored

    assert not at_the_deadline.expired, "its webhook may still come: it has the grace like any other job"
    report = settle_overdue(store, pipeline.lonescale, now=lambda: later(GRACE))

    assert report.polled == 0, "without a LoneScale id there is nothing to poll, and nothing is posted again"
    reason = (f"{MAY_HAVE_BEEN_BILLED} within 30 min of its deadline. No LoneScale id to poll it by: "
              "LoneScale's answer to the trigger was lost (ReadTimeout)")  # fmt: skip
    assert report.expired == [("job-u", reason)]
    assert store.ledger.states("acme-sf", ["003A"])["003A"]["types"], "kept in cooldown"
    assert expired_jobs(store, "acme-sf") == {"job-u": reason}
    assert pipeline.lonescale_sandbox.control.count(route="/trigger/enrich") == 0


def test_the_overdue_check_leaves_an_instance_another_process_is_working_on_for_its_next_visit(
    pipeline: Pipeline,
) -> None:
    store = pipeline.store
    uncertain_job(store)
    sync = store.leases.acquire(instance_lease("acme-sf"), "sync")
    within_its_grace = settle_overdue(store, pipeline.lonescale)
    assert not within_its_grace.busy, "nothing to do yet: the lease was not even asked for"

    busy = settle_overdue(store, pipeline.lonescale, now=lambda: later(GRACE))

    assert not busy.expired and busy.busy and "instance:acme-sf is busy" in busy.busy[0]
    job = store.jobs.get("job-u")
    assert job is not None and job.status is JobStatus.UNCERTAIN, "not touched while the sync holds it"
    sync.release()
    free = settle_overdue(store, pipeline.lonescale, now=lambda: later(GRACE))
    assert [j for j, _ in free.expired] == ["job-u"]


def test_a_job_whose_results_wait_in_the_inbox_is_never_expired(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(run_route="served")
    instance = salesforce_instance(salesforce_sandbox)
    report = pipeline.sync(instance)
    pipeline.wait_for_results(report)  # delivered and stored; the write-back has not run (a CRM outage)

    for moment in (AT_THE_DEADLINE, PAST_THE_GRACE, PAST_THE_GRACE + GRACE):
        assert not settle_overdue(pipeline.store, pipeline.lonescale, now=lambda m=moment: later(m)).expired

    applied = pipeline.apply(instance)
    assert applied.records_written + applied.records_rejected == report.sent
    assert not expired_jobs(pipeline.store, instance.name)


def test_late_results_of_an_expired_job_are_still_applied_and_it_leaves_the_failures(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(webhook_missing_share=1.0)
    instance = salesforce_instance(salesforce_sandbox)
    report = pipeline.sync(instance)
    for moment in (AT_THE_DEADLINE, PAST_THE_GRACE):
        settle_overdue(pipeline.store, pipeline.lonescale, now=lambda m=moment: later(m))
    assert set(expired_jobs(pipeline.store, instance.name)) == set(report.jobs)

    for job in lonescale_sandbox.control.admin("jobs")["jobs"]:  # LoneScale's queue catches up, hours late
        lonescale_sandbox.control.admin_post("deliver", {"job_id": job["id"]})
    pipeline.wait_for_results(report)
    applied = pipeline.apply(instance)

    assert applied.records_written + applied.records_rejected == report.sent
    assert not expired_jobs(pipeline.store, instance.name)
