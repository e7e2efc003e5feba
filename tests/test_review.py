"""Looking before writing and going back: dry runs, rollback, history, replay, retries and the quarantine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest

from connector.apply import apply_results
from connector.mapping import FieldMapping, load_mapping
from connector.review import failures, replay, retry_failed, rollback
from connector.sandbox import credentials
from connector.store import JournalEntry, instance_lease
from connector.wiring import Instance
from tests.adapters.contract import EVERYTHING
from tests.conftest import Served
from tests.support import MAPPINGS, Pipeline, hubspot_instance, salesforce_instance, salesforce_token

STARTED = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Crm:
    """What differs between the two CRMs in these tests: names, how a person edits, how we write."""

    name: str
    served: Served
    title: str
    email: str
    status: str
    writes: str  # the batch-write route template, in the emulator's stats

    def instance(self, mapping: FieldMapping | None = None) -> Instance:
        if self.name == "salesforce":
            return salesforce_instance(self.served, mapping)
        made = hubspot_instance(self.served)
        return made if mapping is None else Instance(made.settings, mapping, made.adapter)

    def mapping(self) -> FieldMapping:
        return load_mapping(
            MAPPINGS / ("salesforce-contact.toml" if self.name == "salesforce" else "hubspot-contacts.toml")
        )

    def edit(self, record_id: str, values: dict[str, object]) -> None:
        """A person's edit, through the REST API like any other client."""
        if self.name == "hubspot":
            answer = httpx.patch(f"{self.served.url}/crm/v3/objects/contacts/{record_id}", json={"properties": values},
                                 headers={"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"})  # fmt: skip
            assert answer.status_code == 200, answer.text
            return
        token = salesforce_token(self.served)
        answer = httpx.patch(f"{self.served.url}/services/data/v62.0/sobjects/Contact/{record_id}", json=values,
                             headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert answer.status_code == 204, answer.text


@pytest.fixture(params=["salesforce", "hubspot"])
def crm(request: pytest.FixtureRequest, salesforce_sandbox: Served, hubspot_sandbox: Served) -> Crm:
    if request.param == "salesforce":
        return Crm("salesforce", salesforce_sandbox, "Title", "Email", "Enrichment_Status__c",
                   "/services/data/{version}/composite/sobjects")  # fmt: skip
    return Crm("hubspot", hubspot_sandbox, "jobtitle", "email", "lonescale_enrichment_status",
               "/crm/v3/objects/contacts/batch/update")  # fmt: skip


def test_a_dry_run_sync_sends_nothing_stores_nothing_and_projects_the_cost(
    pipeline: Pipeline, crm: Crm, lonescale_sandbox: Served
) -> None:
    instance = crm.instance()
    dry = pipeline.sync(instance, dry_run=True)
    assert dry.status == "succeeded" and dry.sent > 0 and dry.jobs == []
    assert dry.projected_credits >= dry.sent and sum(dry.by_types.values()) == dry.sent
    assert lonescale_sandbox.control.count(route="/trigger/enrich") == 0
    assert (
        pipeline.store.cursors.get(instance.name) is None and pipeline.store.runs.recent(instance.name) == []
    )
    real = pipeline.sync(instance)
    assert (real.sent, dict(real.by_types), dict(real.skipped)) == (
        dry.sent,
        dict(dry.by_types),
        dict(dry.skipped),
    )


def test_a_dry_run_apply_shows_each_field_decision_and_the_real_apply_writes_exactly_those(
    pipeline: Pipeline, crm: Crm
) -> None:
    instance = crm.instance()
    pipeline.wait_for_results(pipeline.sync(instance))
    crm.served.control.clear_stats()

    dry = apply_results({instance.name: instance}, pipeline.store, dry_run=True)

    assert crm.served.control.count(route=crm.writes) == 0
    assert len(pipeline.store.inbox.new(limit=10_000)) == dry.deliveries, "the inbox is untouched"
    planned = {(p.record_id, p.field) for p in dry.planned if p.write}
    assert planned and any(not p.write and p.reason.startswith("fill_empty") for p in dry.planned)
    assert all(p.current in (None, "") for p in dry.planned if p.write and p.reason == "empty field filled")

    real = pipeline.apply(instance)
    records = {p.record_id for p in dry.planned}
    written = {
        (e.record_id, e.field)
        for rid in records
        for e in pipeline.store.journal.for_record(instance.name, rid)
    }
    assert written == planned and real.fields_written == len(planned)


def test_rollback_restores_what_a_run_wrote_except_what_a_person_edited_since(
    pipeline: Pipeline, crm: Crm
) -> None:
    instance = crm.instance()
    before = {
        r.ref.id: dict(r.fields) for r in instance.adapter.pull_changed(EVERYTHING, [crm.title, crm.email])
    }
    pipeline.wait_for_results(pipeline.sync(instance))
    pipeline.apply(instance)
    apply_run = next(r["id"] for r in pipeline.store.runs.recent(instance.name) if r["kind"] == "apply")
    touched = sorted({e.record_id for e in pipeline.store.journal.for_run(apply_run)})
    edited = next(
        r
        for r in touched
        if any(e.field == crm.title for e in pipeline.store.journal.for_record(instance.name, r))
    )
    crm.edit(edited, {crm.title: "Typed after the enrichment"})

    preview = rollback({instance.name: instance}, pipeline.store, apply_run, dry_run=True)
    assert any(p.record_id == edited and p.field == crm.title and not p.write for p in preview.planned)

    done = rollback({instance.name: instance}, pipeline.store, apply_run)

    assert done.restored == sum(p.write for p in preview.planned) > 0 and done.rejected == 0
    now = instance.adapter.read_current(touched, [crm.title, crm.email, crm.status])
    assert now[edited][crm.title] == "Typed after the enrichment", "a person's edit survives the rollback"
    for rid in touched:
        if rid != edited:
            assert (now[rid][crm.title] or None) == (before[rid][crm.title] or None)
            assert (now[rid][crm.email] or None) == (before[rid][crm.email] or None)
        assert not now[rid][crm.status]
    history = pipeline.store.journal.for_record(instance.name, touched[0])
    assert [e.run_id for e in history].count(done.run_id) >= 1, "the rollback is journaled"
    assert rollback({instance.name: instance}, pipeline.store, done.run_id or 0, dry_run=True).planned, (
        "and undoable"
    )


def test_replay_after_a_mapping_fix_writes_what_was_missed_without_calling_lonescale(
    pipeline: Pipeline, crm: Crm, lonescale_sandbox: Served
) -> None:
    full = crm.mapping()
    without_titles = full.model_copy(
        update={"write_back": [r for r in full.write_back if r.field != crm.title]}
    )
    first = crm.instance(without_titles)
    report = pipeline.sync(first)
    pipeline.wait_for_results(report)
    pipeline.apply(first)
    triggers = lonescale_sandbox.control.count(route="/trigger/enrich")

    fixed = crm.instance(full)
    said: list[str] = []
    replayed = replay({fixed.name: fixed}, pipeline.store, since=STARTED, progress=said.append)

    titles = {
        e.record_id
        for e in pipeline.store.journal.for_run(_last_run(pipeline, fixed.name))
        if e.field == crm.title
    }
    assert titles and replayed.fields_written >= len(titles)
    assert lonescale_sandbox.control.count(route="/trigger/enrich") == triggers, "nothing new was bought"
    deliveries = replayed.deliveries
    assert said[0] == f"read 1 of {deliveries} stored deliveries: 0 result(s) so far", (
        "the long pass says each step"
    )
    assert f"read {deliveries} of {deliveries} stored deliveries" in said[deliveries - 1]
    assert said[deliveries:] == [
        f"{fixed.name}: reading the CRM's current values for {replayed.results} result(s)",
        f"{fixed.name}: writing {replayed.records_written} record(s)",
        f"{fixed.name}: {replayed.summary()}",
    ]
    again = replay({fixed.name: fixed}, pipeline.store, since=STARTED)
    one_job = replay({fixed.name: fixed}, pipeline.store, job_id=report.jobs[0], dry_run=True)
    assert one_job.deliveries and {p.job_id for p in one_job.planned} == {report.jobs[0]}
    assert again.fields_written == 0, "a second replay finds everything written, by the same policies"


# Salesforce only: its row locks give a deterministic, retryable refusal; HubSpot has no equivalent knob.
def test_rejected_records_are_quarantined_with_their_reason_and_retried_on_request(
    pipeline: Pipeline, salesforce_sandbox: Served
) -> None:
    instance = salesforce_instance(salesforce_sandbox)
    pipeline.wait_for_results(pipeline.sync(instance))
    salesforce_sandbox.control.configure(lock_row_share=0.6)
    first = pipeline.apply(instance)
    assert first.records_rejected > 0
    quarantined = [f for f in failures(pipeline.store, [instance.name]) if f.kind == "rejected"]
    assert len(quarantined) == first.records_rejected and all(
        "UNABLE_TO_LOCK_ROW" in f.reason for f in quarantined
    )

    salesforce_sandbox.control.configure(lock_row_share=0.0)
    retried = retry_failed({instance.name: instance}, pipeline.store)

    assert retried.records_written == first.records_rejected and retried.records_rejected == 0
    assert not [f for f in failures(pipeline.store, [instance.name]) if f.kind == "rejected"]


def _last_run(pipeline: Pipeline, name: str) -> int:
    return int(pipeline.store.runs.recent(name, limit=1)[0]["id"])


def test_a_replay_beside_a_write_in_flight_leaves_its_journal_rows_alone(
    pipeline: Pipeline, crm: Crm
) -> None:
    """The daemon has journaled a batch as `pending` and is writing it now (it holds the instance's lease).
    A replay from the CLI must not take those rows for a crash's leftovers and settle them under it."""
    instance = crm.instance()
    report = pipeline.sync(instance)
    pipeline.wait_for_results(report)
    (contact, *_) = pipeline.store.jobs.contacts(report.jobs[0])
    run_id = pipeline.store.runs.start(instance.name, "apply")
    in_flight = JournalEntry(run_id, contact.job_id, instance.name, contact.record_id, crm.title, None,
                             "Being written right now", "pending")  # fmt: skip
    (entry_id,) = pipeline.store.journal.add([in_flight])

    with pipeline.store.leases.held(instance_lease(instance.name), "apply"):  # the daemon's write-back
        replayed = replay({instance.name: instance}, pipeline.store, job_id=report.jobs[0])
        assert replayed.busy and f"{instance.name} is busy: process" in replayed.busy[0]
        assert replayed.records_written == 0
        (still,) = [e for e in pipeline.store.journal.pending(instance.name) if e.id == entry_id]
        assert still.outcome == "pending", "nobody but the writer settles its rows"

    done = replay({instance.name: instance}, pipeline.store, job_id=report.jobs[0])
    assert not done.busy and done.records_written > 0
