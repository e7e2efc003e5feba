"""The pull side's window and its guarantees on every path: the CRM's clock, records read twice, one holder."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from connector.adapters.base import Window
from connector.adapters.salesforce import parse_datetime
from connector.config import InstanceSettings, LoneScaleSettings
from connector.mapping import Mapped, to_contact
from connector.selection import select_types
from connector.sync import SyncReport
from connector.wiring import Instance
from tests.conftest import Served
from tests.support import (
    LONESCALE,
    Pipeline,
    edit_as_a_person,
    hubspot_instance,
    salesforce_instance,
    wait_until_searchable,
)

WHOLE = Window(datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(days=1))
TITLE = {"salesforce": "Title", "hubspot": "jobtitle"}


def instance_for(crm: str, salesforce: Served, hubspot: Served, **settings: str) -> Instance:
    if crm == "salesforce":
        return salesforce_instance(salesforce, **settings)
    return hubspot_instance(hubspot, **settings)


def filled(instance: Instance) -> list[str]:
    """Records the first run skips because every target of every type is already filled."""
    records = instance.adapter.pull_changed(WHOLE, instance.mapping.read_fields())
    budget, now = instance.settings.budget, datetime.now(UTC)
    return [
        r.ref.id
        for r in records
        if isinstance(to_contact(instance.mapping, r), Mapped)
        and select_types(LONESCALE.enrichment_type, instance.mapping, r, {}, budget, now)[0] == []
    ]


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_a_daemon_clock_ahead_of_the_crms_never_moves_the_cursor_past_records_changed_later(
    pipeline: Pipeline, salesforce_sandbox: Served, hubspot_sandbox: Served, crm: str
) -> None:
    """Seven minutes ahead, with the default settle (1m) and look-back (5m): the cursor would sit six minutes
    in the CRM's future, and a record a person fixes right after the run would never be read."""
    instance = instance_for(crm, salesforce_sandbox, hubspot_sandbox, settle="1m", lookback="5m")
    ahead = lambda: datetime.now(UTC) + timedelta(minutes=7)  # noqa: E731
    first = pipeline.sync(instance, now=ahead)
    assert first.status == "succeeded"
    cursor = pipeline.store.cursors.get(instance.name)
    assert cursor is not None and cursor.changed_at <= datetime.now(UTC) - timedelta(minutes=1)
    (record_id, *_) = filled(instance)
    edit_as_a_person(salesforce_sandbox if crm == "salesforce" else hubspot_sandbox, crm, record_id,
                     {TITLE[crm]: ""})  # fmt: skip
    wait_until_searchable(instance, [record_id])  # the next run comes once HubSpot's search shows the edit

    second = pipeline.sync(instance, now=ahead)

    sent = {c.record_id for job in second.jobs for c in pipeline.store.jobs.contacts(job)}
    assert record_id in sent, "the title a person cleared is enriched on the next run"
    assert first.clock_skew is not None and 7 * 60 - 5 <= first.clock_skew <= 7 * 60 + 5, "measured"
    assert (
        pipeline.store.runs.recent(instance.name, limit=1)[0]["counts"]["clock_skew_seconds"]
        == second.clock_skew
    )


def sent_by(pipeline: Pipeline, report: SyncReport) -> set[str]:
    return {c.record_id for job in report.jobs for c in pipeline.store.jobs.contacts(job)}


@pytest.mark.parametrize(("lookback", "read"), [(None, True), ("0s", False)])
def test_a_record_a_long_transaction_commits_behind_the_cursor_is_read_by_the_next_run_through_its_look_back(
    pipeline: Pipeline, salesforce_sandbox: Served, lookback: str | None, read: bool
) -> None:
    """Salesforce stamps a record when its transaction writes it and shows it when the transaction commits:
    a run in between reads later records and moves its cursor past that stamp. The default look-back (5m)
    reads it on the next run; without one it would never be read (the second case shows the trap)."""
    instance = salesforce_instance(salesforce_sandbox, **({"lookback": lookback} if lookback else {}))
    if lookback is None:
        assert instance.settings.lookback == InstanceSettings.model_fields["lookback"].default
    assert pipeline.sync(instance).status == "succeeded"
    late, seen, *_ = filled(instance)
    salesforce_sandbox.control.configure(long_transaction_seconds=5.0)
    edit_as_a_person(salesforce_sandbox, "salesforce", late, {"Title": ""})  # committed 5 s from now
    stamped = datetime.now(UTC).replace(microsecond=0)  # `late`'s stamp is this second or an earlier one
    salesforce_sandbox.control.configure(long_transaction_seconds=0.0)
    while datetime.now(UTC).replace(microsecond=0) < stamped + timedelta(seconds=3):
        time.sleep(0.05)  # `seen` and the next cursor (the CRM's whole-second Date header) are past it
    edit_as_a_person(salesforce_sandbox, "salesforce", seen, {"Title": ""})

    second = pipeline.sync(instance)
    cursor = pipeline.store.cursors.get(instance.name)
    committed = wait_for(lambda: instance.adapter.read_current([late], ["Title"])[late]["Title"] is None)
    stamp = instance.adapter.read_current([late], ["SystemModstamp"])[late]["SystemModstamp"]
    third = pipeline.sync(instance)

    assert second.status == third.status == "succeeded"
    assert seen in sent_by(pipeline, second) and late not in sent_by(pipeline, second), "still in flight"
    assert committed and cursor is not None and parse_datetime(stamp) < cursor.changed_at, "behind the cursor"
    assert (late in sent_by(pipeline, third)) is read


@pytest.mark.parametrize(
    ("timing", "read"),
    [({"settle": "1m", "lookback": "5m"}, True), ({"settle": "0s", "lookback": "0s"}, False)],
)
def test_a_contact_edited_just_before_a_run_and_not_yet_in_search_is_enriched_by_a_later_run(
    pipeline: Pipeline, hubspot_sandbox: Served, timing: dict[str, str], read: bool
) -> None:
    """HubSpot's search shows a write seconds after it: a run in that gap does not see the record, and its
    cursor may pass it. The default settle margin keeps the cursor a minute behind the CRM's clock, so a later
    run reads it (the first case: the defaults); with no margin and no look-back it would be lost for good."""
    if read:
        defaults = InstanceSettings.model_fields
        assert timing == {"settle": defaults["settle"].default, "lookback": defaults["lookback"].default}
    hubspot_sandbox.control.configure(search_visibility_delay_ms=6000)  # a slow index, so the gap is sure
    instance = hubspot_instance(hubspot_sandbox, **timing)
    next_minute = lambda: datetime.now(UTC) + timedelta(seconds=61)  # noqa: E731  the run a minute on
    assert pipeline.sync(instance, now=next_minute).status == "succeeded"
    (record_id, *_) = filled(instance)
    edit_as_a_person(hubspot_sandbox, "hubspot", record_id, {"jobtitle": ""})
    edited = datetime.now(UTC).replace(microsecond=0)
    while datetime.now(UTC).replace(microsecond=0) < edited + timedelta(seconds=3):
        time.sleep(0.05)  # the CRM's clock, its whole-second Date header, is past the edit

    second = pipeline.sync(instance, now=next_minute)
    wait_until_searchable(instance, [record_id])
    third = pipeline.sync(instance, now=next_minute)

    assert second.status == third.status == "succeeded"
    assert record_id not in sent_by(pipeline, second), "not in search yet"
    assert (record_id in sent_by(pipeline, third)) is read


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_record_that_changes_during_the_pull_is_read_again_but_goes_into_one_job(
    pipeline: Pipeline, hubspot_sandbox: Served, lonescale_sandbox: Served
) -> None:
    """With the daemon's clock ahead, a record changed mid-pull stays inside the window and is read again
    at its new time; it waits in a batch not yet sent, and must not be put in it twice."""
    hubspot_sandbox.control.reset(contacts=3000)
    lonescale_sandbox.control.admin_post("credits", {"enrichment_credits": 1_000_000})
    instance = hubspot_instance(hubspot_sandbox, budget={"max_contacts_per_run": None})
    first_chunk = list(instance.adapter.pull_changed(WHOLE, instance.mapping.read_fields()))[:500]
    waiting = [r.ref.id for r in first_chunk if isinstance(to_contact(instance.mapping, r), Mapped)
               and not r.get("email")][:3]  # fmt: skip
    assert len(waiting) == 3
    changed: list[str] = []

    def change_after_first_chunk(report: SyncReport) -> None:
        if report.pulled >= 500 and not changed:
            changed.extend(waiting)
            for record_id in waiting:
                edit_as_a_person(hubspot_sandbox, "hubspot", record_id, {"jobtitle": "Changed mid-pull"})

    # Batches that wait to fill need jobs of many contacts: the kind reading of the echo, by name.
    lonescale_sandbox.control.configure(echo_custom=True)
    big_batches = LoneScaleSettings(
        enrichment_type=LONESCALE.enrichment_type, batch_size=1000, assume_custom_echoed=True
    )
    report = pipeline.sync(
        instance, big_batches, now=lambda: datetime.now(UTC) + timedelta(minutes=2),
        progress=change_after_first_chunk,
    )  # fmt: skip

    assert report.status == "succeeded", report.message
    sent = Counter(c.record_id for job in report.jobs for c in pipeline.store.jobs.contacts(job))
    assert all(sent[record_id] == 1 for record_id in waiting), {r: sent[r] for r in waiting}
    assert report.skipped["read again: changed during this pull"] == 3


def test_two_syncs_of_one_instance_at_once_send_each_contact_once(
    pipeline: Pipeline, hubspot_sandbox: Served, lonescale_sandbox: Served
) -> None:
    """A `sync NAME` beside the daemon: the second finds the instance's lease taken and does nothing."""
    hubspot_sandbox.control.configure(latency_ms=30)  # each page takes a while: the runs overlap
    instances = [hubspot_instance(hubspot_sandbox), hubspot_instance(hubspot_sandbox)]
    start = threading.Barrier(2)
    reports: list[SyncReport] = []

    def run(instance: Instance) -> None:
        start.wait()
        reports.append(pipeline.sync(instance))

    threads = [threading.Thread(target=run, args=(i,)) for i in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(r.status for r in reports) == ["busy", "succeeded"]
    busy = next(r for r in reports if r.status == "busy")
    assert busy.message and "instance:acme-hs is busy: process" in busy.message
    posted = [i for job in lonescale_sandbox.control.admin("jobs")["jobs"] for i in job["contact_ids"]]
    assert posted and len(posted) == len(set(posted)), "no contact posted twice"


def test_a_clock_a_few_seconds_off_is_measurement_not_a_warning_and_minutes_off_is_one(
    pipeline: Pipeline, hubspot_sandbox: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """The Date header is whole seconds, stamped from a clock servers refresh once a second: on one machine,
    the CRM seems up to two seconds behind. Saying "fix your clock" then only teaches people to ignore it."""
    caplog.set_level(logging.WARNING, logger="connector")
    instance = hubspot_instance(hubspot_sandbox, settle="0s")
    pipeline.sync(instance, now=lambda: datetime.now(UTC) + timedelta(seconds=3))
    assert not [r for r in caplog.records if "clock is" in r.getMessage()]

    pipeline.sync(instance, now=lambda: datetime.now(UTC) + timedelta(minutes=2))
    assert [r for r in caplog.records if "ahead of the CRM's" in r.getMessage()]
