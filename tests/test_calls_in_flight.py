"""How many calls one CRM instance gets at once: the emulators watch every call in flight (one emulator is one
org or portal) and record each call that begins while another is still being answered.

One process pipelines its batch calls, IN_FLIGHT at a time (connector/adapters/base.py `two_at_a_time`: the
CRM works on one batch while we send or read the next); beyond that, one instance's sync and write-back never
run at once (the lease), so its calls never pile up further. The emulators also key each call by instance and
by the process named in its User-Agent: one process's pipelined calls are no holder overlap
(tests/test_call_holders.py has two processes)."""

from __future__ import annotations

import os

import pytest

from connector.adapters.base import IN_FLIGHT
from tests.conftest import Served
from tests.support import Pipeline, cycle, hubspot_instance, salesforce_instance


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_a_sync_and_its_write_back_keep_at_most_two_batch_calls_in_flight_on_one_crm(
    crm: str, pipeline: Pipeline, salesforce_sandbox: Served, hubspot_sandbox: Served
) -> None:
    served = salesforce_sandbox if crm == "salesforce" else hubspot_sandbox
    instance = salesforce_instance(served) if crm == "salesforce" else hubspot_instance(served)
    served.control.configure(latency_ms=5)  # each call takes a while: a third caller would be caught in it
    served.control.clear_stats()

    report, applied = cycle(pipeline, instance)

    assert report.pulled > 0 and applied.fields_written > 0, "the cycle pulled, sent and wrote"
    seen = served.control.concurrency()
    assert seen["overlap_count"] > 0, "the batch writes are pipelined: the CRM sees two at once"
    assert seen["most_in_flight"] == IN_FLIGHT, seen
    pairs = {(o["running"].split()[0], o["started"].split()[0]) for o in seen["overlaps"]}
    assert pairs <= {("PATCH", "PATCH"), ("POST", "POST"), ("GET", "GET")}, "only batches of one kind overlap"
    assert seen["holder_overlap_count"] == 0, (
        "one process: its own pipelined calls hold one instance together"
    )
    [(_, [holder])] = seen["holders"].items()
    assert f"; pid {os.getpid()})" in holder, "every call named this process"
