"""`/metrics`: a runtime's counters move with what it does, read over a real socket and parsed as Prometheus
parses them; the store's figures agree with the runs that made them, on SQLite and PostgreSQL; the example
alert rules name only metrics that exist; the scheduler's start-up chatter stays out of the log."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from click.testing import CliRunner
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from connector.adapters.base import Window
from connector.apply_report import reason_code
from connector.checks import create_missing_status_fields
from connector.cli import main
from connector.config import InstanceSettings, load_config
from connector.daemon import build_scheduler
from connector.dispatch import LocalDispatcher
from connector.logs import setup_logging
from connector.metrics import Metrics, policy_label
from connector.models import JobStatus
from connector.runtime import Runtime
from connector.schedules import longest_gap
from connector.serving import ThreadedServer
from connector.store import Job, Store
from tests.conftest import Served
from tests.support import SANDBOX_ENV, create_status_fields
from tests.test_commands import write_config
from tests.test_partial_writes import LONG_TITLE

ROOT = Path(__file__).resolve().parent.parent
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(metrics: Metrics) -> Samples:
    """GET /metrics from a small app serving `Metrics.routes()`, as Prometheus would, parsed by its parser."""
    server = ThreadedServer(Starlette(routes=metrics.routes()), name="metrics")
    url = server.start()
    try:
        response = httpx.get(f"{url}/metrics", timeout=10)
    finally:
        server.stop()
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when none has them)."""
    wanted = set(labels.items())
    return sum(value for (sample, have), value in samples.items() if sample == name and wanted <= have)


def present(samples: Samples, name: str, **labels: str) -> bool:
    wanted = set(labels.items())
    return any(sample == name and wanted <= have for sample, have in samples)


@pytest.fixture
def runtime(
    tmp_path: Path, lonescale_sandbox: Served, salesforce_sandbox: Served, hubspot_sandbox: Served
) -> Iterator[Runtime]:
    salesforce_sandbox.control.reset(contacts=12, seed=7)
    hubspot_sandbox.control.reset(contacts=5, seed=7)
    create_status_fields(salesforce_sandbox)
    lonescale_sandbox.control.configure(webhook_delay_seconds=0.05)
    config = write_config(tmp_path, lonescale_sandbox.url, salesforce_sandbox.url, hubspot_sandbox.url)
    running = Runtime(load_config(config, env=SANDBOX_ENV))
    running.serve_webhook()
    yield running
    running.close()


def sync_and_write_back(runtime: Runtime, name: str) -> tuple[int, int, int, int]:
    """One sync and the write-back of its results: (pulled, sent, jobs, fields written)."""
    report = runtime.sync(name)
    assert report.status == "succeeded", report.message
    applied, finished = runtime.wait_and_apply(report.jobs, timeout=60, poll=0.1)
    assert finished, "every job's results came and were written"
    return report.pulled, report.sent, len(report.jobs), applied.fields_written


def test_after_a_sync_metrics_shows_its_figures_and_they_move_with_the_next_one(
    runtime: Runtime, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    email = "ada.longtitle@initech-example.com"
    salesforce_sandbox.control.seed(
        [{"sobject": "Contact", "FirstName": "Ada", "LastName": "Longtitle", "Email": email}]
    )
    lonescale_sandbox.control.seed(
        [{"match": {"email": email}, "fields": {"jobTitle": LONG_TITLE, "phone": "+14155550199"}}]
    )
    salesforce_sandbox.control.clear_stats()
    lonescale_sandbox.control.clear_stats()
    before = scrape(runtime.metrics)
    assert total(before, "lonescale_sync_contacts_pulled_total", instance="sf") == 0

    pulled, sent, jobs, written = sync_and_write_back(runtime, "sf")
    first = scrape(runtime.metrics)

    assert pulled > 0 and sent > 0
    assert total(first, "lonescale_sync_contacts_pulled_total", instance="sf") == pulled
    assert total(first, "lonescale_sync_contacts_sent_total", instance="sf") == sent
    assert total(first, "lonescale_sync_credits_committed_total", instance="sf") > 0
    fields = "lonescale_sync_fields_total"
    assert total(first, fields, instance="sf", crm="salesforce", decision="written") == written > 0
    assert total(first, fields, instance="sf", decision="refused") == 1, "Ada's title"
    assert total(first, "lonescale_sync_fields_refused_total", instance="sf", code="STRING_TOO_LONG") == 1
    assert total(first, "lonescale_sync_records_written_total", instance="sf") > 0
    # Every answer each API gave is counted, as the emulators counted the calls they answered.
    assert total(first, "lonescale_sync_api_calls_total", crm="salesforce", instance="sf") == (
        salesforce_sandbox.control.count()
    )
    assert total(first, "lonescale_sync_api_calls_total", crm="lonescale", instance="sf") == (
        lonescale_sandbox.control.count()
    )
    # Every job's results came to the webhook, each body stored once, each call timed.
    stored = total(first, "lonescale_sync_webhook_deliveries_total", instance="sf", outcome="stored")
    kept = sum(len(runtime.store.inbox.of_job(job.id)) for job in runtime.store.jobs.find("sf"))
    assert stored == kept >= jobs
    delivered = total(first, "lonescale_sync_webhook_deliveries_total", instance="sf")
    assert total(first, "lonescale_sync_webhook_delivery_seconds_count", instance="sf") == delivered
    assert (
        total(first, "lonescale_sync_webhook_delivery_seconds_bucket", instance="sf", le="+Inf") == delivered
    )
    assert total(first, "lonescale_sync_jobs", instance="sf") == jobs
    assert total(first, "lonescale_sync_jobs", instance="sf", state=JobStatus.APPLIED.value) == jobs
    assert present(first, "lonescale_sync_job_oldest_age_seconds", instance="sf", state="applied")
    last_sync = total(first, "lonescale_sync_last_success_timestamp_seconds", instance="sf", kind="sync")
    assert abs(last_sync - datetime.now(UTC).timestamp()) < 600
    assert present(first, "lonescale_sync_last_success_timestamp_seconds", instance="sf", kind="apply")
    assert total(first, "lonescale_sync_month_contacts_sent", instance="sf") == sent

    salesforce_sandbox.control.seed(
        [{"sobject": "Contact", "FirstName": "Grace", "LastName": "Newhire", "Email": "grace@globex-example.com"},
         {"sobject": "Contact", "FirstName": "Alan", "LastName": "Newhire", "Email": "alan@globex-example.com"}]
    )  # fmt: skip
    pulled_again, sent_again, _, _ = sync_and_write_back(runtime, "sf")
    second = scrape(runtime.metrics)

    assert sent_again >= 2, "the two new contacts"
    assert total(second, "lonescale_sync_contacts_pulled_total", instance="sf") == pulled + pulled_again
    assert total(second, "lonescale_sync_contacts_sent_total", instance="sf") == sent + sent_again
    skipped = total(second, "lonescale_sync_contacts_skipped_total", instance="sf")
    assert skipped == pulled + pulled_again - sent - sent_again, "each record pulled is sent or skipped"
    assert total(second, fields, instance="sf", decision="written") > written


def test_a_rate_limit_answer_is_counted_as_the_crm_sent_it(runtime: Runtime, hubspot_sandbox: Served) -> None:
    hubspot_sandbox.control.configure(search_per_second=1)
    hubspot_sandbox.control.clear_stats()
    adapter = runtime.instances["hs"].adapter  # as the runtime built it, reporting to its metrics
    window = Window(datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(days=1))
    for _ in range(10):  # searches back to back: soon one is over HubSpot's per-second search limit
        assert len(list(adapter.pull_changed(window, ["email"]))) == 5, "a 429 is waited out, then retried"
        if hubspot_sandbox.control.count(status=429):
            break

    samples = scrape(runtime.metrics)

    refused = hubspot_sandbox.control.count(status=429)
    assert refused >= 1, "HubSpot said 429"
    assert total(samples, "lonescale_sync_api_rate_limited_total", crm="hubspot", instance="hs") == refused
    assert total(samples, "lonescale_sync_api_calls_total", crm="hubspot", instance="hs") == (
        hubspot_sandbox.control.count()
    )


def test_a_refused_webhook_call_is_counted_with_its_status_and_no_instance(runtime: Runtime) -> None:
    answer = httpx.post(f"{runtime.webhook_base}/webhooks/lonescale/no-such-job?token=x", json=[], timeout=10)
    assert answer.status_code == 401

    samples = scrape(runtime.metrics)

    assert total(samples, "lonescale_sync_webhook_deliveries_total", outcome="refused", status="401") == 1
    assert total(samples, "lonescale_sync_webhook_deliveries_total", instance="", status="401") == 1
    assert total(samples, "lonescale_sync_webhook_delivery_seconds_count", instance="") == 1


def test_a_record_the_crm_rejects_is_counted_by_its_code(
    runtime: Runtime, hubspot_sandbox: Served, lonescale_sandbox: Served
) -> None:
    create_missing_status_fields(runtime.instance("hs"))  # as `check --create-missing` does
    report = runtime.sync("hs")
    assert report.status == "succeeded" and report.jobs, report.message
    deadline = time.monotonic() + 30
    while (
        not all(runtime.store.inbox.of_job(job) for job in report.jobs)
        or (lonescale_sandbox.control.admin("deliveries")["pending_tasks"])
    ):
        assert time.monotonic() < deadline, "LoneScale's deliveries did not all arrive"
        time.sleep(0.05)
    sent = [c.record_id for job in report.jobs for c in runtime.store.jobs.contacts(job)]
    hubspot_sandbox.control.configure(archive_before_update=[sent[0]])  # a person deletes it mid-pass

    applied = runtime.apply()
    samples = scrape(runtime.metrics)

    assert applied.records_rejected == 1
    rejected = "lonescale_sync_records_rejected_total"
    assert total(samples, rejected, instance="hs", crm="hubspot", code="OBJECT_NOT_FOUND") == 1
    assert total(samples, rejected, instance="hs") == 1
    assert total(samples, "lonescale_sync_records_written_total", instance="hs") == applied.records_written


def test_a_refusals_code_is_the_one_the_crm_wrote_at_the_head_of_its_reason() -> None:
    assert reason_code("STRING_TOO_LONG: Title: data value too large: 227 characters") == "STRING_TOO_LONG"
    assert reason_code("HubSpot batch update refused (409 CONFLICT): Contact already exists") == "CONFLICT"
    assert reason_code("HubSpot neither confirmed nor refused this update") == "OTHER"
    assert reason_code(None) == "OTHER"


# --------------------------------------------------------------------------- the store's figures


T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
SKIPPED = {"already enriched": 3, "cooling down": 2}


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store(store_url)
    yield opened
    opened.close()


def salesforce_settings(name: str, **extra: object) -> InstanceSettings:
    return InstanceSettings.model_validate({
        "name": name, "crm": "salesforce", "mapping": str(ROOT / "mappings" / "salesforce-contact.toml"),
        "salesforce": {"instance_url": "https://acme.my.salesforce.com", "client_id_env": "SF_ID",
                       "client_secret_env": "SF_SECRET"},
        **extra,
    })  # fmt: skip


def test_the_store_figures_sum_every_finished_run_and_read_jobs_by_state(store: Store) -> None:
    for pulled, sent in ((10, 4), (7, 2)):
        run = store.runs.start("acme", "sync")
        store.runs.finish(run, "succeeded", {"pulled": pulled, "sent": sent, "skipped": SKIPPED,
                                             "projected_credits": sent * 1.5})  # fmt: skip
    store.runs.start("acme", "sync")  # running: its counts are not written yet
    run = store.runs.start("other", "sync")
    store.runs.finish(run, "failed", {"pulled": 1, "sent": 0, "skipped": {"cooling down": 1}})
    for kind, code in (("apply", "STRING_TOO_LONG"), ("retry", "STRING_TOO_LONG"), ("rollback", "x")):
        run = store.runs.start("acme", kind)
        store.runs.finish(run, "succeeded", {
            "records_written": 3, "fields_written": 9, "fields_refused": 1, "records_rejected": 1,
            "kept_by_policy": {"fill_empty: the field already has a value": 2,
                               "email_status is 'risky', not one of ['valid']": 1},
            "rejected_by_code": {"FIELD_CUSTOM_VALIDATION_EXCEPTION": 1}, "refused_by_code": {code: 1},
        })  # fmt: skip
    for number, status in enumerate([JobStatus.SENT, JobStatus.SENT, JobStatus.APPLIED]):
        created = T0 - timedelta(minutes=10 * (number + 1))
        store.jobs.create(Job(f"job-{number}", "acme", run, "ab" * 32, None, status, ["email"], 2, created,
                              None, None, None), [])  # fmt: skip
    capped = salesforce_settings("acme", budget={"max_contacts_per_month": 500})
    samples = scrape(Metrics(store, [capped], now=lambda: T0))  # job ages and the month measured at T0

    def acme(name: str, **labels: str) -> float:
        return total(samples, f"lonescale_sync_{name}", instance="acme", **labels)

    assert (acme("contacts_pulled_total"), acme("contacts_sent_total")) == (17, 6)
    assert acme("credits_committed_total") == 9.0
    assert acme("contacts_skipped_total", reason="cooling down") == 4
    assert (
        total(samples, "lonescale_sync_contacts_skipped_total", instance="other", reason="cooling down") == 1
    )
    assert acme("fields_total", crm="salesforce", decision="written") == 18, "apply and retry, not rollback"
    assert acme("fields_total", decision="kept: fill_empty: the field already has a value") == 4
    assert acme("fields_total", decision="kept: only_if email_status") == 2
    assert acme("fields_refused_total", code="STRING_TOO_LONG") == 2
    assert not present(samples, "lonescale_sync_fields_refused_total", code="x"), (
        "a rollback is no write pass"
    )
    assert acme("records_rejected_total", code="FIELD_CUSTOM_VALIDATION_EXCEPTION") == 2
    assert acme("records_written_total") == 6
    assert acme("jobs", state="sent") == 2
    assert acme("job_oldest_age_seconds", state="sent") == 1200
    assert acme("job_oldest_age_seconds", state="applied") == 1800
    assert present(samples, "lonescale_sync_last_success_timestamp_seconds", instance="acme", kind="sync")
    assert not present(samples, "lonescale_sync_last_success_timestamp_seconds", instance="other")
    assert acme("month_contacts_cap") == 500
    assert acme("month_contacts_sent") == 6, "the jobs' contacts, created this month"


@pytest.mark.parametrize(
    ("schedule", "gap"),
    [("every 15m", timedelta(minutes=15)), ("@hourly", timedelta(hours=1)),
     ("0 9 * * 1-5", timedelta(days=3)), ("*/5 * * * *", timedelta(minutes=5))],
)  # fmt: skip
def test_a_schedules_longest_gap_is_its_interval_or_its_cron_lines_widest(
    schedule: str, gap: timedelta
) -> None:
    assert longest_gap(schedule, T0) == gap, "a weekday schedule waits from Friday to Monday"


def test_the_schedule_gap_of_each_configured_instance_is_on_metrics(runtime: Runtime) -> None:
    samples = scrape(runtime.metrics)
    assert total(samples, "lonescale_sync_schedule_gap_seconds", instance="sf") == 3600, "every 1h"
    assert total(samples, "lonescale_sync_schedule_gap_seconds", instance="hs") == 900, (
        "the default, every 15m"
    )


def test_a_kept_fields_reason_is_a_label_of_few_values() -> None:
    gated = "email_status is 'risky', not one of ['valid', 'catch_all']"
    assert policy_label(gated) == "only_if email_status", "the gate, not the value it saw"
    kept = "fill_empty: the field already has a value"
    assert policy_label(kept) == kept


# --------------------------------------------------------------------------- the alert rules


def test_every_alert_rule_names_only_metrics_that_metrics_exposes(runtime: Runtime) -> None:
    rules = yaml.safe_load((ROOT / "deploy" / "alerts.yml").read_text())
    exposed = {name for name, _ in scrape(runtime.metrics)}
    # The store's figures appear once there is something to count; the in-process ones from the start.
    exposed |= {
        "lonescale_sync_contacts_pulled_total", "lonescale_sync_contacts_sent_total",
        "lonescale_sync_records_written_total", "lonescale_sync_records_rejected_total",
        "lonescale_sync_last_success_timestamp_seconds", "lonescale_sync_month_contacts_sent",
        "lonescale_sync_month_contacts_cap", "lonescale_sync_fields_refused_total",
    }  # fmt: skip
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in alerts} >= {"LoneScaleSyncStale", "LoneScaleSyncRejectedShare",
                                                  "LoneScaleSyncCreditsNearCap"}  # fmt: skip
    for rule in alerts:
        assert {"alert", "expr", "for", "labels", "annotations"} <= set(rule), rule
        named = set(re.findall(r"\blonescale_sync_\w+", rule["expr"]))
        assert named, rule["alert"]
        assert named <= exposed, f"{rule['alert']} names metrics /metrics does not have: {named - exposed}"


# --------------------------------------------------------------------------- logging


def start_and_stop_the_scheduler(runtime: Runtime, capsys: pytest.CaptureFixture[str], level: str) -> str:
    """The daemon's scheduler started (its jobs added and announced, none run) and stopped: what was logged."""
    setup_logging(level, "text")
    dispatcher = LocalDispatcher(lambda unit: None, workers=1)
    scheduler = build_scheduler(runtime, dispatcher)
    scheduler.start(paused=True)
    scheduler.shutdown(wait=False)
    dispatcher.close()
    return capsys.readouterr().err


def test_the_schedulers_start_up_chatter_is_heard_at_debug_only(
    runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    try:
        quiet = start_and_stop_the_scheduler(runtime, capsys, "info")
        debugging = start_and_stop_the_scheduler(runtime, capsys, "debug")
    finally:
        setup_logging("info", "text")

    assert "apscheduler" not in quiet, quiet
    assert re.search(r"INFO apscheduler\S*: Added job", debugging), "what it says when someone debugs"
    assert re.search(r"INFO apscheduler\S*: Scheduler started", debugging)


def parsed(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_on_the_status_port_of_status_serve_move_after_a_sync_run_by_another_process(
    tmp_path: Path, lonescale_sandbox: Served, salesforce_sandbox: Served, hubspot_sandbox: Served
) -> None:
    """What a person does after `make demo` or beside a daemon: `curl /metrics` on the status port, a sync
    elsewhere, `curl` again."""
    salesforce_sandbox.control.reset(contacts=12, seed=7)
    create_status_fields(salesforce_sandbox)
    config = write_config(tmp_path, lonescale_sandbox.url, salesforce_sandbox.url, hubspot_sandbox.url)
    status = re.search(r'\[status\][^\n]*\nlisten = "([\d.:]+)"', config.read_text()).group(1)  # type: ignore[union-attr]
    log = tmp_path / "status.log"
    with log.open("wb") as sink:
        serving = subprocess.Popen([sys.executable, "-m", "connector.cli", "status", "--serve", "--config",
                                    str(config)], cwd=tmp_path, stderr=sink, stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                before = httpx.get(f"http://{status}/metrics", timeout=2)
                break
            except httpx.TransportError:
                assert serving.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        assert before.status_code == 200, before.text
        assert total(parsed(before.text), "lonescale_sync_contacts_pulled_total", instance="sf") == 0

        synced = CliRunner().invoke(main, ["sync", "sf", "--config", str(config)], env=SANDBOX_ENV)
        assert synced.exit_code == 0, synced.output
        pulled = int(re.search(r"pulled (\d+)", synced.output).group(1))  # type: ignore[union-attr]

        after = parsed(httpx.get(f"http://{status}/metrics", timeout=5).text)
        assert pulled > 0
        assert total(after, "lonescale_sync_contacts_pulled_total", instance="sf") == pulled
        assert total(after, "lonescale_sync_contacts_sent_total", instance="sf") > 0
    finally:
        serving.send_signal(signal.SIGINT)
        serving.wait(timeout=30)
