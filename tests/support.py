"""Shared end-to-end helpers: a store, a webhook server and a LoneScale client against the sandbox."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector.adapters.hubspot import HubSpotAdapter
from connector.adapters.salesforce import SalesforceAdapter, SalesforceCredentials
from connector.apply import ApplyReport, apply_results
from connector.checks import create_missing_status_fields
from connector.config import InstanceSettings, LoneScaleSettings, SalesforceSettings
from connector.lonescale import LoneScaleClient
from connector.mapping import FieldMapping, load_mapping
from connector.models import EnrichmentType
from connector.redact import Secret
from connector.sandbox import credentials
from connector.sandbox.salesforce.org import CONNECTOR_STATUS_FIELDS
from connector.serving import ThreadedServer
from connector.starter import MAPPINGS
from connector.store import Store
from connector.sync import SyncReport, pull_and_trigger
from connector.webhook import create_app
from connector.wiring import Instance
from tests.adapters.contract import EVERYTHING
from tests.conftest import Served

HUBSPOT_CHANGED = "lastmodifieddate"
# The environment a config written for the sandbox names its secrets in.
SANDBOX_ENV = {
    "LS_KEY": credentials.LONESCALE_API_KEY,
    "SF_ID": credentials.SALESFORCE_CLIENT_ID,
    "SF_SECRET": credentials.SALESFORCE_CLIENT_SECRET,
    "HS_TOKEN": credentials.HUBSPOT_TOKEN,
}


def salesforce_token(served: Served) -> str:
    """A token as any other Salesforce API client gets one: for a person's edits and for checks."""
    answer = httpx.post(
        f"{served.url}/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(credentials.SALESFORCE_CLIENT_ID, credentials.SALESFORCE_CLIENT_SECRET),
    )
    token: str = answer.json()["access_token"]
    return token


LONESCALE = LoneScaleSettings(
    enrichment_type=[EnrichmentType.EMAIL, EnrichmentType.PHONE, EnrichmentType.PROFILE]
)


@dataclass
class Pipeline:
    store: Store
    lonescale: LoneScaleClient
    webhook: ThreadedServer
    lonescale_sandbox: Served

    def sync(self, instance: Instance, settings: LoneScaleSettings = LONESCALE, **options: Any) -> SyncReport:
        return pull_and_trigger(
            instance, self.store, self.lonescale, settings, self.webhook.base_url, **options
        )

    def wait_for_results(self, report: SyncReport, timeout: float = 30.0) -> None:
        """Until each job has a stored delivery and LoneScale has nothing left to deliver."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            every_job = all(self.store.inbox.of_job(job) for job in report.jobs)
            if every_job and self.lonescale_sandbox.control.admin("deliveries")["pending_tasks"] == 0:
                return
            time.sleep(0.05)
        raise AssertionError("LoneScale's deliveries did not all arrive")

    def apply(self, *instances: Instance) -> ApplyReport:
        return apply_results({i.name: i for i in instances}, self.store)


@pytest.fixture
def pipeline(tmp_path: Path, lonescale_sandbox: Served) -> Iterator[Pipeline]:
    lonescale_sandbox.control.configure(webhook_delay_seconds=0.0, delivery_backoff_seconds=0.2)
    store = Store(f"sqlite:///{tmp_path / 'sync.db'}")
    webhook = ThreadedServer(create_app(store), name="webhook")
    webhook.start()
    client = LoneScaleClient(lonescale_sandbox.url, Secret(credentials.LONESCALE_API_KEY))
    yield Pipeline(store, client, webhook, lonescale_sandbox)
    client.close()
    webhook.stop()
    store.close()


def settings(name: str, crm: str, mapping: str, **extra: Any) -> InstanceSettings:
    return InstanceSettings.model_validate(
        {"name": name, "crm": crm, "mapping": mapping, "settle": "0s", "lookback": "5m", **extra}
    )


def create_status_fields(served: Served, sobjects: tuple[str, ...] = ("Contact", "Lead")) -> None:
    """The connector's status fields, created as an admin creates them in Setup before the first sync (the
    emulator's org, like a real one, starts without them; its admin route is that Setup step)."""
    for sobject in sobjects:
        spec = served.emulator.store.schema.sobject(sobject)
        missing = [field for field in CONNECTOR_STATUS_FIELDS if spec.field(field["name"]) is None]
        if missing:
            served.control.create_fields(sobject, missing)


def salesforce_instance(served: Served, mapping: FieldMapping | None = None, **extra: Any) -> Instance:
    create_status_fields(served)
    creds = SalesforceCredentials(credentials.SALESFORCE_CLIENT_ID, credentials.SALESFORCE_CLIENT_SECRET)
    adapter = SalesforceAdapter("acme-sf", creds, instance_url=served.url)
    config = settings(
        "acme-sf", "salesforce", "x.toml", salesforce=SalesforceSettings(instance_url=served.url), **extra
    )
    return Instance(config, mapping or load_mapping(MAPPINGS / "salesforce-contact.toml"), adapter)


def hubspot_instance(served: Served, **extra: Any) -> Instance:
    adapter = HubSpotAdapter("acme-hs", credentials.HUBSPOT_TOKEN, base_url=served.url)
    instance = Instance(
        settings("acme-hs", "hubspot", "x.toml", **extra),
        load_mapping(MAPPINGS / "hubspot-contacts.toml"),
        adapter,
    )
    create_missing_status_fields(instance)
    return instance


@pytest.fixture(params=["salesforce", "hubspot"])
def instance(request: pytest.FixtureRequest) -> Instance:
    """The test's instance, once on each CRM (its emulator reset)."""
    if request.param == "salesforce":
        return salesforce_instance(request.getfixturevalue("salesforce_sandbox"))
    return hubspot_instance(request.getfixturevalue("hubspot_sandbox"))


def cycle(pipeline: Pipeline, instance: Instance) -> tuple[SyncReport, ApplyReport]:
    """One sync, its results delivered and applied; then, as a client that reads its writes back through
    search must, until HubSpot's search shows them."""
    report = pipeline.sync(instance)
    assert report.status == "succeeded", report.message
    pipeline.wait_for_results(report)
    applied = pipeline.apply(instance)
    wait_until_searchable(
        instance, [c.record_id for job in report.jobs for c in pipeline.store.jobs.contacts(job)]
    )
    return report, applied


def wait_until_searchable(instance: Instance, record_ids: Sequence[str], timeout: float = 30.0) -> None:
    """HubSpot's search lags writes (eventually consistent; the emulator's default lag too), reads by id do
    not: until a pull through search shows each record as a read by id does. Nothing to wait for elsewhere."""
    if instance.settings.crm != "hubspot" or not record_ids:
        return
    deadline = time.monotonic() + timeout
    while True:
        current = instance.adapter.read_current(list(record_ids), [HUBSPOT_CHANGED])
        found = {r.ref.id: r.get(HUBSPOT_CHANGED) for r in instance.adapter.pull_changed(EVERYTHING, [])}
        if all(found.get(i) == current[i].get(HUBSPOT_CHANGED) for i in record_ids if i in current):
            return
        if time.monotonic() > deadline:
            raise AssertionError("HubSpot's search never caught up with the writes")
        time.sleep(0.5)


def everything(instance: Instance, fields: list[str]) -> dict[str, dict[str, Any]]:
    """Every record's current values: found by a pull, read by id (HubSpot's search may lag our writes)."""
    ids = [r.ref.id for r in instance.adapter.pull_changed(EVERYTHING, [])]
    current = instance.adapter.read_current(ids, fields)
    return {i: {name: current[i].get(name) for name in fields} for i in ids if i in current}


def edit_as_a_person(served: Served, crm: str, record_id: str, values: dict[str, Any]) -> None:
    """A change made in the CRM by someone else, through its public REST API (not through the connector)."""
    if crm == "hubspot":
        response = httpx.patch(
            f"{served.url}/crm/v3/objects/contacts/{record_id}",
            json={"properties": values},
            headers={"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"},
        )
        assert response.status_code == 200, response.text
        return
    response = httpx.patch(
        f"{served.url}/services/data/v62.0/sobjects/Contact/{record_id}",
        json=values,
        headers={"Authorization": f"Bearer {salesforce_token(served)}"},
    )
    assert response.status_code == 204, response.text
