"""Sending an expired job's contacts again, on a person's word (`retry-failed --jobs`): a dry run with the possible
cost, each contact sent once whatever happens, and the old job's late results writing nothing twice."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from connector.models import EnrichmentType
from connector.overdue import settle_overdue
from connector.resend import SEND, ResendReport, resend_expired
from connector.store import instance_lease, schema
from connector.sync import SyncReport
from connector.wiring import Instance
from tests.conftest import Served
from tests.support import LONESCALE, Pipeline, edit_as_a_person, salesforce_instance
from tests.test_overdue import AT_THE_DEADLINE, PAST_THE_GRACE, expired_jobs, later
from tests.test_trigger_safety import in_cooldown


def expire(pipeline: Pipeline, lonescale: Served, instance: Instance) -> list[str]:
    """A sync whose jobs LoneScale runs and bills but never calls back, then their grace passing."""
    lonescale.control.configure(webhook_missing_share=1.0)
    report = pipeline.sync(instance)
    assert report.status == "succeeded" and report.jobs, report.message
    for moment in (AT_THE_DEADLINE, PAST_THE_GRACE):
        settle_overdue(pipeline.store, pipeline.lonescale, now=lambda m=moment: later(m))
    assert set(expired_jobs(pipeline.store, instance.name)) == set(report.jobs)
    lonescale.control.configure(webhook_missing_share=0.0)  # from now on, deliveries come
    return report.jobs


def resend(pipeline: Pipeline, instance: Instance, *, dry_run: bool = False) -> ResendReport:
    return resend_expired({instance.name: instance}, pipeline.store, pipeline.lonescale, LONESCALE,
                          pipeline.webhook.base_url, dry_run=dry_run)  # fmt: skip


def posted(lonescale: Served) -> Counter[str]:
    """How many times LoneScale was given each contact, from its own book."""
    return Counter(cid for job in lonescale.control.admin("jobs")["jobs"] for cid in job["contact_ids"])


def written(pipeline: Pipeline) -> Counter[tuple[str, str]]:
    """(record, field) → how many writes the journal holds."""
    journal = schema.write_journal
    with pipeline.store.database.engine.connect() as db:
        rows = db.execute(select(journal.c.record_id, journal.c.field).where(journal.c.outcome == "written"))
        return Counter((row.record_id, row.field) for row in rows)


def contacts_of(pipeline: Pipeline, jobs: list[str]) -> set[str]:
    return {c.record_id for job in jobs for c in pipeline.store.jobs.contacts(job)}


def test_a_dry_run_lists_each_expired_contact_with_what_sending_it_again_can_cost_and_sends_nothing(
    pipeline: Pipeline, lonescale_sandbox: Served, instance: Instance
) -> None:
    jobs = expire(pipeline, lonescale_sandbox, instance)
    contacts = contacts_of(pipeline, jobs)
    before = posted(lonescale_sandbox)

    report = resend(pipeline, instance, dry_run=True)

    assert {row.record_id for row in report.chosen} == contacts == {row.record_id for row in report.rows}
    prices = LONESCALE.credits_per_type
    for row in report.chosen:
        assert row.credits == sum(prices[EnrichmentType(kind)] for kind in row.types.split("+"))
    assert report.most_credits == sum(row.credits for row in report.chosen) > 0
    assert report.balance is not None and report.balance > 0
    by_types = Counter(row.types for row in report.chosen)
    lines = report.costs()
    assert len(lines) == len(by_types) and all(" contact(s) × " in line for line in lines)
    assert sum(int(line.split(" ")[0]) for line in lines) == len(contacts)
    assert posted(lonescale_sandbox) == before, "a dry run sends nothing"
    assert set(expired_jobs(pipeline.store, instance.name)) == set(jobs), "and marks nothing"
    assert not [r for r in pipeline.store.runs.recent(instance.name) if r["kind"] == "resend"]


def test_expired_contacts_are_sent_again_once_and_the_old_jobs_late_results_write_nothing_twice(
    pipeline: Pipeline, lonescale_sandbox: Served, instance: Instance
) -> None:
    old_jobs = expire(pipeline, lonescale_sandbox, instance)
    contacts = contacts_of(pipeline, old_jobs)

    report = resend(pipeline, instance)

    [run] = report.runs
    assert run.status == "succeeded" and run.sent == len(contacts) and run.jobs
    assert set(posted(lonescale_sandbox).values()) == {2}, "each contact: its old job, and its new one"
    for old in old_jobs:
        assert {c.status for c in pipeline.store.jobs.contacts(old)} == {"resent"}
    assert not expired_jobs(pipeline.store, instance.name), "a person decided: no longer in failures"
    assert {r["kind"] for r in pipeline.store.runs.recent(instance.name)} >= {"resend"}
    pipeline.wait_for_results(run)
    first = pipeline.apply(instance)
    assert first.records_written > 0

    again = resend(pipeline, instance)
    assert not again.chosen and not again.runs
    assert set(posted(lonescale_sandbox).values()) == {2}, "never a third time"

    journal = written(pipeline)
    for old in old_jobs:  # LoneScale's queue catches up with the old jobs, hours late
        job = pipeline.store.jobs.get(old)
        assert job is not None and job.lonescale_id is not None
        lonescale_sandbox.control.admin_post("deliver", {"job_id": job.lonescale_id})
    pipeline.wait_for_results(SyncReport(instance.name, 0, jobs=old_jobs))
    late = pipeline.apply(instance)

    assert late.results == len(contacts) and late.records_written == late.fields_written == 0
    assert written(pipeline) == journal, "nothing written twice"
    assert {c.status for old in old_jobs for c in pipeline.store.jobs.contacts(old)} == {"applied"}


def test_a_stop_between_the_send_and_its_mark_never_sends_a_contact_a_third_time(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    instance = salesforce_instance(salesforce_sandbox)
    old_jobs = expire(pipeline, lonescale_sandbox, instance)
    resend(pipeline, instance)
    for old in old_jobs:  # as if the process had stopped before marking them `resent`
        ids = [c.record_id for c in pipeline.store.jobs.contacts(old)]
        pipeline.store.jobs.mark_contacts(old, ids, "expired", "may have been billed; no results arrived")

    report = resend(pipeline, instance)

    assert not report.chosen and not report.runs
    assert {row.note for row in report.rows} == {"sent again since, in a later job"}
    assert set(posted(lonescale_sandbox).values()) == {2}


def test_a_target_filled_since_is_not_bought_again(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    instance = salesforce_instance(salesforce_sandbox)
    old_jobs = expire(pipeline, lonescale_sandbox, instance)
    row = next(r for r in resend(pipeline, instance, dry_run=True).chosen if "email" in r.types)
    edit_as_a_person(salesforce_sandbox, "salesforce", row.record_id, {"Email": "typed.by.a@person.example"})

    plan = {r.record_id: r for r in resend(pipeline, instance, dry_run=True).rows}

    after = plan[row.record_id]
    assert "email" not in after.types.split("+")
    assert after.note == (SEND if after.types else "targets already filled")
    assert all(plan[r].types for r in contacts_of(pipeline, old_jobs) if r != row.record_id)


def test_a_resend_waits_for_an_instance_another_process_is_working_on(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    instance = salesforce_instance(salesforce_sandbox)
    old_jobs = expire(pipeline, lonescale_sandbox, instance)
    before = posted(lonescale_sandbox)

    with pipeline.store.leases.held(instance_lease(instance.name), "sync"):
        report = resend(pipeline, instance)

    assert report.busy and "is busy" in report.busy[0] and not report.runs
    assert posted(lonescale_sandbox) == before
    assert set(expired_jobs(pipeline.store, instance.name)) == set(old_jobs)
    assert in_cooldown(pipeline, instance, contacts_of(pipeline, old_jobs)) == contacts_of(pipeline, old_jobs)
