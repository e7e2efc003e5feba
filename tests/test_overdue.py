"""Webhooks that never come: polled after the deadline, applied, or expired with a reason and released."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connector.models import JobStatus
from connector.overdue import GRACE, settle_overdue
from connector.store import Job, JobContact
from connector.sync import JOB_DEADLINE
from tests.conftest import Served
from tests.support import Pipeline, salesforce_instance


def later(delta: timedelta) -> datetime:
    return datetime.now(UTC) + delta


def test_a_job_whose_webhook_never_came_is_polled_and_its_results_applied(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(webhook_missing_share=1.0)  # LoneScale finishes but never calls back
    instance = salesforce_instance(salesforce_sandbox)
    report = pipeline.sync(instance)
    assert report.sent > 0
    assert pipeline.apply(instance).deliveries == 0

    assert settle_overdue(pipeline.store, pipeline.lonescale).polled == 0, (
        "nothing is overdue before its deadline"
    )
    overdue = settle_overdue(
        pipeline.store, pipeline.lonescale, now=lambda: later(JOB_DEADLINE + timedelta(seconds=1))
    )

    assert overdue.polled == overdue.recovered == len(report.jobs)
    applied = pipeline.apply(instance)
    assert applied.records_written + applied.records_rejected == report.sent
    assert {pipeline.store.job(j).status for j in report.jobs} == {JobStatus.APPLIED}  # type: ignore[union-attr]
    assert lonescale_sandbox.control.count(route="/trigger/run/{id}", status=200) == len(report.jobs)


def test_a_job_still_without_results_after_the_grace_expires_and_its_contacts_are_released(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(webhook_delay_seconds=3600)  # LoneScale is stuck "processing"
    instance = salesforce_instance(salesforce_sandbox)
    report = pipeline.sync(instance)
    (job_id, *_) = report.jobs
    contacts = [c.record_id for c in pipeline.store.job_contacts(job_id)]
    assert all(pipeline.store.record_states("acme-sf", contacts)[c]["types"] for c in contacts), "in cooldown"

    first = settle_overdue(
        pipeline.store, pipeline.lonescale, now=lambda: later(JOB_DEADLINE + timedelta(seconds=1))
    )
    assert first.polled == len(report.jobs) and first.recovered == 0 and not first.expired
    job = pipeline.store.job(job_id)
    assert job is not None and job.polls == 1 and job.reason == "LoneScale says 'processing' at the deadline"

    second = settle_overdue(
        pipeline.store, pipeline.lonescale, now=lambda: later(JOB_DEADLINE + GRACE + timedelta(minutes=1))
    )
    assert {j for j, _ in second.expired} == set(report.jobs)
    job = pipeline.store.job(job_id)
    assert job is not None and job.status is JobStatus.EXPIRED and "even by polling" in (job.reason or "")
    assert {c.status for c in pipeline.store.job_contacts(job_id)} == {"expired"}
    assert not any(pipeline.store.record_states("acme-sf", contacts)[c]["types"] for c in contacts), (
        "released"
    )
    assert pipeline.store.job_counts("acme-sf") == {"expired": len(report.jobs)}


def test_an_uncertain_trigger_is_never_re_posted_and_expires_when_no_webhook_settles_it(
    pipeline: Pipeline,
) -> None:
    store = pipeline.store
    run_id = store.start_run("acme-sf", "sync")
    created = datetime.now(UTC) - JOB_DEADLINE - timedelta(minutes=1)
    job = Job("job-u", "acme-sf", run_id, "0" * 64, None, JobStatus.UNCERTAIN, ["email"], 1, created, None,
              created + JOB_DEADLINE, "read timeout")  # fmt: skip
    store.create_job(job, [JobContact("job-u", "003A", "Contact", {"firstname": "A", "lastname": "B"}, {})])
    store.remember_sent("acme-sf", {"003A": ["email"]}, created)

    report = settle_overdue(store, pipeline.lonescale)

    assert report.polled == 0, "without a LoneScale id there is nothing to poll, and nothing is posted again"
    assert report.expired == [
        ("job-u", "the trigger timed out and no webhook came: LoneScale likely never started it")
    ]
    assert store.record_states("acme-sf", ["003A"])["003A"]["types"] == {}
    assert pipeline.lonescale_sandbox.control.count(route="/trigger/enrich") == 0
