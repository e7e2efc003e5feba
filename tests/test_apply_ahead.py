"""A run of write-back passes reads the next pass while this one writes (connector/apply_ahead.py), end to end
through the real SDKs: never a record this pass may write, always under the lease, nothing lost on a failure."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from connector.adapters.hubspot import HubSpotAdapter
from connector.apply import apply_passes
from connector.checks import create_missing_status_fields
from connector.mapping import load_mapping
from connector.models import FieldUpdate, WriteResult
from connector.retry import RetryPolicy
from connector.sandbox import credentials
from connector.store import Leases, Store, instance_lease, schema
from connector.sync import SyncReport
from connector.wiring import Instance
from tests.conftest import Served
from tests.support import MAPPINGS, Pipeline, everything, hubspot_instance, salesforce_instance, settings
from tests.test_resend import expire, resend

AHEAD = "apply-ahead"  # the read-ahead's thread
RETRIEVE = "/services/data/{version}/composite/sobjects/{sobject}"  # Salesforce's read of current values
SF_WRITE = "/services/data/{version}/composite/sobjects"
HS_READ = "/crm/v3/objects/contacts/batch/read"
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


class Watched:
    """The instance's real adapter, each read and write noted in order with the thread that made it. Until
    `ahead_reads` reads ahead have been answered, each write first waits for the next one (30 s at most, then
    it goes on and says so): a read ahead that waited for this pass's writes would never come. `on_ahead`
    runs just before each read ahead is sent."""

    def __init__(self, inner: Any, ahead_reads: int = 0, on_ahead: Callable[[], None] = lambda: None):
        self.inner, self.name = inner, inner.name
        self.calls: list[tuple[str, str, tuple[str, ...]]] = []
        self.ahead_reads, self.on_ahead = ahead_reads, on_ahead
        self.answered = threading.Semaphore(0)
        self.waits: list[bool] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def read_current(self, ids: Sequence[str], fields: Sequence[str]) -> Any:
        thread = threading.current_thread().name
        try:
            if thread == AHEAD:
                self.on_ahead()
            return self.inner.read_current(ids, fields)
        finally:
            self.calls.append(("read", thread, tuple(ids)))
            if thread == AHEAD:
                self.answered.release()

    def write_back(self, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        if len(self.waits) < self.ahead_reads:
            self.waits.append(self.answered.acquire(timeout=30))
        self.calls.append(("write", threading.current_thread().name, tuple(u.ref.id for u in updates)))
        results: list[WriteResult] = self.inner.write_back(updates)
        return results

    def of(self, kind: str, thread: str | None = None) -> list[tuple[str, ...]]:
        return [ids for k, t, ids in self.calls if k == kind and (thread is None or t == thread)]


def synced(pipeline: Pipeline, instance: Instance) -> SyncReport:
    report = pipeline.sync(instance)
    assert report.status == "succeeded" and report.sent > 0, report.message
    pipeline.wait_for_results(report)
    return report


def written(store: Store, instance: str) -> Counter[tuple[str, str]]:
    """(record, field) → how many writes the journal holds."""
    journal = schema.write_journal
    query = select(journal.c.record_id, journal.c.field).where(
        journal.c.instance == instance, journal.c.outcome == "written"
    )
    with store.database.engine.connect() as db:
        return Counter((row.record_id, row.field) for row in db.execute(query))


def test_the_next_pass_is_read_while_this_one_writes_each_record_once_and_none_this_pass_holds(
    pipeline: Pipeline, salesforce_sandbox: Served
) -> None:
    instance = salesforce_instance(salesforce_sandbox)
    report = synced(pipeline, instance)
    per_pass = report.sent // 3 + 1  # one result per delivery: three passes
    watched = Watched(instance.adapter, ahead_reads=2)
    instance.adapter = watched  # type: ignore[assignment]
    salesforce_sandbox.control.clear_stats()

    applied = apply_passes({instance.name: instance}, pipeline.store, contacts=per_pass)

    assert (applied.passes, applied.failures, applied.results) == (3, [], report.sent)
    assert watched.waits == [True, True], "each next pass was read before this one's writes were sent"
    first, *ahead = watched.of("read")
    assert watched.of("read", "MainThread") == [first] and watched.of("read", AHEAD) == ahead
    reads = [set(ids) for ids in (first, *ahead)]
    sent = {c.record_id for job in report.jobs for c in pipeline.store.jobs.contacts(job)}
    assert len(reads) == 3 and set().union(*reads) == sent and sum(map(len, reads)) == len(sent), (
        "every record read once, by the pass that holds it"
    )
    assert salesforce_sandbox.control.count(method="POST", route=RETRIEVE) == 3
    kinds = [kind for kind, _, _ in watched.calls]
    assert kinds[:3] == ["read", "read", "write"], "pass 2 was read before pass 1 wrote"
    assert applied.records_written > 0 and not pipeline.store.inbox.new(10, instance=instance.name)
    assert set(written(pipeline.store, instance.name).values()) == {1}


def test_a_record_whose_results_come_in_two_passes_is_judged_against_what_the_first_pass_wrote(
    pipeline: Pipeline, hubspot_sandbox: Served, lonescale_sandbox: Served
) -> None:
    """Its old job expired and was sent again; the new job's result is written in one pass, the old job's
    late result comes in the next. fill_empty must find the first pass's values, not the empty fields a read
    made before that write would have seen."""
    hubspot_sandbox.control.reset(contacts=0)
    person = {"firstname": "Ada", "lastname": "Lovelace", "company": "Engines", "website": "engines.io"}
    match = {"firstname": "Ada", "lastname": "Lovelace", "domain": "engines.io"}
    (record_id,) = hubspot_sandbox.control.seed([person])
    old = {
        "email": "ada@engines.io",
        "emailStatus": "valid",
        "phone": "+442071111111",
        "jobTitle": "Countess",
    }
    new = {
        "email": "ada.l@engines.io",
        "emailStatus": "valid",
        "phone": "+442072222222",
        "jobTitle": "Analyst",
    }
    lonescale_sandbox.control.seed([{"match": match, "fields": old}])
    instance = hubspot_instance(hubspot_sandbox)
    old_jobs = expire(pipeline, lonescale_sandbox, instance)  # LoneScale ran them; their results never came
    lonescale_sandbox.control.seed([{"match": match, "fields": new}])  # found otherwise the second time
    [run] = resend(pipeline, instance).runs
    pipeline.wait_for_results(run)
    for job_id in old_jobs:  # the old results arrive at last, after the new ones
        job = pipeline.store.jobs.get(job_id)
        assert job is not None and job.lonescale_id is not None
        lonescale_sandbox.control.admin_post("deliver", {"job_id": job.lonescale_id})
    pipeline.wait_for_results(SyncReport(instance.name, 0, jobs=old_jobs))

    applied = apply_passes({instance.name: instance}, pipeline.store, contacts=1)  # a delivery a pass

    assert (applied.passes, applied.failures) == (2, [])
    now = everything(instance, ["email", "phone", "jobtitle"])[record_id]
    assert (now["email"], now["phone"], now["jobtitle"]) == ("ada.l@engines.io", "+442072222222", "Analyst")
    assert applied.kept_by_policy["fill_empty: the field already has a value"] >= 3
    assert applied.records_written == 1 and set(written(pipeline.store, instance.name).values()) == {1}
    journal = {e.job_id for e in pipeline.store.journal.for_record(instance.name, record_id)}
    assert journal == set(run.jobs), "every value written is the first pass's, the new job's"


def test_a_result_delivered_twice_across_two_passes_is_a_duplicate_in_the_second(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    """Each job's results come twice in a row, the second time in other bytes (a retry re-encoded by a proxy):
    a pass each, the second collected while the first settled the same contacts. They are checked again."""
    salesforce_sandbox.control.reset(contacts=0)
    people = [{"sobject": "Contact", "FirstName": f"Twice{n}", "LastName": "Sent",
               "Email": f"twice{n}@initech-example.com"} for n in range(4)]  # fmt: skip
    salesforce_sandbox.control.seed(people)
    instance = salesforce_instance(salesforce_sandbox)
    lonescale_sandbox.control.configure(webhook_missing_share=1.0)  # each job delivered by the test, in turn
    report = pipeline.sync(instance)
    assert report.status == "succeeded" and len(report.jobs) == report.sent == 4, report.message
    for job_id in report.jobs:
        job = pipeline.store.jobs.get(job_id)
        assert job is not None and job.lonescale_id is not None
        lonescale_sandbox.control.admin_post("deliver", {"job_id": job.lonescale_id})
        pipeline.wait_for_results(SyncReport(instance.name, 0, jobs=[job_id]))
        [delivery] = pipeline.store.inbox.of_job(job_id)
        again = json.dumps(json.loads(delivery["body"]), indent=2).encode()
        assert pipeline.store.inbox.keep(job_id, again), "other bytes: kept as a delivery of its own"

    applied = apply_passes({instance.name: instance}, pipeline.store, contacts=1)  # a delivery a pass

    assert (applied.passes, applied.failures, applied.results) == (8, [], 8)
    assert applied.duplicates == 4, "each copy found its contact applied by the pass just before"
    assert applied.records_written == 4 and set(written(pipeline.store, instance.name).values()) == {1}
    assert {c.status for job in report.jobs for c in pipeline.store.jobs.contacts(job)} == {"applied"}


def test_a_lease_lost_while_reading_ahead_stops_the_run_and_nothing_is_written_after(
    pipeline: Pipeline, salesforce_sandbox: Served
) -> None:
    instance = salesforce_instance(salesforce_sandbox)
    report = synced(pipeline, instance)
    taken = []

    def take_over() -> None:  # another process, to which our lease looks expired, takes it
        taken.append(Leases(pipeline.store.database, clock=lambda: FAR_FUTURE).acquire(
            instance_lease(instance.name), "apply"))  # fmt: skip

    watched = Watched(instance.adapter, ahead_reads=1, on_ahead=take_over)
    instance.adapter = watched  # type: ignore[assignment]
    salesforce_sandbox.control.clear_stats()
    # The takeover comes from another clock, not after a real freeze: with a lease of 20 ms, each check of ours
    # renews (a check trusts a tenth of the TTL since our last write), and the next one finds it. A real freeze
    # against the second a check trusts: tests/store/test_leases.py.
    url = pipeline.store.database.engine.url.render_as_string(hide_password=False)
    holder = Store(url, lease_ttl=timedelta(milliseconds=20))
    try:
        applied = apply_passes({instance.name: instance}, holder, contacts=report.sent // 3 + 1)
    finally:
        holder.close()

    assert taken and applied.passes == 1 and len(applied.failures) == 1
    assert "another process took it over" in applied.failures[0]
    assert salesforce_sandbox.control.count(method="POST", route=RETRIEVE) == 1, "no read after the takeover"
    assert salesforce_sandbox.control.count(method="PATCH", route=SF_WRITE) == 0, "and no write"
    assert not written(pipeline.store, instance.name)
    assert len(pipeline.store.inbox.new(10_000, instance=instance.name)) == report.sent, "nothing marked"
    [run] = [r for r in pipeline.store.runs.recent(instance.name) if r["kind"] == "apply"]
    assert run["status"] == "failed"

    taken[0].release()
    again = apply_passes({instance.name: instance}, pipeline.store)

    assert not again.failures and again.results == report.sent and again.records_written > 0
    assert not pipeline.store.inbox.new(10, instance=instance.name)
    assert set(written(pipeline.store, instance.name).values()) == {1}


def test_an_outage_while_reading_ahead_fails_the_next_pass_alone_and_its_results_wait(
    pipeline: Pipeline, hubspot_sandbox: Served
) -> None:
    adapter = HubSpotAdapter("acme-hs", credentials.HUBSPOT_TOKEN, base_url=hubspot_sandbox.url,
                             retry_policy=RetryPolicy(attempts=2, base_delay=0.01))  # fmt: skip
    instance = Instance(settings("acme-hs", "hubspot", "x.toml"), load_mapping(MAPPINGS / "hubspot-contacts.toml"),
                        adapter)  # fmt: skip
    create_missing_status_fields(instance)
    report = synced(pipeline, instance)
    per_pass = report.sent // 2 + 1

    def outage() -> None:  # a proxy answering every read with its own page from now on
        hubspot_sandbox.control.configure(html_answers={f"POST {HS_READ}": 100})

    instance.adapter = Watched(adapter, on_ahead=outage)  # type: ignore[assignment]

    applied = apply_passes({instance.name: instance}, pipeline.store, contacts=per_pass)

    assert applied.passes == 2 and len(applied.failures) == 1
    assert "batch read answered with a body that is not JSON" in applied.failures[0]
    first, second = sorted(
        (r for r in pipeline.store.runs.recent(instance.name) if r["kind"] == "apply"), key=lambda r: r["id"]
    )
    assert (first["status"], second["status"]) == ("succeeded", "failed")
    assert applied.records_written > 0, "the first pass wrote"
    waiting = pipeline.store.inbox.new(10_000, instance=instance.name)
    assert len(waiting) == report.sent - per_pass, "the second pass's deliveries wait"
    hubspot_sandbox.control.configure(html_answers={})  # the proxy is fixed

    rest = apply_passes({instance.name: instance}, pipeline.store)

    assert not rest.failures and rest.results == len(waiting) and rest.records_written > 0
    assert not pipeline.store.inbox.new(10, instance=instance.name)
    assert set(written(pipeline.store, instance.name).values()) == {1}
