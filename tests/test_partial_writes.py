"""End to end (pull → LoneScale → webhook → apply): a value the CRM cannot take costs that value, not the record,
and a write the CRM does not confirm is not journaled as written. Both CRMs through their real SDKs."""

from __future__ import annotations

from connector.adapters.hubspot import HubSpotAdapter
from connector.adapters.hubspot_writes import GONE
from connector.checks import create_missing_status_fields
from connector.mapping import load_mapping
from connector.retry import RetryPolicy
from connector.review import retry_failed
from connector.sandbox import credentials
from connector.wiring import Instance
from tests.conftest import Served
from tests.support import MAPPINGS, Pipeline, cycle, hubspot_instance, salesforce_instance, settings

LONG_TITLE = "Senior Vice President, " + "Global Revenue Operations and Strategic Enablement " * 4
REFUSED = "STRING_TOO_LONG: Title: data value too large: 227 characters (max length=128); not sent"


def test_a_title_too_long_for_salesforce_is_refused_alone_and_retry_failed_writes_around_it_again(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    assert len(LONG_TITLE) == 227
    email = "ada.longtitle@initech-example.com"
    [record_id] = salesforce_sandbox.control.seed(
        [{"sobject": "Contact", "FirstName": "Ada", "LastName": "Longtitle", "Email": email}]
    )
    lonescale_sandbox.control.seed(
        [{"match": {"email": email}, "fields": {"jobTitle": LONG_TITLE, "phone": "+14155550199"}}]
    )
    instance = salesforce_instance(salesforce_sandbox)

    _, applied = cycle(pipeline, instance)

    assert applied.records_rejected == 0, "the record is written, all but its title"
    assert (record_id, f"Title not written: {REFUSED}") in applied.refusals and applied.fields_refused >= 1
    now = instance.adapter.read_current([record_id], ["Title", "Phone", "Enrichment_Status__c"])[record_id]
    assert (now["Title"], now["Phone"], now["Enrichment_Status__c"]) == (None, "+14155550199", "Enriched")
    journal = {
        e.field: (e.outcome, e.reason) for e in pipeline.store.journal.for_record("acme-sf", record_id)
    }
    assert journal["Title"] == ("rejected", REFUSED)
    assert journal["Phone"] == journal["Enrichment_Status__c"] == ("written", None)

    again = retry_failed({instance.name: instance}, pipeline.store)

    assert again.records_rejected == 0 and again.records_written == 1 and not again.failures
    assert again.refusals == [(record_id, f"Title not written: {REFUSED}")], "still refused, for its reason"
    assert (again.fields_refused, again.records_rejected) == (1, 0)
    assert instance.adapter.read_current([record_id], ["Phone"])[record_id]["Phone"] == "+14155550199"


def test_a_hubspot_contact_deleted_while_its_update_is_on_the_way_is_rejected_and_never_journaled_written(
    pipeline: Pipeline, hubspot_sandbox: Served
) -> None:
    instance = hubspot_instance(hubspot_sandbox)
    report = pipeline.sync(instance)
    pipeline.wait_for_results(report)
    sent = [c.record_id for job in report.jobs for c in pipeline.store.jobs.contacts(job)]
    deleted = sent[0]
    hubspot_sandbox.control.configure(archive_before_update=[deleted])

    applied = pipeline.apply(instance)

    assert (deleted, GONE) in applied.rejections
    assert applied.records_rejected == 1 and applied.records_written == len(sent) - 1
    journal = pipeline.store.journal.for_record("acme-hs", deleted)
    assert journal and all((e.outcome, e.reason) == ("rejected", GONE) for e in journal)
    assert hubspot_sandbox.control.configure()["archive_before_update"] == [], "the delete did happen"


def test_an_html_page_in_place_of_hubspot_json_fails_the_pass_with_the_reason_and_the_next_pass_applies(
    pipeline: Pipeline, hubspot_sandbox: Served
) -> None:
    adapter = HubSpotAdapter(
        "acme-hs",
        credentials.HUBSPOT_TOKEN,
        base_url=hubspot_sandbox.url,
        retry_policy=RetryPolicy(attempts=2, base_delay=0.01),
    )
    mapping = load_mapping(MAPPINGS / "hubspot-contacts.toml")
    instance = Instance(settings("acme-hs", "hubspot", "x.toml"), mapping, adapter)
    create_missing_status_fields(instance)
    report = pipeline.sync(instance)
    pipeline.wait_for_results(report)
    hubspot_sandbox.control.configure(html_answers={"POST /crm/v3/objects/contacts/batch/read": 100})

    failed = pipeline.apply(instance)

    assert failed.records_written == 0 and len(failed.failures) == 1
    assert "batch read answered with a body that is not JSON" in failed.failures[0]
    [run] = pipeline.store.runs.recent("acme-hs", limit=1)
    assert run["status"] == "failed" and "not JSON" in run["error"]
    hubspot_sandbox.control.configure(html_answers={})  # the proxy is fixed

    applied = pipeline.apply(instance)

    assert applied.records_written > 0 and not applied.failures, "the results waited in the inbox"
