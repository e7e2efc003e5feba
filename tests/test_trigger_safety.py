"""The trigger's money path: a POST LoneScale may have taken is never posted again, a 2xx without a job id is
not taken for a failure, and a refusal of every request stops the run instead of marking every contact."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from connector.lonescale import LoneScaleClient
from connector.models import JobStatus
from connector.redact import Secret
from connector.retry import RetryPolicy
from connector.sandbox import credentials
from connector.store import Cursor
from connector.window import EPOCH
from connector.wiring import Instance
from tests.conftest import Served
from tests.support import LONESCALE, Pipeline, hubspot_instance, salesforce_instance

TRIGGER = "/trigger/enrich"


def held_by_lonescale(served: Served) -> list[dict[str, Any]]:
    """The jobs LoneScale holds (and will bill), from the emulator's own book."""
    jobs: list[dict[str, Any]] = served.control.admin("jobs")["jobs"]
    return jobs


def contacts_of(pipeline: Pipeline, job_ids: list[str]) -> set[str]:
    return {c.record_id for job in job_ids for c in pipeline.store.jobs.contacts(job)}


# Jobs of `batch_size` contacts from the first run: the kind reading of LoneScale's echo, assumed by name (and
# these tests read no results that would need it).
FULL_JOBS = LONESCALE.model_copy(update={"assume_custom_echoed": True})


def in_cooldown(pipeline: Pipeline, instance: Instance, record_ids: set[str]) -> set[str]:
    states = pipeline.store.ledger.states(instance.name, sorted(record_ids))
    return {record for record, state in states.items() if state["types"]}


@pytest.mark.parametrize("fault", ["gateway_timeout", "reset"])
def test_a_trigger_whose_answer_was_lost_after_the_body_was_sent_is_never_posted_again(
    pipeline: Pipeline, instance: Instance, lonescale_sandbox: Served, fault: str
) -> None:
    lonescale_sandbox.control.configure(trigger_fault=fault)

    report = pipeline.sync(instance)

    assert report.status == "stopped" and report.message, report.message
    assert "was lost" in report.message and "Nothing more is sent this run" in report.message
    [job_id] = report.jobs
    [held] = held_by_lonescale(lonescale_sandbox)
    assert lonescale_sandbox.control.count(route=TRIGGER) == 1, "one POST for those contacts, never repeated"
    job = pipeline.store.jobs.get(job_id)
    assert job is not None and job.status is JobStatus.UNCERTAIN and job.lonescale_id is None
    assert held["contacts"] == job.contact_count == report.sent
    assert pipeline.store.cursors.get(instance.name) is None, "the window is not finished: the cursor stays"
    contacts = contacts_of(pipeline, [job_id])
    assert in_cooldown(pipeline, instance, contacts) == contacts, "it may have been billed: nothing released"

    # LoneScale ran it all the same: its webhook settles the job, and the next run sends those contacts no more.
    pipeline.wait_for_results(report)
    applied = pipeline.apply(instance)
    assert applied.records_written + applied.records_rejected == report.sent
    assert pipeline.store.jobs.get(job_id).status is JobStatus.APPLIED  # type: ignore[union-attr]
    lonescale_sandbox.control.configure(trigger_fault="none")
    later = pipeline.sync(instance)
    assert later.status == "succeeded" and later.sent > 0
    assert not contacts & contacts_of(pipeline, later.jobs)


class Doorway:
    """A TCP relay to LoneScale that lets one connection through (the credit check) and stops listening as it
    takes it: every later connect is refused, before a byte of the request leaves."""

    def __init__(self, target: str):
        parts = urlsplit(target)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._serve, name="doorway", daemon=True).start()

    def _serve(self) -> None:
        client, _ = self._listener.accept()
        self._listener.close()  # before the first answer goes back, so no later connect can find it open
        upstream = socket.create_connection(self._target)
        self._sockets += [client, upstream]
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        for each in self._sockets:
            each.close()


def test_a_trigger_that_never_reached_lonescale_is_retried_then_its_contacts_released(
    pipeline: Pipeline,
    salesforce_sandbox: Served,
    lonescale_sandbox: Served,
    caplog: pytest.LogCaptureFixture,
) -> None:
    door = Doorway(lonescale_sandbox.url)
    no_reuse = httpx.HTTPTransport(
        limits=httpx.Limits(max_keepalive_connections=0)
    )  # each call connects anew
    fast = RetryPolicy(base_delay=0.01, max_delay=0.05)
    behind_door = LoneScaleClient(
        door.url, Secret(credentials.LONESCALE_API_KEY), transport=no_reuse, retry_policy=fast
    )
    instance = salesforce_instance(salesforce_sandbox)
    usual, pipeline.lonescale = pipeline.lonescale, behind_door
    try:
        with caplog.at_level(logging.INFO, logger="connector.retry"):
            report = pipeline.sync(instance)
    finally:
        pipeline.lonescale = usual
        behind_door.close()
        door.close()

    assert report.status == "failed" and "cannot reach LoneScale: ConnectError" in (report.message or "")
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("LoneScale trigger: ")]
    assert len(said) == fast.attempts and "giving up after 6 attempts" in said[-1], "retried, then given up"
    assert held_by_lonescale(lonescale_sandbox) == [] and lonescale_sandbox.control.count(route=TRIGGER) == 0
    [job] = pipeline.store.jobs.find(instance.name)
    assert job.status is JobStatus.FAILED and job.lonescale_id is None
    contacts = contacts_of(pipeline, [job.id])
    assert in_cooldown(pipeline, instance, contacts) == set(), "never sent: released for the next run"
    assert pipeline.store.cursors.get(instance.name) is None
    again = pipeline.sync(instance)
    assert again.status == "succeeded" and contacts <= contacts_of(pipeline, again.jobs)


@pytest.mark.parametrize(
    "answer", [{"start_response": "string"}, {"trigger_fault": "no_id"}], ids=["a plain string", "no id"]
)
def test_a_2xx_without_a_job_id_is_uncertain_kept_in_cooldown_and_never_sent_again(
    pipeline: Pipeline, hubspot_sandbox: Served, lonescale_sandbox: Served, answer: dict[str, str]
) -> None:
    lonescale_sandbox.control.configure(**answer)
    instance = hubspot_instance(hubspot_sandbox)

    report = pipeline.sync(instance)

    assert report.status == "succeeded", "LoneScale answered (and took each job): the run goes on"
    assert len(report.jobs) == len(held_by_lonescale(lonescale_sandbox)) > 1
    jobs = [pipeline.store.jobs.get(job_id) for job_id in report.jobs]
    assert {(j.status, j.lonescale_id) for j in jobs if j} == {(JobStatus.UNCERTAIN, None)}
    contacts = contacts_of(pipeline, report.jobs)
    assert len(contacts) == report.sent and in_cooldown(pipeline, instance, contacts) == contacts

    pipeline.store.cursors.set(instance.name, Cursor(EPOCH))  # read everything again
    again = pipeline.sync(instance)
    assert (again.sent, again.skipped["in cooldown"]) == (0, len(contacts))
    assert lonescale_sandbox.control.count(route=TRIGGER) == len(report.jobs)

    pipeline.wait_for_results(report)  # the webhook is how these jobs come back
    applied = pipeline.apply(instance)
    assert applied.records_written + applied.records_rejected == report.sent
    assert {pipeline.store.jobs.get(job_id).status for job_id in report.jobs} == {JobStatus.APPLIED}  # type: ignore[union-attr]


def test_a_refusal_of_every_request_stops_the_run_after_two_posts_and_marks_no_contact(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    """Jobs of one contact each (the echo not known yet): two contacts refused alone with the same answer,
    nothing taken, is LoneScale refusing every request."""
    reason = "webhook_url must be a URL address using https"
    lonescale_sandbox.control.configure(refuse_all_with=reason)
    instance = salesforce_instance(salesforce_sandbox)

    report = pipeline.sync(instance)

    assert report.status == "stopped"
    assert (report.message or "").startswith(f"LoneScale refuses every request: {reason} ")
    assert lonescale_sandbox.control.count(route=TRIGGER) == 2, "two contacts alone, and no more"
    assert (report.sent, report.jobs, held_by_lonescale(lonescale_sandbox)) == (0, [], [])
    assert pipeline.store.jobs.contacts_with_status(instance.name, "rejected", limit=1000) == []
    assert pipeline.store.cursors.get(instance.name) is None
    refused = contacts_of(pipeline, [j.id for j in pipeline.store.jobs.find(instance.name)])
    assert len(refused) == 2 and in_cooldown(pipeline, instance, refused) == set(), "no cooldown"


def test_a_refusal_of_every_full_job_stops_the_run_after_three_posts_and_marks_no_contact(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    reason = "webhook_url must be a URL address using https"
    lonescale_sandbox.control.configure(refuse_all_with=reason)
    instance = salesforce_instance(salesforce_sandbox)

    report = pipeline.sync(instance, FULL_JOBS)

    assert report.status == "stopped"
    assert (report.message or "").startswith(f"LoneScale refuses every request: {reason} ")
    assert lonescale_sandbox.control.count(route=TRIGGER) == 3, "the batch, then one contact from each end"
    assert (report.sent, report.jobs, held_by_lonescale(lonescale_sandbox)) == (0, [], [])
    assert "refused by LoneScale" not in report.skipped
    assert pipeline.store.jobs.contacts_with_status(instance.name, "rejected", limit=1000) == []
    assert pipeline.store.cursors.get(instance.name) is None
    jobs = pipeline.store.jobs.find(instance.name)
    assert {j.status for j in jobs} == {JobStatus.FAILED}
    refused = contacts_of(pipeline, [j.id for j in jobs])
    assert refused and in_cooldown(pipeline, instance, refused) == set(), "they never started: no cooldown"

    lonescale_sandbox.control.configure(refuse_all_with=None)
    again = pipeline.sync(instance, FULL_JOBS)
    assert again.status == "succeeded" and refused <= contacts_of(pipeline, again.jobs)


def test_a_contact_lonescale_refuses_with_a_400_is_isolated_and_marked_while_the_rest_go_through(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    # A trailing dot passes our email check but not a strict `format: email` one (validator.js isEmail).
    [bad] = salesforce_sandbox.control.seed(
        [{"sobject": "Contact", "FirstName": "Ada", "LastName": "Lovelace", "Email": "ada.@engines.io"}]
    )
    instance = salesforce_instance(salesforce_sandbox)

    report = pipeline.sync(instance)

    assert report.status == "succeeded" and report.skipped["refused by LoneScale"] == 1
    [marked] = pipeline.store.jobs.contacts_with_status(instance.name, "rejected")
    assert marked.record_id == bad and "400" in (marked.reason or "")
    taken = [job["contacts"] for job in held_by_lonescale(lonescale_sandbox)]
    assert sum(taken) == report.sent == len(contacts_of(pipeline, report.jobs))
    assert bad not in contacts_of(pipeline, report.jobs)
    assert in_cooldown(pipeline, instance, {bad}) == {bad}, "the same input would be refused again"


def test_a_stop_in_the_middle_of_a_split_releases_the_contacts_it_never_sent(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    # The run's batches are refused (too many contacts); the first part LoneScale takes loses its answer.
    lonescale_sandbox.control.configure(max_contacts_per_request=5, trigger_fault="gateway_timeout")
    instance = salesforce_instance(salesforce_sandbox)

    report = pipeline.sync(instance, FULL_JOBS)

    assert report.status == "stopped" and "was lost" in (report.message or "")
    [uncertain] = report.jobs
    taken = contacts_of(pipeline, [uncertain])
    refused = [j.id for j in pipeline.store.jobs.find(instance.name) if j.status is JobStatus.FAILED]
    unsent = contacts_of(pipeline, refused) - taken
    assert unsent and in_cooldown(pipeline, instance, unsent) == set(), (
        "released: they never reached LoneScale"
    )
    assert in_cooldown(pipeline, instance, taken) == taken
