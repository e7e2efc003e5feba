"""The daemon's write-back (`Runtime.apply`, on its 2-second tick): a backlog of several passes is written in
one run, each next pass read while this one writes; once the daemon is stopping, one pass and no more."""

from __future__ import annotations

import time

from connector.runtime import QUIET, Runtime

# The fixture: a runtime on the sandboxes, its webhook serving.
from tests.test_metrics import runtime  # noqa: F401


def _delivered(running: Runtime, jobs: list[str]) -> None:
    """Until every job's results are stored, and arrivals have paused (the backlog is ready)."""
    deadline = time.monotonic() + 30
    while not all(running.store.inbox.of_job(job) for job in jobs):
        assert time.monotonic() < deadline, "the results did not arrive"
        time.sleep(0.05)
    time.sleep(QUIET.total_seconds() + 0.2)


def test_a_backlog_of_several_passes_is_written_in_one_run(runtime: Runtime) -> None:  # noqa: F811
    report = runtime.sync("sf")
    assert report.status == "succeeded" and report.sent >= 8, report.message
    _delivered(runtime, report.jobs)
    runtime.pass_contacts = 2

    applied = runtime.apply()

    assert applied.passes >= 4 and not applied.failures, applied.failures
    assert applied.records_written + applied.records_rejected == report.sent
    assert runtime.store.inbox.backlog()[0] == 0, "nothing left for the next tick"


def test_once_the_daemon_is_stopping_a_write_back_ends_after_its_pass(runtime: Runtime) -> None:  # noqa: F811
    report = runtime.sync("sf")
    assert report.status == "succeeded" and report.sent >= 8, report.message
    _delivered(runtime, report.jobs)
    runtime.pass_contacts = 2
    runtime.stopping.set()

    applied = runtime.apply()

    assert applied.passes == 1 and applied.records_written + applied.records_rejected <= 2
    assert runtime.store.inbox.backlog()[0] > 0, "the rest waits for the next start"
