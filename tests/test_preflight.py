"""A first run that cannot burn credits: before anything is sent, every field the results go to must take them."""

from __future__ import annotations

from connector.adapters.hubspot import HubSpotAdapter
from connector.mapping import load_mapping
from connector.sandbox import credentials
from connector.wiring import Instance
from tests.conftest import Served
from tests.support import MAPPINGS, Pipeline, salesforce_instance, settings


def test_a_portal_without_the_connectors_status_properties_stops_before_any_lonescale_call(
    pipeline: Pipeline, hubspot_sandbox: Served, lonescale_sandbox: Served
) -> None:
    """As a new user would try it: a fresh portal, `check --create-missing` not run yet."""
    adapter = HubSpotAdapter("acme-hs", credentials.HUBSPOT_TOKEN, base_url=hubspot_sandbox.url)
    instance = Instance(
        settings("acme-hs", "hubspot", "x.toml"), load_mapping(MAPPINGS / "hubspot-contacts.toml"), adapter
    )

    report = pipeline.sync(instance)

    assert (report.status, report.sent, report.pulled) == ("stopped", 0, 0)
    assert report.message and "property 'lonescale_enrichment_status' does not exist" in report.message
    assert "lonescale-sync check --create-missing" in report.message
    assert lonescale_sandbox.control.count() == 0, "not even the balance was asked for"
    assert pipeline.store.cursors.get(instance.name) is None


def test_a_salesforce_target_field_missing_from_the_org_stops_the_run_naming_the_setup_step(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    mapping = load_mapping(MAPPINGS / "salesforce-contact.toml")
    status = mapping.status.model_copy(update={"status": "LoneScale_Status__c"})  # never created in Setup
    instance = salesforce_instance(salesforce_sandbox, mapping.model_copy(update={"status": status}))

    report = pipeline.sync(instance)

    assert (report.status, report.sent) == ("stopped", 0)
    assert report.message and "field 'LoneScale_Status__c' does not exist on Contact" in report.message
    assert "Object Manager → Contact → Fields & Relationships" in report.message
    assert lonescale_sandbox.control.count(route="/trigger/enrich") == 0
    dry = pipeline.sync(instance, dry_run=True)
    assert dry.status == "stopped" and dry.message == report.message, "a dry run says so too"
