"""The connector wired against the sandbox as the daemon wires it, and one measured cycle end to end."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from connector.adapters.base import Window
from connector.adapters.hubspot import SEARCHES_PER_SECOND, HubSpotAdapter, to_hubspot_value
from connector.adapters.salesforce import (
    SalesforceAdapter,
    SalesforceCredentials,
    flatten,
    to_salesforce_value,
)
from connector.apply import ApplyReport, apply_passes
from connector.checks import create_missing_status_fields
from connector.config import InstanceSettings, LoneScaleSettings, SalesforceSettings
from connector.lonescale import LoneScaleClient
from connector.mapping import load_mapping
from connector.models import (
    CrmRecord,
    EnrichmentType,
    FieldInfo,
    FieldUpdate,
    FollowUp,
    WriteOutcome,
    WriteResult,
)
from connector.redact import Secret
from connector.sandbox import credentials
from connector.serving import ThreadedServer
from connector.starter import MAPPINGS
from connector.store import Store, schema
from connector.sync import SyncReport, pull_and_trigger
from connector.webhook import create_app
from connector.wiring import Instance

TYPES = [EnrichmentType.EMAIL, EnrichmentType.PHONE, EnrichmentType.PROFILE]
CRMS = ("salesforce", "hubspot")
UNPACED = 1_000_000  # client-side pacing lifted for runs against a relaxed sandbox
SF_DATA = "/services/data/v62.0"


def lonescale_settings(base_url: str, batch_size: int = 100) -> LoneScaleSettings:
    # Full jobs from the first run: the echo the sandbox is set to give (bench/sandbox.py) is assumed, as an
    # account LoneScale confirmed it for would; without it each job would hold one contact until it is seen.
    return LoneScaleSettings(
        base_url=base_url, enrichment_type=TYPES, batch_size=batch_size, assume_custom_echoed=True
    )


def instance_settings(name: str, crm: str, salesforce_url: str | None = None) -> InstanceSettings:
    extra: dict[str, Any] = {}
    if salesforce_url:
        extra["salesforce"] = SalesforceSettings(instance_url=salesforce_url)
    return InstanceSettings.model_validate(
        {
            "name": name,
            "crm": crm,
            "mapping": "x.toml",
            "settle": "0s",
            "lookback": "5m",
            "budget": {"max_contacts_per_run": None},  # the whole data set in one run
            **extra,
        }
    )


def build_instance(
    crm: str, endpoints: Mapping[str, str], *, paced: bool = False, naive: bool = False
) -> Instance:
    """An instance as `wiring.build_instance` makes it, pointed at the sandbox; `paced` keeps HubSpot's
    client-side limits (100 per 10 s, 5 searches per s), otherwise lifted for an unlimited sandbox."""
    adapter: Any
    if crm == "hubspot":
        per_10s, searches = (
            (100, SEARCHES_PER_SECOND) if paced else (UNPACED, UNPACED)
        )  # the defaults when paced
        adapter = HubSpotAdapter(
            "bench-hs",
            credentials.HUBSPOT_TOKEN,
            base_url=endpoints["hubspot"],
            requests_per_10s=per_10s,
            searches_per_second=searches,
        )
        instance = Instance(
            instance_settings("bench-hs", "hubspot"),
            load_mapping(MAPPINGS / "hubspot-contacts.toml"),
            adapter,
        )
        create_missing_status_fields(instance)  # setup, before the counted cycle
    else:
        url = endpoints["salesforce"]
        creds = SalesforceCredentials(credentials.SALESFORCE_CLIENT_ID, credentials.SALESFORCE_CLIENT_SECRET)
        adapter = SalesforceAdapter("bench-sf", creds, instance_url=url)
        instance = Instance(
            instance_settings("bench-sf", "salesforce", url),
            load_mapping(MAPPINGS / "salesforce-contact.toml"),
            adapter,
        )
    if naive:
        instance.adapter = NaiveAdapter(crm, instance.adapter, endpoints)
    return instance


class NaiveAdapter:
    """The baseline: the real pull, then one CRM call per record to read it and one to update it
    (HubSpot `GET/PATCH /crm/v3/objects/contacts/{contactId}`, Salesforce `GET/PATCH sobjects/Contact/{id}`)."""

    def __init__(self, crm: str, inner: Any, endpoints: Mapping[str, str]):
        self.crm, self.inner, self.name = crm, inner, inner.name
        self.server_clock = inner.server_clock  # the pull is the real one, and so is its clock
        self.unique_field: str | None = (
            None  # the baseline keeps no index of emails: each PATCH meets the 409
        )
        if crm == "hubspot":
            headers = {"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"}
            self._http = httpx.Client(base_url=endpoints["hubspot"], headers=headers, timeout=60.0)
        else:
            token = httpx.post(
                f"{endpoints['salesforce']}/services/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(credentials.SALESFORCE_CLIENT_ID, credentials.SALESFORCE_CLIENT_SECRET),
                timeout=60.0,
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            self._http = httpx.Client(base_url=endpoints["salesforce"], headers=headers, timeout=60.0)

    def check(self) -> None:
        self.inner.check()

    def describe(self, fields: Sequence[str]) -> dict[str, FieldInfo]:
        described: dict[str, FieldInfo] = self.inner.describe(fields)
        return described

    def pull_changed(self, window: Window, fields: Sequence[str]) -> Iterator[CrmRecord]:
        records: Iterator[CrmRecord] = self.inner.pull_changed(window, fields)
        return records

    def read_current(self, ids: Sequence[str], fields: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        current: dict[str, Mapping[str, Any]] = {}
        for record_id in ids:
            if self.crm == "hubspot":
                answer = self._http.get(
                    f"/crm/v3/objects/contacts/{record_id}", params={"properties": ",".join(fields)}
                )
                if answer.status_code == 200:
                    current[record_id] = dict(answer.json()["properties"])
            else:
                answer = self._http.get(
                    f"{SF_DATA}/sobjects/Contact/{record_id}", params={"fields": ",".join(["Id", *fields])}
                )
                if answer.status_code == 200:
                    current[record_id] = flatten(answer.json())
        return current

    def write_back(self, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        results = []
        for update in updates:
            if self.crm == "hubspot":
                body = {"properties": {k: to_hubspot_value(v) for k, v in update.values.items()}}
                answer = self._http.patch(f"/crm/v3/objects/contacts/{update.ref.id}", json=body)
            else:
                values = {k: to_salesforce_value(v) for k, v in update.values.items()}
                answer = self._http.patch(f"{SF_DATA}/sobjects/Contact/{update.ref.id}", json=values)
            ok = answer.status_code in (200, 204)
            outcome = WriteOutcome.WRITTEN if ok else WriteOutcome.REJECTED
            results.append(WriteResult(update.ref, outcome, None if ok else answer.text[:200]))
        return results

    def create_follow_ups(self, follow_ups: Sequence[FollowUp]) -> list[WriteResult]:
        created: list[WriteResult] = self.inner.create_follow_ups(follow_ups)
        return created

    def close(self) -> None:
        self._http.close()
        self.inner.close()


@dataclass
class Connector:
    """Store, webhook server and LoneScale client in this process: the connector whose CPU is measured."""

    store: Store
    webhook: ThreadedServer
    lonescale: LoneScaleClient

    @classmethod
    def open(cls, directory: Path, lonescale_url: str) -> Connector:
        store = Store(f"sqlite:///{directory / 'bench.db'}")
        webhook = ThreadedServer(create_app(store), name="bench-webhook")
        webhook.start()
        lonescale = LoneScaleClient(lonescale_url, Secret(credentials.LONESCALE_API_KEY))
        return cls(store, webhook, lonescale)

    def close(self) -> None:
        self.lonescale.close()
        self.webhook.stop()
        self.store.close()

    def inbox_count(self) -> int:
        with self.store.database.engine.connect() as db:
            return int(db.execute(select(func.count()).select_from(schema.inbox)).scalar_one())


@dataclass
class Cycle:
    """What one end-to-end cycle did and cost, in this process."""

    crm: str
    contacts: int
    sync: SyncReport
    applied: ApplyReport = field(default_factory=ApplyReport)
    seconds: dict[str, float] = field(default_factory=dict)  # phase → wall seconds
    cpu_seconds: float = 0.0
    apply_passes: int = 0

    @property
    def elapsed(self) -> float:
        return sum(self.seconds.values())


def wait_for_deliveries(connector: Connector, expected: int, timeout: float) -> int:
    """Until the inbox holds `expected` deliveries (one per contact sent, or one per job), or raise."""
    deadline, count = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        count = connector.inbox_count()
        if count >= expected:
            return count
        time.sleep(0.05)
    raise TimeoutError(f"only {count} of {expected} webhook deliveries arrived within {timeout:.0f} s")


def drain(instances: Mapping[str, Instance], store: Store, max_passes: int) -> tuple[ApplyReport, int]:
    """`apply_passes` as the daemon's unit of work calls it: pass after pass, each next one read while this one
    writes, until the inbox is empty."""
    report = apply_passes(instances, store, max_passes=max_passes)
    return report, report.passes


def run_cycle(
    connector: Connector,
    instance: Instance,
    *,
    contacts: int,
    batch_size: int = 100,
    lonescale_url: str,
    between: Callable[[], None] | None = None,
    timeout: float = 1800.0,
    per_job: bool = False,
) -> Cycle:
    """Pull → map → store → trigger, webhook ingest (in this process), then apply → write back."""
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    report = pull_and_trigger(
        instance, connector.store, connector.lonescale, lonescale_settings(lonescale_url, batch_size),
        connector.webhook.base_url,
    )  # fmt: skip
    if report.status != "succeeded":
        raise RuntimeError(f"sync {report.status}: {report.message}")
    t1 = time.perf_counter()
    # A fresh store per cycle: the inbox holds this cycle's deliveries only, some arrived during the sync.
    wait_for_deliveries(connector, len(report.jobs) if per_job else report.sent, timeout)
    t2 = time.perf_counter()
    if between is not None:
        between()
    t3 = time.perf_counter()
    applied, passes = drain({instance.name: instance}, connector.store, max_passes=contacts // 100 + 20)
    t4 = time.perf_counter()
    cycle = Cycle(instance_crm(instance), contacts, report, applied, apply_passes=passes)
    cycle.seconds = {"pull+trigger": t1 - t0, "webhook wait": t2 - t1, "apply+write": t4 - t3}
    cycle.cpu_seconds = time.process_time() - cpu0
    return cycle


def instance_crm(instance: Instance) -> str:
    return instance.settings.crm
