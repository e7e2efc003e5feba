"""A kill while LoneScale's answer to a trigger is in flight, and a late restart, on each CRM.

LoneScale took the job, ran it and billed it; we never learned its id. While the daemon was down its webhooks
failed and were given up. The restarted daemon finds the job `pending` (stored, maybe posted): it is
uncertain, with nothing to poll it by. Past its grace it is expired into `failures`, its contacts kept in
cooldown: when those records change again, the next sync still does not buy them a second time.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.lonescale import LoneScaleClient
from connector.models import JobStatus
from connector.overdue import GRACE, MAY_HAVE_BEEN_BILLED, settle_overdue
from connector.redact import Secret
from connector.sandbox import credentials
from connector.sender import JOB_DEADLINE
from connector.store import schema
from tests.conftest import Served
from tests.support import edit_as_a_person, hubspot_instance, wait_until_searchable
from tests.test_crash_safety import TRIGGER, Hold, World, cli, held, held_job, open_world

EDITED = {"sf": ("salesforce", "Department"), "hs": ("hubspot", "city")}  # a field no mapping reads or writes


def posted(world: World) -> Counter[str]:
    """How many times LoneScale was given each contact, from its own book."""
    return Counter(cid for job in world.lonescale.control.admin("jobs")["jobs"] for cid in job["contact_ids"])


def settled(world: World, held_job_id: str, after_run: int) -> bool:
    """The restarted daemon synced, and applied every result LoneScale delivered: only the held job waits."""
    if not world.lonescale_idle() or world.count(schema.inbox, schema.inbox.c.status == "new"):
        return False
    runs = world.rows(schema.runs, schema.runs.c.kind == "sync", schema.runs.c.id > after_run)
    contacts = schema.job_contacts
    waiting = world.count(contacts, contacts.c.status == "waiting", contacts.c.job_id != held_job_id)
    return any(run["status"] != "running" for run in runs) and not waiting


@pytest.mark.parametrize("name", ["sf", "hs"])
def test_a_job_whose_trigger_answer_a_kill_lost_is_never_bought_again_after_a_late_restart(
    tmp_path: Path, lonescale_sandbox: Served, salesforce_sandbox: Served, hubspot_sandbox: Served, name: str
) -> None:
    # One job must stand for many contacts, billed: jobs of BATCH_SIZE from the first run, and results that
    # carry each contact's `custom` back (the kind reading, by name) so the other jobs' results are matched.
    lonescale_sandbox.control.configure(echo_custom=True)
    with open_world(
        tmp_path, lonescale_sandbox, salesforce_sandbox, hubspot_sandbox, (name,), full_jobs=True
    ) as world:
        config = str(world.config)
        # A delivery that fails is gone: LoneScale documents no webhook retries (the unkind reading).
        world.lonescale.control.configure(delivery_max_attempts=1)
        world.relays["lonescale"].hold = Hold(*TRIGGER, forward=True)  # the first trigger: taken, answer held
        world.start()
        world.wait_until("LoneScale to take the first trigger", lambda: held("lonescale")(world), timeout=60)
        world.kill()
        job = held_job(world)
        [taken] = world.lonescale.control.admin("jobs")["jobs"]  # the sync waited on the held answer
        assert f"/webhooks/lonescale/{job}?" in taken["webhook_url"]
        contacts = set(taken["contact_ids"])

        # Down for long: LoneScale runs the job, bills it, and gives its webhooks up against the dead daemon.
        world.wait_until("LoneScale to give the deliveries up", world.lonescale_idle, timeout=60)
        attempts = world.lonescale.control.admin("deliveries", job_id=taken["id"])["deliveries"]
        assert len(attempts) == len(contacts) and {a["outcome"] for a in attempts} == {"gave_up"}
        [billed] = world.lonescale.control.admin("jobs")["jobs"]
        assert sum(billed["credits_charged"].values()) > 0, "LoneScale charged the job nobody heard of"
        for relay in world.relays.values():  # the held answer goes to a dead client
            relay.release.set()
            relay.hold = None
        world.lonescale.control.configure(delivery_max_attempts=20, delivery_backoff_seconds=0.05)

        before = world.last_run()
        world.start()  # the late restart: same config, store and webhook port
        world.wait_until("the restart to send and apply the rest", lambda: settled(world, job, before), 90)
        assert world.terminate() == 0, world.tail()
        stored = world.store.jobs.get(job)
        assert stored is not None and stored.status is JobStatus.UNCERTAIN and stored.lonescale_id is None
        code, output = cli("status", "--config", config)
        assert code == 0 and "uncertain 1" in output and "uncertain:   1 job(s) may have reached" in output

        client = LoneScaleClient(world.lonescale.url, Secret(credentials.LONESCALE_API_KEY))
        late = settle_overdue(
            world.store, client, now=lambda: datetime.now(UTC) + JOB_DEADLINE + GRACE + timedelta(minutes=1)
        )
        client.close()

        [(expired, reason)] = late.expired
        assert expired == job and late.polled == 0, "no id: nothing to poll, and nothing posted again"
        assert reason.startswith(MAY_HAVE_BEEN_BILLED) and reason.endswith(
            "the daemon stopped while posting it"
        )
        states = world.store.ledger.states(name, sorted(contacts))
        assert all(states[record]["types"] for record in contacts), (
            "it may have been billed: kept in cooldown"
        )
        code, output = cli("failures", "--config", config)
        assert code == 0 and "expired job" in output and f"job {job}: {len(contacts)} contact(s)" in output
        code, output = cli("status", "--config", config)
        assert code == 0 and f"no results:  1 job(s) expired and {MAY_HAVE_BEEN_BILLED}" in output
        code, output = cli("retry-failed", "--jobs", "--dry-run", "--config", config,
                           "--output", str(tmp_path / "resend.json"))  # fmt: skip
        assert code == 0 and f"would send {len(contacts)} contact(s) again: at most" in output, output
        assert f'{name}: each request\'s custom: {{"id": "<its job id>"}}' in output, output
        assert {row["record_id"] for row in json.loads((tmp_path / "resend.json").read_text())} == contacts

        # The records change again (a person's edit), so the next sync reads them: it does not buy them.
        crm, field = EDITED[name]
        for record in sorted(contacts):
            edit_as_a_person(salesforce_sandbox if crm == "salesforce" else hubspot_sandbox, crm, record,
                             {field: "Edited after the expiry"})  # fmt: skip
        if crm == "hubspot":  # its search shows the edits a little later, as HubSpot's does
            wait_until_searchable(hubspot_instance(hubspot_sandbox), sorted(contacts))
        code, output = cli("sync", name, "--config", config)
        assert code == 0, output
        cooling = re.search(r"in cooldown: (\d+)", output)
        assert cooling and int(cooling.group(1)) >= len(contacts), output

        twice = {contact: n for contact, n in posted(world).items() if n > 1}
        assert not twice, f"contacts LoneScale was given twice: {dict(list(twice.items())[:5])}"

        # A person who checked the bill sends them again, once, by naming the job.
        assert cli("retry-failed", "--job", job, "--config", config)[0] == 2, "--job goes with --jobs"
        code, output = cli("retry-failed", "--jobs", "--job", job, "--config", config)
        assert code == 0 and f"sent {len(contacts)} in 1 job(s)" in output, output
        code, output = cli("retry-failed", "--jobs", "--config", config)
        assert code == 0 and "chose to send 0 contact(s) again" in output, output
        assert {c: n for c, n in posted(world).items() if n > 1} == dict.fromkeys(contacts, 2)
