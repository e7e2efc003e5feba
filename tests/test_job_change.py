"""Job changes: the flag and date written, a new-company rule gated on the move, one owner task, never twice."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from connector.apply_plan import OWNER_TASK
from connector.config import LoneScaleSettings
from connector.mapping import load_mapping
from connector.models import EnrichmentType
from connector.review import replay
from tests.conftest import Served
from tests.support import MAPPINGS, Pipeline, salesforce_instance, salesforce_token

WATCH = LoneScaleSettings(enrichment_type=[EnrichmentType.PROFILE], detect_job_change=True)


def tasks_in(served: Served) -> list[dict[str, object]]:
    token = salesforce_token(served)
    answer = httpx.get(
        f"{served.url}/services/data/v62.0/query",
        params={"q": "SELECT Id, Subject, WhoId, OwnerId, ActivityDate FROM Task"},
        headers={"Authorization": f"Bearer {token}"},
    )
    records: list[dict[str, object]] = answer.json()["records"]
    return records


def test_a_detected_move_flags_the_record_and_gives_its_owner_one_task(
    pipeline: Pipeline, salesforce_sandbox: Served
) -> None:
    mapping = load_mapping(MAPPINGS / "salesforce-contact.toml")
    mapping = mapping.model_copy(
        update={"job_change": mapping.job_change.model_copy(update={"follow_up": True})}
    )
    instance = salesforce_instance(salesforce_sandbox, mapping, budget={"only_missing": False})
    report = pipeline.sync(instance, WATCH)
    pipeline.wait_for_results(report)
    applied = pipeline.apply(instance)
    assert applied.records_written > 0

    ids = [c.record_id for job in report.jobs for c in pipeline.store.jobs.contacts(job)]
    now = instance.adapter.read_current(ids, ["Job_Change_Detected__c", "OwnerId"])
    moved = sorted(rid for rid, values in now.items() if values["Job_Change_Detected__c"] is True)
    assert moved, "the sandbox reports some moves (job_change_share)"
    tasks = tasks_in(salesforce_sandbox)
    assert sorted(str(t["WhoId"]) for t in tasks) == moved, "one task per moved contact, none for the others"
    for task in tasks:
        assert task["OwnerId"] == now[str(task["WhoId"])]["OwnerId"], "assigned to the record's owner"
        assert "changed jobs" in str(task["Subject"]) and task["ActivityDate"]
    journaled = [
        e
        for rid in moved
        for e in pipeline.store.journal.for_record(instance.name, rid)
        if e.field == OWNER_TASK
    ]
    assert len(journaled) == len(moved) and all(e.outcome == "written" for e in journaled)

    again = replay({instance.name: instance}, pipeline.store, since=datetime(2000, 1, 1, tzinfo=UTC))
    assert again.fields_written == 0 and len(tasks_in(salesforce_sandbox)) == len(moved), (
        "a replay adds no task"
    )
