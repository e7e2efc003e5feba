"""Credits: caps per run and per month, the balance, only-missing types and cooldowns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connector.mapping import load_mapping
from connector.models import EnrichmentType
from connector.selection import select_types
from connector.store import Cursor
from connector.window import EPOCH
from tests.conftest import Served
from tests.support import MAPPINGS, Pipeline, salesforce_instance


def test_a_run_stops_cleanly_at_its_cap_and_the_next_run_takes_the_rest(
    pipeline: Pipeline, salesforce_sandbox: Served
) -> None:
    instance = salesforce_instance(salesforce_sandbox, budget={"max_contacts_per_run": 50})
    first = pipeline.sync(instance)
    assert (first.status, first.sent) == ("stopped", 50)
    assert first.message and "cap reached after 50 contacts" in first.message
    assert pipeline.store.cursors.get("acme-sf") is None, "the window was not finished: the cursor stays"
    second = pipeline.sync(instance)
    assert second.sent == 50 and second.skipped["in cooldown"] >= 50, "the first fifty are not sent again"


def test_the_monthly_cap_holds_across_runs(pipeline: Pipeline, salesforce_sandbox: Served) -> None:
    instance = salesforce_instance(
        salesforce_sandbox, budget={"max_contacts_per_run": 50, "max_contacts_per_month": 80}
    )
    assert [pipeline.sync(instance).sent for _ in range(2)] == [50, 30]
    third = pipeline.sync(instance)
    assert (third.status, third.sent, third.pulled) == ("stopped", 0, 0)
    assert third.message == "the monthly cap of 80 contacts is already reached"


def test_no_credits_left_stops_before_anything_is_pulled_or_sent(
    pipeline: Pipeline, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.admin_post("credits", {"enrichment_credits": 0})
    report = pipeline.sync(salesforce_instance(salesforce_sandbox))
    assert (report.status, report.pulled, report.sent) == ("stopped", 0, 0)
    assert report.credits_at_start == 0 and "no enrichment credits" in (report.message or "")
    assert lonescale_sandbox.control.count(route="/trigger/enrich") == 0


def test_contacts_are_sent_only_for_the_types_whose_targets_are_empty(
    pipeline: Pipeline, salesforce_sandbox: Served
) -> None:
    instance = salesforce_instance(salesforce_sandbox)
    report = pipeline.sync(instance)
    assert report.skipped["targets already filled"] > 0, "the seed has contacts with every target filled"
    assert len(report.by_types) > 1, "contacts need different types, so jobs differ"
    mapping = instance.mapping
    for job_id in report.jobs:
        job = pipeline.store.jobs.get(job_id)
        assert job is not None
        for contact in pipeline.store.jobs.contacts(job_id):
            for kind in EnrichmentType:
                empty = any(not contact.pulled.get(field) for field in mapping.targets(kind))
                assert (kind.value in job.enrichment_types) == empty, (
                    contact.record_id,
                    kind,
                    contact.pulled,
                )


def test_cooldowns_let_a_type_be_sent_again_only_when_they_pass() -> None:
    from connector.config import BudgetSettings
    from connector.models import CrmRecord, RecordRef

    mapping = load_mapping(MAPPINGS / "salesforce-contact.toml")
    record = CrmRecord(RecordRef("acme-sf", "Contact", "003A"), EPOCH, {"FirstName": "A", "LastName": "B"})
    now = datetime(2026, 11, 26, tzinfo=UTC)
    sent = (now - timedelta(days=40)).isoformat()
    history = {"email": {"sent_at": sent, "found": True}, "phone": {"sent_at": sent, "found": False}}
    types, reason = select_types(list(EnrichmentType), mapping, record, history, BudgetSettings(), now)
    assert types == [EnrichmentType.PHONE, EnrichmentType.PROFILE] and reason is None, (
        "a miss waits 30 days, a find 90"
    )
    nothing, why = select_types([EnrichmentType.EMAIL], mapping, record, history, BudgetSettings(), now)
    assert (nothing, why) == ([], "in cooldown")
    later = now + timedelta(days=51)
    assert select_types([EnrichmentType.EMAIL], mapping, record, history, BudgetSettings(), later)[0] == [
        EnrichmentType.EMAIL
    ]


def test_after_a_cycle_nothing_is_re_sent_until_the_not_found_cooldown_passes(
    pipeline: Pipeline, salesforce_sandbox: Served
) -> None:
    instance = salesforce_instance(salesforce_sandbox)
    report = pipeline.sync(instance)
    pipeline.wait_for_results(report)
    pipeline.apply(instance)
    pipeline.store.cursors.set(instance.name, Cursor(EPOCH))  # read everything again
    assert pipeline.sync(instance).sent == 0
    pipeline.store.cursors.set(instance.name, Cursor(EPOCH))
    month_later = pipeline.sync(instance, now=lambda: datetime.now(UTC) + timedelta(days=31))
    assert 0 < month_later.sent < report.sent, "only what was not found, and is still missing, goes again"
