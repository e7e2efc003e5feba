"""The HubSpot adapter through hubspot-api-client against the HubSpot emulator."""

from __future__ import annotations

import pytest

from connector.adapters.hubspot import HubSpotAdapter
from connector.models import FieldUpdate, RecordRef, WriteOutcome
from connector.sandbox import credentials
from tests.adapters.contract import EVERYTHING, AdapterContract
from tests.conftest import SANDBOX_CONTACTS, Served


@pytest.fixture
def adapter(hubspot_sandbox: Served) -> HubSpotAdapter:
    return HubSpotAdapter("acme-hubspot", credentials.HUBSPOT_TOKEN, base_url=hubspot_sandbox.url)


@pytest.fixture
def refused_adapter(hubspot_sandbox: Served) -> HubSpotAdapter:
    return HubSpotAdapter("acme-hubspot", "pat-na1-wrong", base_url=hubspot_sandbox.url)


class TestHubSpotAdapter(AdapterContract):
    email_field = "email"
    title_field = "jobtitle"
    readonly_field = "lastmodifieddate"
    total_records = SANDBOX_CONTACTS
    unknown_id = "999999999"

    def ref(self, adapter: HubSpotAdapter, record_id: str) -> RecordRef:  # type: ignore[override]
        return RecordRef(adapter.name, "contacts", record_id)


def test_a_pull_past_the_search_cap_misses_nothing(hubspot_sandbox: Served, adapter: HubSpotAdapter) -> None:
    hubspot_sandbox.control.reset(contacts=10_450)
    hubspot_sandbox.control.configure(search_per_second=50)  # a faster portal: keeps the test quick
    ids = [r.ref.id for r in adapter.pull_changed(EVERYTHING, ["email"])]
    assert len(ids) == len(set(ids)) == 10_450
    assert hubspot_sandbox.control.count(route="/crm/v3/objects/contacts/search", status=400) == 0


def test_writes_are_paced_under_the_ten_second_limit_and_none_are_lost(
    hubspot_sandbox: Served, adapter: HubSpotAdapter
) -> None:
    hubspot_sandbox.control.configure(ten_secondly_limit=8)
    ids = [r.ref.id for r in adapter.pull_changed(EVERYTHING, ["jobtitle"])][:250]
    fast = HubSpotAdapter(
        "acme-hubspot", credentials.HUBSPOT_TOKEN, base_url=hubspot_sandbox.url, requests_per_10s=100
    )
    results = fast.write_back(
        [FieldUpdate(RecordRef("acme-hubspot", "contacts", i), {"jobtitle": "VP"}) for i in ids]
    )
    assert all(r.outcome is WriteOutcome.WRITTEN for r in results) and len(results) == 250
    assert hubspot_sandbox.control.count(route="/crm/v3/objects/contacts/batch/update", status=200) == 3
