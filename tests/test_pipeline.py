"""The whole cycle against the sandbox, both CRMs, real SDKs: pull → map → enrich → webhook → write back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from connector.apply import apply_results
from connector.apply_unique import REASON
from connector.config import LoneScaleSettings
from connector.mapping import WritePolicy, load_mapping
from connector.models import EnrichmentType
from connector.review import replay
from connector.serving import ThreadedServer
from connector.store import Cursor, Store
from connector.webhook import create_app
from connector.window import EPOCH
from tests.conftest import Served
from tests.support import (
    LONESCALE,
    MAPPINGS,
    Pipeline,
    cycle,
    everything,
    hubspot_instance,
    salesforce_instance,
    salesforce_token,
)


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_a_cycle_fills_empty_fields_keeps_typed_ones_and_the_next_sync_sends_nothing(
    pipeline: Pipeline, salesforce_sandbox: Served, hubspot_sandbox: Served, crm: str
) -> None:
    instance = (
        salesforce_instance(salesforce_sandbox) if crm == "salesforce" else hubspot_instance(hubspot_sandbox)
    )
    email, status = (
        ("Email", "Enrichment_Status__c") if crm == "salesforce" else ("email", "lonescale_enrichment_status")
    )
    before = everything(instance, [email])

    report, applied = cycle(pipeline, instance)

    assert report.pulled == len(before) and report.sent > 0
    assert report.skipped, "records without a last name or anything to match on are skipped with a reason"
    assert report.sent + sum(report.skipped.values()) == report.pulled
    assert applied.records_written > 0 and applied.fields_written > applied.records_written
    assert applied.records_rejected == 0
    after = everything(instance, [email, status])
    typed = {i: v[email] for i, v in before.items() if v[email]}
    assert typed and all(after[i][email] == value for i, value in typed.items()), (
        "fill_empty keeps typed values"
    )
    filled = [i for i, v in before.items() if not v[email] and after[i][email]]
    assert filled, "empty emails were filled"
    assert sum(1 for v in after.values() if v[status]) == report.sent

    again = pipeline.sync(instance)
    assert again.status == "succeeded" and again.sent == 0, "our own write-back must not bring records back"
    assert again.pulled >= applied.records_written, "the write-back bumped their modified stamps"
    assert again.skipped["in cooldown"] + again.skipped["targets already filled"] >= applied.records_written


def test_a_record_the_crm_rejects_keeps_its_reason_and_the_rest_of_its_batch_is_written(
    pipeline: Pipeline, salesforce_sandbox: Served
) -> None:
    instance = salesforce_instance(salesforce_sandbox)
    report = pipeline.sync(instance)
    pipeline.wait_for_results(report)
    salesforce_sandbox.control.configure(lock_row_share=0.6)  # a busy org: rows locked by other jobs
    applied = pipeline.apply(instance)
    assert applied.records_rejected > 0 and applied.records_written > applied.records_rejected
    assert all("UNABLE_TO_LOCK_ROW" in reason for _, reason in applied.rejections)
    record_id, reason = applied.rejections[0]
    journal = pipeline.store.journal.for_record("acme-sf", record_id)
    assert journal and all(e.outcome == "rejected" and e.reason == reason for e in journal)


def test_overwrite_if_unchanged_replaces_our_own_last_value_and_never_a_persons(
    pipeline: Pipeline, salesforce_sandbox: Served
) -> None:
    base = load_mapping(MAPPINGS / "salesforce-contact.toml")
    rules = [
        r.model_copy(update={"policy": WritePolicy.OVERWRITE_IF_UNCHANGED}) if r.field == "Title" else r
        for r in base.write_back
    ]
    instance = salesforce_instance(salesforce_sandbox, base.model_copy(update={"write_back": rules}))
    before = everything(instance, ["Title"])
    report = pipeline.sync(instance)
    pipeline.wait_for_results(report)
    applied = pipeline.apply(instance)

    after = everything(instance, ["Title"])
    sent = {c.record_id: c for job in report.jobs for c in pipeline.store.jobs.contacts(job)}
    typed = [i for i in sent if before[i]["Title"]]
    assert typed and all(after[i]["Title"] == before[i]["Title"] for i in typed), (
        "a title nobody journaled is a person's, however long it sat unchanged since the pull"
    )
    assert applied.kept_by_policy["overwrite_if_unchanged: not the value we wrote"] >= 1
    ours, edited = [i for i in sent if not before[i]["Title"] and after[i]["Title"]][:2]
    token = salesforce_token(salesforce_sandbox)
    response = httpx.patch(
        f"{salesforce_sandbox.url}/services/data/v62.0/sobjects/Contact/{edited}",
        json={"Title": "Typed by a person"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 204

    # A newer result for both (LoneScale's documented per-contact payload), re-applied from the inbox.
    for record_id in (ours, edited):
        newer = {"custom": {"contact_id": record_id}, "firstName": "A", "jobTitle": "Chief Newer Officer"}
        pipeline.store.inbox.keep(sent[record_id].job_id, json.dumps(newer).encode())
    replay({instance.name: instance}, pipeline.store, job_id=sent[ours].job_id)
    replay({instance.name: instance}, pipeline.store, job_id=sent[edited].job_id)

    titles = instance.adapter.read_current([ours, edited], ["Title"])
    assert titles[ours]["Title"] == "Chief Newer Officer", "our own value is ours to replace"
    assert titles[edited]["Title"] == "Typed by a person", "an edit made after our write is a person's"


@pytest.mark.parametrize(
    ("delivery", "batched"),
    [
        ({"delivery": "per_job"}, False),
        ({"casing": "legacy"}, False),
        ({"delivery": "per_job", "casing": "legacy"}, False),
        ({"out_of_order": True, "duplicate_deliveries": 2}, False),
        # The kind reading, by name: results carry each contact's `custom`, so jobs may hold many contacts.
        ({"echo_custom": True, "delivery": "per_job", "out_of_order": True}, True),
    ],
    ids=["per job", "legacy snake_case", "all at once", "shuffled and duplicated", "echoed, in full jobs"],
)
def test_every_webhook_shape_and_delivery_mode_is_applied_once(
    pipeline: Pipeline,
    hubspot_sandbox: Served,
    lonescale_sandbox: Served,
    delivery: dict[str, Any],
    batched: bool,
) -> None:
    lonescale_sandbox.control.configure(**delivery)
    instance = hubspot_instance(hubspot_sandbox)
    settings = LONESCALE.model_copy(update={"assume_custom_echoed": batched})
    report = pipeline.sync(instance, settings)
    pipeline.wait_for_results(report)
    applied = pipeline.apply(instance)
    assert applied.records_written > 0
    assert applied.records_written + applied.records_rejected == report.sent and applied.uncorrelated == 0
    assert (len(report.jobs) < report.sent) is batched, "one contact per job until the echo is known"
    histories = [
        pipeline.store.journal.for_record("acme-hs", c.record_id)
        for j in report.jobs
        for c in pipeline.store.jobs.contacts(j)
    ]
    for history in histories:
        fields = [e.field for e in history]
        assert len(fields) == len(set(fields)), "each field is written once, however often it was delivered"


def test_a_restart_between_trigger_and_webhook_loses_nothing(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served, tmp_path: Path
) -> None:
    lonescale_sandbox.control.configure(
        webhook_delay_seconds=1.0, delivery_backoff_seconds=0.3, delivery_max_attempts=8
    )
    instance = salesforce_instance(salesforce_sandbox)
    report = pipeline.sync(instance)
    port = pipeline.webhook.port
    pipeline.webhook.stop()  # the daemon goes down before LoneScale calls back
    pipeline.store.close()

    store = Store(f"sqlite:///{tmp_path / 'sync.db'}")  # ...and comes back on the same port
    webhook = ThreadedServer(create_app(store), port=port, name="webhook-again")
    webhook.start()
    try:
        pipeline.store, pipeline.webhook = store, webhook
        pipeline.wait_for_results(report)
        applied = pipeline.apply(instance)
        assert applied.records_written + applied.records_rejected == report.sent
    finally:
        webhook.stop()


def test_a_batch_lonescale_refuses_is_split_until_every_contact_goes_through(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(
        max_contacts_per_request=30
    )  # an undocumented limit, met in production
    report = pipeline.sync(salesforce_instance(salesforce_sandbox))
    assert report.status == "succeeded"
    assert report.sent == report.pulled - sum(report.skipped.values()) > 100
    assert "refused by LoneScale" not in report.skipped
    accepted = lonescale_sandbox.control.count(route="/trigger/enrich", status=200)
    assert accepted == len(report.jobs) and all(
        len(pipeline.store.jobs.contacts(job)) <= 30 for job in report.jobs
    )


def test_a_contact_lonescale_refuses_alone_is_recorded_with_its_reason_and_not_resent(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(max_body_bytes=120)  # smaller than any one contact's request
    instance = salesforce_instance(salesforce_sandbox)
    report = pipeline.sync(instance)
    assert report.status == "succeeded" and report.sent == 0
    refused = report.skipped["refused by LoneScale"]
    assert refused == report.pulled - sum(
        n for reason, n in report.skipped.items() if reason != "refused by LoneScale"
    )
    pipeline.store.cursors.set(instance.name, Cursor(EPOCH))  # make the next sync read them all again
    again = pipeline.sync(instance)
    assert again.sent == 0 and again.skipped["in cooldown"] == refused, "refused input is not re-sent"


def test_duplicate_contacts_get_one_found_email_and_the_other_keeps_its_other_fields(
    pipeline: Pipeline, hubspot_sandbox: Served
) -> None:
    """Two HubSpot contacts for one person: LoneScale finds the same mailbox for both, and email is unique per
    portal. The first of the pass takes it; the other has the email refused with HubSpot's reason, the rest
    written."""
    hubspot_sandbox.control.reset(contacts=0)
    person = {
        "firstname": "Ada",
        "lastname": "Lovelace",
        "company": "Analytical Engines",
        "website": "engines.io",
    }
    twins = hubspot_sandbox.control.seed([person, person])
    instance = hubspot_instance(hubspot_sandbox)

    report, applied = cycle(pipeline, instance)

    assert report.sent == 2
    after = everything(instance, ["email", "phone", "lonescale_enrichment_status"])
    with_email = [record for record in twins if after[record]["email"]]
    assert len(with_email) == 1, "one of the two holds the email"
    (first,) = with_email
    (second,) = [record for record in twins if record != first]
    assert after[second]["lonescale_enrichment_status"], "the second contact's other fields are written"
    assert applied.records_written == 2 and [r for r, _ in applied.refusals] == [second]
    assert (applied.records_rejected, applied.fields_refused, applied.rejections) == (0, 1, []), (
        "a record whose email alone was refused is not a rejected record"
    )
    journal = {e.field: e for e in pipeline.store.journal.for_record("acme-hs", second)}
    # Both in one pass: the first keeps it, and the second's is refused before sending, as HubSpot would.
    assert (journal["email"].outcome, journal["email"].reason) == ("rejected", REASON.format(holder=first))
    assert all(e.outcome == "written" for name, e in journal.items() if name != "email")
    listed = pipeline.store.jobs.contacts_with_status("acme-hs", "rejected")
    assert [(c.record_id, "email not written" in (c.reason or "")) for c in listed] == [(second, True)]


def test_an_apply_pass_takes_contacts_not_deliveries_so_reads_come_in_full_batches(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    # One delivery per job: a pass that counted deliveries would take every job at once.
    lonescale_sandbox.control.configure(delivery="per_job", duplicate_share=0.0)
    instance = salesforce_instance(salesforce_sandbox)
    report = pipeline.sync(instance)
    pipeline.wait_for_results(report)
    assert report.sent > 100 and len(report.jobs) > 2

    first = apply_results({instance.name: instance}, pipeline.store, contacts=40)
    assert 40 <= first.results < report.sent, "the pass stopped once it held 40 contacts"
    assert first.deliveries < len(report.jobs)
    salesforce_sandbox.control.clear_stats()
    rest = apply_results({instance.name: instance}, pipeline.store)

    assert rest.results == report.sent - first.results, "the default pass holds every remaining contact"
    retrieve = "/services/data/{version}/composite/sobjects/{sobject}"
    assert salesforce_sandbox.control.count(method="POST", route=retrieve) == 1, (
        "in one read of current values"
    )


class _OverlappingPages:
    """A pull whose pages overlap at their boundary timestamp, as a restarted HubSpot search can repeat the
    records of the timestamp it restarts from: every 50th record comes twice."""

    def __init__(self, inner: Any):
        self.inner, self.name = inner, inner.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def pull_changed(self, window: Any, fields: Any) -> Any:
        for count, record in enumerate(self.inner.pull_changed(window, fields), start=1):
            yield record
            if count % 50 == 0:
                yield record


def test_records_a_pull_repeats_at_a_page_boundary_are_counted_and_sent_once(
    pipeline: Pipeline, hubspot_sandbox: Served, lonescale_sandbox: Served
) -> None:
    instance = hubspot_instance(hubspot_sandbox)
    distinct = len(everything(instance, ["email"]))
    instance.adapter = _OverlappingPages(instance.adapter)  # type: ignore[assignment]

    report = pipeline.sync(instance)

    assert report.pulled == distinct
    sent = [c.record_id for job_id in report.jobs for c in pipeline.store.jobs.contacts(job_id)]
    assert len(sent) == len(set(sent)) == report.sent


def test_a_placeholder_phone_that_selection_buys_for_is_the_phone_the_write_back_fills(
    pipeline: Pipeline, hubspot_sandbox: Served, lonescale_sandbox: Served
) -> None:
    """One meaning of blank: the mapping's `blank_values` make "n/a" empty when choosing what to buy, so the
    write-back must call it empty too, or the phone is paid for, never written, and bought again."""
    hubspot_sandbox.control.reset(contacts=0)
    person = {"firstname": "Grace", "lastname": "Hopper", "email": "grace@navy.example", "phone": "n/a"}
    (record_id,) = hubspot_sandbox.control.seed([person])
    lonescale_sandbox.control.seed(
        [{"match": {"email": "grace@navy.example"}, "fields": {"phone": "+14155550123"}}]
    )
    instance = hubspot_instance(hubspot_sandbox)

    report, applied = cycle(pipeline, instance)

    assert report.by_types and all("phone" in types for types in report.by_types), "the phone was bought"
    assert everything(instance, ["phone"])[record_id]["phone"] == "+14155550123"
    assert applied.kept_by_policy["fill_empty: the field already has a value"] == 0


def test_two_results_for_one_record_in_one_pass_are_merged_by_type_and_both_written(
    pipeline: Pipeline, hubspot_sandbox: Served, lonescale_sandbox: Served
) -> None:
    """Job A bought the email, job B the phone; both results wait in the inbox together (a CRM outage held the
    write-back). Neither may be dropped: each type's values come from the newest result that has them."""
    hubspot_sandbox.control.reset(contacts=0)
    person = {
        "firstname": "Ada",
        "lastname": "Lovelace",
        "company": "Analytical Engines",
        "website": "engines.io",
    }
    (record_id,) = hubspot_sandbox.control.seed([person])
    found = {"email": "ada@engines.io", "emailStatus": "valid", "phone": "+442071234567"}
    match = {"firstname": "Ada", "lastname": "Lovelace", "domain": "engines.io"}
    lonescale_sandbox.control.seed([{"match": match, "fields": found}])
    instance = hubspot_instance(hubspot_sandbox)
    email_job = pipeline.sync(instance, LoneScaleSettings(enrichment_type=[EnrichmentType.EMAIL]))
    phone_job = pipeline.sync(instance, LoneScaleSettings(enrichment_type=[EnrichmentType.PHONE]))
    assert (email_job.sent, phone_job.sent) == (1, 1), (
        "the record came back in the look-back, needing a phone"
    )
    pipeline.wait_for_results(email_job)
    pipeline.wait_for_results(phone_job)

    applied = pipeline.apply(instance)

    assert applied.records_written == 1
    written = everything(instance, ["email", "phone"])[record_id]
    assert (written["email"], written["phone"]) == ("ada@engines.io", "+442071234567")
    statuses = {c.job_id: c.status for job in (*email_job.jobs, *phone_job.jobs)
                for c in pipeline.store.jobs.contacts(job)}  # fmt: skip
    assert set(statuses.values()) == {"applied"}, statuses
    journal = {e.field: e.job_id for e in pipeline.store.journal.for_record("acme-hs", record_id)}
    assert (journal["email"], journal["phone"]) == (email_job.jobs[0], phone_job.jobs[0]), (
        "each field is journaled under the job that paid for it"
    )


def test_an_apply_pass_that_raises_anything_is_recorded_failed_with_its_error(
    pipeline: Pipeline, salesforce_sandbox: Served
) -> None:
    """Not only the connector's own errors: here the database lost a table under the pass (a half-applied
    migration, a restore gone wrong). The run must say failed and why, never succeeded; the results wait."""
    instance = salesforce_instance(salesforce_sandbox)
    report = pipeline.sync(instance)
    pipeline.wait_for_results(report)
    with pipeline.store.database.engine.begin() as db:
        db.execute(text("ALTER TABLE write_journal RENAME TO write_journal_moved"))

    applied = pipeline.apply(instance)

    (run,) = [r for r in pipeline.store.runs.recent(instance.name) if r["kind"] == "apply"]
    assert run["status"] == "failed" and "write_journal" in (run["error"] or "")
    assert applied.failures and "write_journal" in applied.failures[0]
    assert pipeline.store.inbox.backlog()[0] > 0, "the results are still in the inbox"


def test_full_jobs_without_the_echo_leave_results_that_match_no_contact_counted_and_shown(
    pipeline: Pipeline, hubspot_sandbox: Served
) -> None:
    """Why a job holds one contact until the echo is seen: assumed wrongly, a phone-only result carries
    nothing to tell its contact by, and is paid for and lost. Never a guess: it is counted and kept."""
    instance = hubspot_instance(hubspot_sandbox)
    report = pipeline.sync(instance, LONESCALE.model_copy(update={"assume_custom_echoed": True}))
    pipeline.wait_for_results(report)
    applied = pipeline.apply(instance)

    correlated = applied.records_written + applied.records_rejected
    assert 0 < correlated < report.sent and applied.uncorrelated > 0
    notes = [d["error"] for job in report.jobs for d in pipeline.store.inbox.of_job(job) if d["error"]]
    assert sum(int(note.split()[0]) for note in notes) == applied.uncorrelated, (
        "each is noted on its delivery"
    )
    assert pipeline.store.inbox.unmatched_results(instance.name) == applied.uncorrelated, (
        "and counted for status"
    )
