"""Who holds each CRM call in flight: the connector names its process in every call's User-Agent, and the
emulators, shared by several instances, record a holder overlap when two processes have calls of one instance
in flight at once (the cluster's per-instance lock promises that never happens).

Each test makes one call from this process and, while it is being answered (the emulator's latency), one from
a second process (tests/call_holder.py), through the connector's adapters and the real SDKs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from connector.sandbox import credentials
from connector.sandbox.hubspot.app import token_key
from tests import call_holder
from tests.conftest import Served

ROOT = Path(__file__).resolve().parent.parent
LATENCY_MS = 1500  # this process's call is still being answered when the second process's call arrives
OWN = {
    "hubspot": (credentials.HUBSPOT_TOKEN,),
    "salesforce": (credentials.SALESFORCE_CLIENT_ID, credentials.SALESFORCE_CLIENT_SECRET),
}
OTHER = {  # a second instance on the same emulator: its own private app or connected app
    "hubspot": ("pat-na1-sandbox-second-instance-5a1f",),
    "salesforce": ("3MVG9sandbox.second.instance", "sandbox-second-secret-4e7c"),
}


def instance_key(crm: str, secrets: tuple[str, ...]) -> str:
    return token_key(secrets[0]) if crm == "hubspot" else secrets[0]


def served_for(crm: str, request: pytest.FixtureRequest) -> Served:
    served: Served = request.getfixturevalue(f"{crm}_sandbox")
    if crm == "hubspot":
        served.control.configure(more_tokens=[OTHER["hubspot"][0]])
    else:
        served.control.configure(more_connected_apps={OTHER["salesforce"][0]: OTHER["salesforce"][1]})
    return served


def calls_at_once(
    served: Served, crm: str, ours: tuple[str, ...], theirs: tuple[str, ...]
) -> tuple[dict[str, Any], int]:
    """One call from here and one from a second process while ours is in flight; the emulator's view, and the
    second process's pid."""
    adapter = call_holder.adapter(crm, served.url, *ours)
    adapter.check()  # Salesforce logs in here: the token endpoint is no instance's call
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.call_holder", crm, served.url, *theirs],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "ready"
        served.control.configure(latency_ms=LATENCY_MS)
        served.control.clear_stats()
        with ThreadPoolExecutor(1) as pool:
            ours_call = pool.submit(adapter.check)
            waited = 0
            while served.control.concurrency()["in_flight"] == 0:  # our call has reached the emulator
                assert waited < 1000, "our call never reached the emulator"
                time.sleep(0.01)
                waited += 1
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "done"
            ours_call.result()
    finally:
        child.stdin.close()
        if child.wait(timeout=30) != 0:
            pytest.fail(f"the second process failed: exit {child.returncode}")
    return served.control.concurrency(), child.pid


@pytest.mark.parametrize("crm", ["hubspot", "salesforce"])
def test_two_processes_with_calls_of_one_instance_in_flight_at_once_are_a_holder_overlap(
    crm: str, request: pytest.FixtureRequest
) -> None:
    served = served_for(crm, request)

    seen, child_pid = calls_at_once(served, crm, OWN[crm], OWN[crm])

    assert seen["holder_overlap_count"] == 1, seen
    overlap = seen["holder_overlaps"][0]
    assert overlap["instance"] == instance_key(crm, OWN[crm])
    assert f"; pid {os.getpid()})" in overlap["running_holder"], "ours was in flight"
    assert f"; pid {child_pid})" in overlap["started_holder"], "the second process's began beside it"
    assert overlap["running"].startswith("GET ") and overlap["started"].startswith("GET ")


@pytest.mark.parametrize("crm", ["hubspot", "salesforce"])
def test_two_processes_at_once_on_two_instances_of_one_emulator_are_no_holder_overlap(
    crm: str, request: pytest.FixtureRequest
) -> None:
    served = served_for(crm, request)

    seen, child_pid = calls_at_once(served, crm, OWN[crm], OTHER[crm])

    assert seen["overlap_count"] == 1, "the two calls were in flight at once on the emulator"
    assert seen["holder_overlap_count"] == 0, seen["holder_overlaps"]
    holders = seen["holders"]
    assert set(holders) == {instance_key(crm, OWN[crm]), instance_key(crm, OTHER[crm])}
    assert [f"; pid {os.getpid()})" in h for h in holders[instance_key(crm, OWN[crm])]] == [True]
    assert [f"; pid {child_pid})" in h for h in holders[instance_key(crm, OTHER[crm])]] == [True]


@pytest.mark.parametrize("crm", ["hubspot", "salesforce"])
def test_every_call_names_the_connector_its_host_and_process_and_the_sdk(
    crm: str, request: pytest.FixtureRequest
) -> None:
    served = served_for(crm, request)
    served.control.clear_stats()

    call_holder.adapter(crm, served.url, *OWN[crm]).check()

    [(instance, [holder])] = served.control.concurrency()["holders"].items()
    assert instance == instance_key(crm, OWN[crm])
    assert holder.startswith("lonescale-sync/") and f"; pid {os.getpid()}) " in holder
    sdk = "hubspot-api-client-python; " if crm == "hubspot" else "python-requests/"
    assert holder.split(") ", 1)[1].startswith(sdk), "the SDK's own User-Agent comes last"


def test_the_stats_name_a_hubspot_instance_by_a_digest_never_by_its_token(
    request: pytest.FixtureRequest,
) -> None:
    served = served_for("hubspot", request)

    seen, _ = calls_at_once(served, "hubspot", OWN["hubspot"], OWN["hubspot"])

    assert seen["holder_overlap_count"] == 1
    assert credentials.HUBSPOT_TOKEN not in json.dumps(seen)
