"""`lonescale-sync run` stopped with SIGTERM while a sync is still posting jobs: the webhook stops last.

A relay in front of LoneScale slows every call, so the sync is still posting when the signal comes. The
running sync finishes, the webhook keeps serving, and the daemon waits (boundedly) for the results of the
jobs this run sent, so every delivery LoneScale makes, for the jobs posted before the signal and after it,
is answered 2xx and stored. LoneScale documents no webhook retries: a delivery to a closed port may be lost.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from connector.config import load_config
from connector.daemon import run_daemon
from connector.demo import free_port
from connector.models import JobStatus
from connector.runtime import Runtime
from connector.store import Store
from tests.conftest import Served
from tests.support import SANDBOX_ENV
from tests.test_crash_safety import Relay, cli

ROOT = Path(__file__).resolve().parent.parent
CONTACTS = 100
BATCH_SIZE = 10  # contacts per LoneScale job: several jobs, posted one after the other
TRIGGER_DELAY = 0.5  # seconds the relay holds each LoneScale call: the sync outlives the signal


@dataclass
class Daemon:
    config: Path
    store: Store
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "connector.cli", "run", "--config", str(self.config)],
                env={**os.environ, **SANDBOX_ENV},
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=sink,
            )

    def wait_until(self, what: str, condition: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process is None or self.process.poll() is None, f"the daemon exited before {what}"
            assert time.monotonic() < deadline, (
                f"timed out waiting for {what}\n{self.log.read_text()[-3000:]}"
            )
            time.sleep(0.02)


def write_config(directory: Path, lonescale: str, hubspot: str, drain_seconds: float) -> Path:
    path = directory / "lonescale-sync.toml"
    path.write_text(f"""
[lonescale]
base_url = "{lonescale}"
api_key_env = "LS_KEY"
enrichment_type = ["email", "phone"]
batch_size = {BATCH_SIZE}

[webhook]
listen = "127.0.0.1:{free_port()}"
drain_seconds = {drain_seconds}

[status]  # the status page beside the daemon, on a port of its own
listen = "127.0.0.1:{free_port()}"

[store]
url = "sqlite:///{directory / "state.db"}"

[[instances]]
name = "hs"
crm = "hubspot"
mapping = "{ROOT / "mappings" / "hubspot-contacts.toml"}"
settle = "0s"
schedule = "every 1h"

[instances.hubspot]
base_url = "{hubspot}"
access_token_env = "HS_TOKEN"
""")
    return path


@pytest.fixture
def relay(lonescale_sandbox: Served) -> Iterator[Relay]:
    slow = Relay("lonescale", lonescale_sandbox.url, delay=TRIGGER_DELAY)
    yield slow
    slow.stop()


@pytest.fixture
def daemon(tmp_path: Path, relay: Relay, hubspot_sandbox: Served) -> Iterator[Daemon]:
    hubspot_sandbox.control.reset(contacts=CONTACTS, seed=7)
    config = write_config(tmp_path, relay.url, hubspot_sandbox.url, drain_seconds=60)
    code, output = cli("check", "--config", str(config), "--create-missing")
    assert code == 0, output
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    started = Daemon(config, store, tmp_path / "daemon.log")
    try:
        yield started
    finally:
        if started.process is not None and started.process.poll() is None:
            started.process.kill()
            started.process.wait()
        store.close()


def our_job(webhook_url: str) -> str:
    found = re.search(r"/webhooks/lonescale/([^/?]+)", webhook_url)
    assert found, webhook_url
    return found.group(1)


def test_jobs_posted_while_the_daemon_stops_have_their_results_answered_2xx_and_stored(
    daemon: Daemon, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(
        webhook_delay_seconds=0.2, delivery_backoff_seconds=0.05, delivery_max_attempts=3
    )
    emulator = lonescale_sandbox.emulator
    daemon.start()
    daemon.wait_until("LoneScale accepts the first job", lambda: len(emulator.state.book.jobs) >= 1)
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    assert daemon.process.wait(timeout=120) == 0, daemon.log.read_text()[-3000:]
    log = daemon.log.read_text()

    deadline = time.monotonic() + 30  # what LoneScale still had to send (nothing, if the drain waited for it)
    while not all(job.finished for job in emulator.state.book.jobs.values()) or emulator.deliverer.pending:
        assert time.monotonic() < deadline, "LoneScale's deliveries never settled"
        time.sleep(0.05)
    jobs = list(emulator.state.book.jobs.values())
    assert [job for job in jobs if job.accepted_at > signalled], "the sync went on posting after the signal"

    attempts = lonescale_sandbox.control.admin("deliveries")["deliveries"]
    failed = [
        (a["status"], a["error"], a["outcome"]) for a in attempts if not 200 <= (a["status"] or 0) < 300
    ]
    assert not failed, f"deliveries not answered 2xx: {failed[:5]}\n{log[-3000:]}"
    bodies = Counter(our_job(a["url"]) for a in attempts if not a["duplicate"])
    assert sorted(bodies) == sorted(our_job(job.request["webhook_url"]) for job in jobs), (
        "every job delivered"
    )
    stored = {job_id: len(daemon.store.inbox.of_job(job_id)) for job_id in bodies}
    assert stored == dict(bodies), "every delivery answered 2xx was stored"
    assert "the webhook still serving" in log and "stopped cleanly" in log


@pytest.fixture
def quiet_lonescale(tmp_path: Path, lonescale_sandbox: Served, hubspot_sandbox: Served) -> Served:
    """LoneScale takes jobs and never calls back; the HubSpot portal is ready (`check` is run here, not in
    the test: the CLI sets up logging afresh, which would drop the test's log capture)."""
    lonescale_sandbox.control.configure(webhook_missing_share=1.0)
    hubspot_sandbox.control.reset(contacts=5, seed=7)
    config = write_config(tmp_path, lonescale_sandbox.url, hubspot_sandbox.url, drain_seconds=0)
    code, output = cli("check", "--config", str(config), "--create-missing")
    assert code == 0, output
    return lonescale_sandbox


@pytest.mark.parametrize(
    ("drain_seconds", "said"),
    [
        (1, r"\d+ job\(s\) still await results after 1 s"),
        (0, r"\d+ job\(s\) sent by this run await results; drain_seconds = 0: not waiting"),
    ],
)
def test_the_wait_for_results_on_the_way_out_is_bounded_and_says_what_it_left(
    tmp_path: Path,
    quiet_lonescale: Served,
    hubspot_sandbox: Served,
    caplog: pytest.LogCaptureFixture,
    drain_seconds: float,
    said: str,
) -> None:
    caplog.set_level(logging.INFO, logger="connector")  # the demo's test sets it to WARNING: undo that here
    config = write_config(tmp_path, quiet_lonescale.url, hubspot_sandbox.url, drain_seconds)
    runtime, stop = Runtime(load_config(config, env=SANDBOX_ENV)), threading.Event()
    daemon = threading.Thread(target=run_daemon, args=(runtime, stop), name="daemon")
    daemon.start()
    try:
        deadline = time.monotonic() + 60
        while not runtime.store.jobs.find(statuses=[JobStatus.SENT]):
            assert daemon.is_alive() and time.monotonic() < deadline, "no job was ever sent"
            time.sleep(0.02)
        page = httpx.get(f"http://{runtime.config.settings.status.listen}/status", timeout=10)
        assert page.status_code == 200 and 'id="hs"' in page.text, "the daemon serves the status page"
    finally:
        stop.set()
        daemon.join(timeout=60)
    assert not daemon.is_alive(), "the daemon stopped though a job still awaits its results"
    with pytest.raises(httpx.ConnectError):  # it stopped with the webhook
        httpx.get(f"http://{runtime.config.settings.status.listen}/status", timeout=10)
    messages = [record.getMessage() for record in caplog.records if record.name.startswith("connector")]
    assert any(re.search(said, message) for message in messages), messages[-10:]
    assert messages[-1] == "stopped cleanly"
