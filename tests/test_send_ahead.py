"""Triggers posted on a thread of their own (connector/send_ahead.py): the pull goes on while LoneScale answers,
and every failure still stops what waits behind it unsent, with each job stored before its POST."""

from __future__ import annotations

import pytest

from connector.models import JobStatus
from connector.sync import SyncReport
from tests.conftest import Served
from tests.support import LONESCALE, Pipeline, salesforce_instance
from tests.test_trigger_safety import TRIGGER, contacts_of, held_by_lonescale, in_cooldown

# Jobs of ten from the first run (the echo assumed by name): thirty batches out of the emulator's 300 contacts,
# each answer held long enough that the batches filled meanwhile wait for the sender.
TENS = LONESCALE.model_copy(update={"assume_custom_echoed": True, "batch_size": 10})
HELD = 0.2  # seconds each accepted trigger's answer takes


def jobs_of_run(pipeline: Pipeline, report: SyncReport) -> list[str]:
    return [j.id for j in pipeline.store.jobs.find(report.instance) if j.run_id == report.run_id]


def test_an_answer_lost_part_way_sends_nothing_of_what_waits_behind_it(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    # The third job's answer is lost; by then the pull has filled more batches, waiting for the sender.
    lonescale_sandbox.control.configure(
        trigger_fault="reset", trigger_fault_from=3, trigger_answer_seconds=HELD
    )
    instance = salesforce_instance(salesforce_sandbox)

    report = pipeline.sync(instance, TENS)

    assert report.status == "stopped" and "was lost" in (report.message or "")
    assert lonescale_sandbox.control.count(route=TRIGGER) == 3, "nothing posted after the lost answer"
    assert len(held_by_lonescale(lonescale_sandbox)) == 3
    stored = jobs_of_run(pipeline, report)
    assert sorted(stored) == sorted(report.jobs), "no job stored for a batch that waited: none is pending"
    statuses = [pipeline.store.jobs.get(j).status for j in report.jobs]  # type: ignore[union-attr]
    assert statuses.count(JobStatus.UNCERTAIN) == 1 and statuses.count(JobStatus.SENT) == 2
    assert pipeline.store.cursors.get(instance.name) is None, "the window is not finished: the cursor stays"
    sent = contacts_of(pipeline, report.jobs)
    assert report.sent == len(sent) == 30 and in_cooldown(pipeline, instance, sent) == sent

    # The batches that waited were never posted: the next run sends them, and none of the three jobs' contacts.
    lonescale_sandbox.control.configure(trigger_fault="none", trigger_answer_seconds=0)
    later = pipeline.sync(instance, TENS)
    assert later.status == "succeeded" and later.sent > 0
    assert not sent & contacts_of(pipeline, later.jobs)


def test_a_cap_met_by_the_sender_sends_exactly_the_cap(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(trigger_answer_seconds=HELD / 4)
    instance = salesforce_instance(salesforce_sandbox, budget={"max_contacts_per_run": 45})

    report = pipeline.sync(instance, TENS)

    assert report.status == "stopped" and report.at_budget, report.message
    taken = [job["contacts"] for job in held_by_lonescale(lonescale_sandbox)]
    assert sum(taken) == report.sent == 45 and max(taken) <= 10
    assert sorted(jobs_of_run(pipeline, report)) == sorted(report.jobs)
    assert pipeline.store.cursors.get(instance.name) is None


def test_a_sync_interrupted_while_batches_wait_posts_none_of_them(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    """Ctrl-C reaches the sync's own thread wherever it is: here in its progress line, after the pull's chunk.
    The POST in flight finishes and its job is recorded; the batches waiting are dropped, never posted."""
    lonescale_sandbox.control.configure(trigger_answer_seconds=HELD)
    instance = salesforce_instance(salesforce_sandbox)
    posted_at_interrupt: list[int] = []

    def interrupt(report: SyncReport) -> None:
        if report.status == "running" and not posted_at_interrupt:
            posted_at_interrupt.append(lonescale_sandbox.control.count(route=TRIGGER))
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipeline.sync(instance, TENS, progress=interrupt)

    [at_interrupt] = posted_at_interrupt
    posted = lonescale_sandbox.control.count(route=TRIGGER)
    assert at_interrupt <= posted <= at_interrupt + 1, "at most the POST in flight, nothing that waited"
    assert posted < 30, "batches were waiting when the sync stopped"
    jobs = pipeline.store.jobs.find(instance.name)
    assert len(jobs) == posted and {j.status for j in jobs} == {JobStatus.SENT}
    assert pipeline.store.cursors.get(instance.name) is None
    sent = contacts_of(pipeline, [j.id for j in jobs])
    assert sent and in_cooldown(pipeline, instance, sent) == sent
