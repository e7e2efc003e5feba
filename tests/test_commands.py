"""The operator's commands end to end: check, sync --wait, status and the daemon, on the sandbox."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.config import (
    BudgetSettings,
    ClusterSettings,
    HubSpotSettings,
    InstanceLoneScaleSettings,
    InstanceSettings,
    LoneScaleSettings,
    SalesforceSettings,
    StoreSettings,
    WebhookSettings,
    load_config,
)
from connector.demo import free_port
from connector.sandbox import credentials
from connector.store import Store
from tests.conftest import Served
from tests.support import SANDBOX_ENV, create_status_fields

ROOT = Path(__file__).resolve().parent.parent
ENV = SANDBOX_ENV


def write_config(tmp_path: Path, lonescale: str, salesforce: str, hubspot: str) -> Path:
    path = tmp_path / "lonescale-sync.toml"
    path.write_text(f"""
[lonescale]
base_url = "{lonescale}"
api_key_env = "LS_KEY"
enrichment_type = ["email", "phone", "profile"]

[webhook]
listen = "127.0.0.1:{free_port()}"

[status]  # the status page beside the daemon, on a port of its own
listen = "127.0.0.1:{free_port()}"

[store]
url = "sqlite:///state.db"

[[instances]]
name = "sf"
crm = "salesforce"
mapping = "{ROOT / "mappings" / "salesforce-contact.toml"}"
settle = "0s"
schedule = "every 1h"

[instances.salesforce]
instance_url = "{salesforce}"
client_id_env = "SF_ID"
client_secret_env = "SF_SECRET"

[[instances]]
name = "hs"
crm = "hubspot"
mapping = "{ROOT / "mappings" / "hubspot-contacts.toml"}"
settle = "0s"

[instances.hubspot]
base_url = "{hubspot}"
access_token_env = "HS_TOKEN"
""")
    return path


@pytest.fixture
def config(
    tmp_path: Path, lonescale_sandbox: Served, salesforce_sandbox: Served, hubspot_sandbox: Served
) -> Path:
    """A config for the sandbox, whose Salesforce admin has created the status fields in Setup."""
    create_status_fields(salesforce_sandbox)
    lonescale_sandbox.control.configure(webhook_delay_seconds=0.2)
    return write_config(tmp_path, lonescale_sandbox.url, salesforce_sandbox.url, hubspot_sandbox.url)


@pytest.fixture
def new_org_config(
    tmp_path: Path, lonescale_sandbox: Served, salesforce_sandbox: Served, hubspot_sandbox: Served
) -> Path:
    """The same, on a new org and portal: neither CRM has the connector's status fields yet."""
    lonescale_sandbox.control.configure(webhook_delay_seconds=0.2)
    return write_config(tmp_path, lonescale_sandbox.url, salesforce_sandbox.url, hubspot_sandbox.url)


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=ENV)
    return result.exit_code, result.output


def test_the_example_config_documents_every_key_and_loads(tmp_path: Path) -> None:
    text = (ROOT / "config.example.toml").read_text()
    models = (
        LoneScaleSettings,
        WebhookSettings,
        StoreSettings,
        ClusterSettings,
        InstanceSettings,
        BudgetSettings,
        SalesforceSettings,
        HubSpotSettings,
        InstanceLoneScaleSettings,
    )
    for model in models:
        for key in model.model_fields:
            if key not in ("hubspot", "salesforce", "budget", "lonescale"):  # tables of their own
                assert re.search(rf"^#? ?{key} = ", text, re.MULTILINE), (
                    f"{model.__name__}.{key} is not in the example"
                )
    env = {
        "LONESCALE_API_KEY": "k" * 8,
        "SALESFORCE_CLIENT_ID": "id",
        "SALESFORCE_CLIENT_SECRET": "s" * 8,
        "HUBSPOT_ACCESS_TOKEN": "t" * 8,
    }
    config = load_config(ROOT / "config.example.toml", env=env)
    assert [i.name for i in config.settings.instances] == ["acme-salesforce", "acme-hubspot"]


def test_check_lists_every_problem_then_passes_once_status_properties_exist(
    new_org_config: Path, salesforce_sandbox: Served
) -> None:
    config = new_org_config
    code, output = cli("check", "--config", str(config))
    assert code == 1
    assert "hs status.status: property 'lonescale_enrichment_status' does not exist" in output
    problems = [line for line in output.splitlines() if line.startswith("  - ")]
    assert (
        "  - hs status.enriched_at: property 'lonescale_last_enriched_at' does not exist: "
        "run `lonescale-sync check --create-missing` to create it"
    ) in problems, "check names --create-missing where it is the fix"
    # A new org has none of the connector's fields either: each is named with the Setup step that makes it.
    assert (
        "  - sf status.job_change: field 'Job_Change_Detected__c' does not exist on Contact: create it in "
        "Salesforce Setup (Object Manager → Contact → Fields & Relationships → New, Checkbox, API name "
        "Job_Change_Detected__c) and give the integration user edit access, or change the mapping"
    ) in problems
    assert "Picklist with the values 'Enriched' and 'Not Found'" in output
    assert {p.split(":")[0] for p in problems if p.startswith("  - sf ")} == {
        "  - sf status.status",
        "  - sf status.enriched_at",
        "  - sf status.job_change",
    }, "the org's own fields (Title, LinkedIn_URL__c, …) are all there"
    create_status_fields(salesforce_sandbox)  # the admin's Setup step
    code, output = cli("check", "--config", str(config), "--create-missing")
    assert code == 0, output
    assert "created property lonescale_enrichment_status" in output and "2 instance(s) ready" in output


def test_a_config_with_problems_lists_them_all_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[lonescale]\nenrichment_type = ["fax"]\n[[instances]]\nname = "x"\ncrm = "pipedrive"\nmapping = "m.toml"\n'
    )
    code, output = cli("sync", "x", "--config", str(path))
    assert code == 2
    for expected in (
        "lonescale.enrichment_type[0]",
        "instances[0].crm",
        "instances[0].mapping: file",
        "LONESCALE_API_KEY",
    ):
        assert expected in output


def test_sync_wait_writes_results_back_then_status_tells_what_happened(config: Path) -> None:
    code, output = cli("sync", "sf", "--config", str(config), "--wait", "--timeout", "60")
    assert code == 0, output
    assert re.search(r"sf: succeeded \(run \d+\) — pulled 300, sent \d+ in \d+ job\(s\)", output)
    waited = re.search(
        r"sf: wrote (\d+ field\(s\) on \d+ record\(s\); the CRM rejected 0 record\(s\) and refused \d+ field\(s\))",
        output,
    )
    assert waited

    code, output = cli("sync", "sf", "--config", str(config))
    assert code == 0 and "sent 0 in 0 job(s)" in output, "the second sync sends nothing"

    code, output = cli("status", "--config", str(config))
    assert code == 0
    section = output.split("hs (hubspot")[0]
    assert (
        re.search(r"last sync:   run \d+, ", section)
        and "succeeded" in section
        and "jobs:        applied" in section
    )
    assert re.search(r"budget:      sent this month [1-9]\d* \(no monthly cap\); last run sent 0", section)
    # The words and the figures `sync --wait` said, over all its passes: records rejected, fields refused.
    assert (
        f"written:     {waited.group(1)}, from the results of the latest sync that sent contacts" in section
    )
    assert (
        "hs (hubspot, schedule every 15m)" in output
        and "last sync:   never" in output.split("hs (hubspot")[1]
    )


def test_sync_wait_stopped_at_its_cap_still_writes_back_what_it_paid_for_and_says_so(
    config: Path, lonescale_sandbox: Served
) -> None:
    """A cap stops the run after 50 contacts: the webhook keeps serving until their results are written, and
    the exit status says "stopped at a cap, results written" (4), not a failure."""
    budget = 'schedule = "every 1h"\n\n[instances.budget]\nmax_contacts_per_run = 50\n'
    text = config.read_text().replace('schedule = "every 1h"\n', budget, 1)
    config.write_text(text.replace('enrichment_type = ["email", "phone", "profile"]',
                                   'enrichment_type = ["email", "phone", "profile"]\nbatch_size = 25'))  # fmt: skip

    code, output = cli("sync", "sf", "--config", str(config), "--wait", "--timeout", "60")

    assert code == 4, output
    assert re.search(r"sf: stopped \(run \d+\) — pulled \d+, sent 50 in \d+ job\(s\)", output), output
    assert re.search(r"sf: wrote [1-9]\d* field\(s\) on [1-9]\d* record\(s\)", output)
    given_up = [
        d for d in lonescale_sandbox.control.admin("deliveries")["deliveries"] if d["outcome"] != "delivered"
    ]
    assert not given_up, "every delivery found the webhook listening"
    store = Store(f"sqlite:///{config.parent / 'state.db'}")
    try:
        assert {j.status.value for j in store.jobs.find("sf")} == {"applied"}
    finally:
        store.close()


def test_sync_wait_whose_every_record_the_crm_rejects_does_not_exit_0(
    config: Path, salesforce_sandbox: Served
) -> None:
    salesforce_sandbox.control.configure(lock_row_share=1.0)  # every row locked by other jobs, on every try

    code, output = cli("sync", "sf", "--config", str(config), "--wait", "--timeout", "60")

    assert code == 1, output
    assert re.search(
        r"sf: wrote 0 field\(s\) on 0 record\(s\); the CRM rejected [1-9]\d* record\(s\)", output
    )
    assert "the CRM rejected every record (see `lonescale-sync failures`)" in output


def test_the_run_a_sync_wait_printed_is_the_one_rollback_and_history_follow(config: Path) -> None:
    """One cycle, one run id: the write-back passes of `sync --wait` are not runs of their own to its user."""
    code, output = cli("sync", "sf", "--config", str(config), "--wait", "--timeout", "60")
    assert code == 0, output
    match = re.search(r"sf: succeeded \(run (\d+)\)", output)
    assert match, output
    run = match.group(1)
    store = Store(f"sqlite:///{config.parent / 'state.db'}")
    try:
        (record_id, *_) = {e.record_id for e in store.journal.for_run(int(run)) if e.outcome == "written"}
    finally:
        store.close()

    code, history = cli("history", record_id, "--config", str(config))
    assert code == 0 and re.search(rf"│ {run}\s+│", history), history

    code, rolled = cli("rollback", "--run", run, "--config", str(config))
    assert code == 0, rolled
    assert re.search(r"restored [1-9]\d* field\(s\)", rolled), rolled


def test_sync_names_the_instances_it_knows(config: Path) -> None:
    code, output = cli("sync", "nope", "--config", str(config))
    assert code == 2 and "known: sf, hs" in output


def test_the_daemon_syncs_on_schedule_and_stops_cleanly_on_sigterm(config: Path) -> None:
    cli("check", "--config", str(config), "--create-missing")
    process = subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "run", "--config", str(config)],
        env={**os.environ, **ENV},
        stderr=subprocess.PIPE,
        text=True,
    )
    store = Store(f"sqlite:///{config.parent / 'state.db'}")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            written = [store.journal.counts(name).get("written", 0) for name in ("sf", "hs")]
            if all(written):
                break
            time.sleep(0.5)
        assert all(written), f"both instances wrote back: {written}"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert process.stderr is not None
        log = process.stderr.read()
        assert "received SIGTERM" in log and "stopped cleanly" in log
        assert credentials.LONESCALE_API_KEY not in log and credentials.HUBSPOT_TOKEN not in log
    finally:
        store.close()
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_dry_run_shows_the_custom_each_request_would_carry_and_sends_nothing(
    config: Path, tmp_path: Path, lonescale_sandbox: Served
) -> None:
    text = config.read_text().replace(
        'enrichment_type = ["email", "phone", "profile"]',
        'enrichment_type = ["email", "phone", "profile"]\ncustom = { provider = "lonescale", batch = "nightly" }',
    )
    config.write_text(
        text.replace(
            "[instances.salesforce]",
            '[instances.lonescale]\ncustom = { enrichment_type = "phone" }\n\n[instances.salesforce]',
        )
    )
    plan = tmp_path / "plan.json"

    code, output = cli("sync", "sf", "--config", str(config), "--dry-run", "--output", str(plan))

    shown = '{"provider": "lonescale", "batch": "nightly", "enrichment_type": "phone", "id": "<its job id>"}'
    assert code == 0 and f"  each request's custom: {shown}\n" in output
    assert f"each request's custom: {shown}" in [row["what"] for row in json.loads(plan.read_text())]
    assert lonescale_sandbox.control.admin("jobs")["jobs"] == [], "a dry run sends nothing"


def test_a_dry_run_warns_when_the_balance_or_a_cap_would_stop_the_real_run(
    config: Path, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(enrichment_credits=50)
    result = CliRunner().invoke(main, ["sync", "sf", "--config", str(config), "--dry-run"], env=ENV)
    assert result.exit_code == 0, result.output
    projected = float(
        re.search(r"projected credits \(if everything is found\): (\S+) of 50 left", result.stdout)[1]
    )  # type: ignore[index]
    assert projected > 50
    assert f"warning: the projected cost ({projected:g} credits) exceeds the balance (50)" in result.stderr
    assert "would stop early" not in result.stderr, "no cap was met"

    config.write_text(
        config.read_text().replace(
            'schedule = "every 1h"', 'schedule = "every 1h"\nbudget = { max_contacts_per_run = 5 }'
        )
    )
    result = CliRunner().invoke(main, ["sync", "sf", "--config", str(config), "--dry-run"], env=ENV)
    assert "would send 5" in result.stdout
    assert "warning: the run would stop early: cap reached after 5 contacts" in result.stderr
    assert lonescale_sandbox.control.admin("jobs")["jobs"] == [], "a dry run sends nothing"


def test_a_dry_run_on_a_new_org_says_why_it_would_stop_without_a_balance_to_show(
    new_org_config: Path,
) -> None:
    code, output = cli("sync", "sf", "--config", str(new_org_config), "--dry-run")
    assert code == 0 and "Traceback" not in output
    assert "projected credits (if everything is found): 0 of an unread balance" in output
    assert "stopped: " in output and "Job_Change_Detected__c" in output, "the pre-flight's reason"


def test_the_review_commands_show_and_export_what_they_find(config: Path, tmp_path: Path) -> None:
    code, output = cli(
        "sync", "sf", "--config", str(config), "--dry-run", "--output", str(tmp_path / "plan.json")
    )
    assert code == 0 and "(dry run, nothing sent or written)" in output and "projected credits" in output
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert (
        any(row["what"].startswith("send for ") for row in plan) and plan[-1]["what"] == "projected credits"
    )

    assert cli("sync", "sf", "--config", str(config), "--wait", "--timeout", "60")[0] == 0
    store = Store(f"sqlite:///{config.parent / 'state.db'}")
    apply_run = next(r["id"] for r in store.runs.recent("sf") if r["kind"] == "apply")
    record = store.journal.for_run(apply_run)[0].record_id
    store.close()

    code, output = cli("history", record, "--config", str(config))
    assert code == 0 and f"history of {record}" in output and "written" in output
    code, output = cli("history", record, "--json", "--config", str(config))
    rows = json.loads(output)
    assert code == 0 and rows and all(row["record_id"] == record for row in rows)
    assert {"written", "rejected"} >= {row["outcome"] for row in rows} and rows[0]["written_at"].endswith(
        "+00:00"
    )

    code, output = cli("rollback", "--run", str(apply_run), "--config", str(config), "--dry-run",
                       "--output", str(tmp_path / "rollback.csv"))  # fmt: skip
    assert code == 0 and "(dry run)" in output
    with (tmp_path / "rollback.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows and set(rows[0]) >= {"record_id", "field", "current", "proposed", "write", "reason"}
    assert {row["reason"] for row in rows} == {"restored"}, (
        "nobody edited since: everything would be restored"
    )

    code, output = cli("failures", "--config", str(config))
    assert code == 0 and "failures: nothing" in output
    assert cli("rollback", "--run", "999", "--config", str(config))[1].strip().endswith("there is no run 999")
