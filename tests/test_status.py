"""The status model (connector.status) and its text and HTML views, from a store written as the pipeline
writes it, on SQLite and PostgreSQL: the latest run of each kind only, records rejected apart from fields
refused with their totals when the list is cut, the next run from the schedule, every value escaped."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.cli_status import status_text
from connector.config import Config, load_config
from connector.models import JobStatus
from connector.status import LISTED, build_status, next_run
from connector.status_page import render
from connector.store import Job, JobContact, JournalEntry, Store

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def config(tmp_path: Path, store_url: str) -> Config:
    path = tmp_path / "status.toml"
    path.write_text(f"""
[store]
url = "{store_url}"

[[instances]]
name = "acme"
crm = "hubspot"
mapping = "{ROOT / "mappings" / "hubspot-contacts.toml"}"
schedule = "every 30m"
[instances.budget]
max_contacts_per_month = 500
""")
    return load_config(path, env={}, credentials=False)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store(store_url)
    yield opened
    opened.close()


def _sync(store: Store, status: str, counts: dict[str, object], error: str | None = None) -> int:
    run_id = store.runs.start("acme", "sync")
    store.runs.finish(run_id, status, counts, error)
    return run_id


def _job(store: Store, run_id: int, job_id: str, records: list[str]) -> Job:
    now = datetime.now(UTC)
    job = Job(
        job_id, "acme", run_id, "ab" * 32, None, JobStatus.SENT, ["email"], len(records), now, now, None, None
    )
    store.jobs.create(
        job, [JobContact(job_id, r, "contacts", {"firstname": "A"}, {"email": None}) for r in records]
    )
    return job


def test_only_the_latest_run_of_each_kind_and_its_failure_are_shown(store: Store, config: Config) -> None:
    _sync(store, "failed", {"pulled": 3}, "HubSpot answered 401: the token was revoked")
    failed_write = store.runs.start("acme", "apply")
    store.runs.finish(failed_write, "failed", {}, "the CRM is down")
    latest = _sync(store, "succeeded", {"pulled": 7, "sent": 0, "skipped": {"in cooldown": 7}})
    report = build_status(store, config)
    [item] = report.instances
    assert item.last_sync is not None and item.last_sync.id == latest
    assert [f.kind for f in item.failures] == ["failed write-back"], (
        "the failed sync was followed by a good one"
    )
    text = status_text(report)
    assert "401" not in text and "the CRM is down" in text
    assert "skipped in cooldown 7" in text and "{" not in text
    assert item.next_run == item.last_sync.started_at + timedelta(minutes=30), "every 30m, from the last run"


def test_records_rejected_and_fields_refused_are_counted_apart_with_their_totals(
    store: Store, config: Config
) -> None:
    run_id = _sync(store, "succeeded", {"pulled": 9, "sent": 9, "projected_credits": 9.0})
    records = [f"r{i}" for i in range(9)]
    job = _job(store, run_id, "job-1", records)
    rejected, refused = records[: LISTED + 2], records[LISTED + 2 :]
    store.jobs.mark_contacts(job.id, rejected, "rejected", "INVALID_EMAIL_ADDRESS: invalid email")
    store.jobs.mark_contacts(job.id, refused, "rejected", "email not written: another contact holds it")
    write = store.runs.start("acme", "apply")
    store.journal.add(
        [JournalEntry(write, job.id, "acme", r, "phone", None, "+1", "written") for r in refused]
    )
    store.runs.finish(write, "succeeded", {"records_written": 2, "fields_written": 2, "records_rejected": 7,
                                           "fields_refused": 2})  # fmt: skip
    [item] = build_status(store, config).instances
    assert item.failure_totals == {"record rejected": LISTED + 2, "field refused": 2}
    kinds = [f.kind for f in item.failures]
    assert kinds.count("record rejected") == LISTED and kinds.count("field refused") == 2
    assert item.this_cycle is not None and (
        item.this_cycle.records_rejected,
        item.this_cycle.fields_refused,
    ) == (7, 2)
    assert item.credits.month_sent == 9 and item.credits.monthly_cap == 500
    [phone] = [f for f in item.series.fill if f.field == "phone"]
    assert phone.points == [], "a phone field is filled by phone results: none were asked for"
    [email] = [f for f in item.series.fill if f.field == "email"]
    assert [(p.written, p.results) for p in email.points] == [(0, 9)]
    text = status_text(build_status(store, config))
    assert "the CRM rejected 7 record(s) and refused 2 field(s)" in text
    assert "2 more record rejected(s): `lonescale-sync failures` lists them all" in text


def test_every_value_on_the_page_is_escaped(store: Store, config: Config) -> None:
    _sync(store, "stopped", {"pulled": 1, "skipped": {"<script>alert(1)</script>": 1}}, "<b>cap</b> & more")
    page = render(build_status(store, config))
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;cap&lt;/b&gt; &amp; more" in page


def test_the_next_run_follows_the_schedule_as_the_daemon_runs_it() -> None:
    now = datetime(2026, 12, 2, 13, 20, tzinfo=UTC)
    assert next_run("0 * * * *", now - timedelta(minutes=20), now) == datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
    assert next_run("every 15m", now - timedelta(minutes=5), now) == now + timedelta(minutes=10)
    later = next_run("every 15m", now - timedelta(minutes=121), now)
    assert later == now + timedelta(minutes=14), "missed runs: the next on the grid, never in the past"
    assert next_run("every 15m", None, now) == now, "a fresh daemon runs every instance at once"
