"""`lonescale-sync serve`: a webhook receiver in its own process, keeping nothing but what it stores, so that
receivers can be added, restarted or stopped while another process writes back."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from connector.models import JobStatus
from connector.store import Store
from tests.conftest import Served
from tests.support import SANDBOX_ENV, create_status_fields
from tests.test_commands import cli, write_config

ROOT = Path(__file__).resolve().parent.parent


def receiver(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen([sys.executable, "-m", "connector.cli", "serve", "--config", str(config)],
                                env={**os.environ, **SANDBOX_ENV}, cwd=config.parent, stderr=sink,
                                stdout=subprocess.DEVNULL)  # fmt: skip


def listening(config: Path) -> str:
    port = re.search(r'listen = "127\.0\.0\.1:(\d+)"', config.read_text()).group(1)  # type: ignore[union-attr]
    return f"http://127.0.0.1:{port}"


def test_a_receiver_stores_what_a_sync_bought_and_another_process_writes_it_back(
    tmp_path: Path,
    store_url: str,
    lonescale_sandbox: Served,
    salesforce_sandbox: Served,
    hubspot_sandbox: Served,
) -> None:
    create_status_fields(salesforce_sandbox)
    lonescale_sandbox.control.configure(webhook_delay_seconds=0.2)
    config = write_config(tmp_path, lonescale_sandbox.url, salesforce_sandbox.url, hubspot_sandbox.url)
    config.write_text(config.read_text().replace('url = "sqlite:///state.db"', f'url = "{store_url}"'))
    base, log = listening(config), tmp_path / "receiver.log"
    process = receiver(config, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)

        code, output = cli("sync", "sf", "--config", str(config))  # no --wait: this process serves nothing
        assert code == 0, output
        store = Store(store_url)
        try:
            sent = store.jobs.find("sf", [JobStatus.SENT])
            assert sent, output
            deadline = time.monotonic() + 60
            while not all(store.inbox.of_job(job.id) for job in sent):
                assert time.monotonic() < deadline, "the receiver stored every job's results"
                time.sleep(0.05)
        finally:
            store.close()

        code, output = cli("apply", "--config", str(config))
        assert code == 0, output
        written = re.search(r"wrote (\d+) field\(s\)", output)
        assert written and int(written.group(1)) > 0, output
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
    assert log.read_text().rstrip().endswith("stopped cleanly"), log.read_text()[-500:]


def test_a_listen_address_that_is_not_host_port_is_refused_with_an_example(tmp_path: Path) -> None:
    code, output = cli("serve", "--config", str(tmp_path / "none.toml"), "--listen", "8080")
    assert code == 2 and "'8080' is not host:port, e.g. 0.0.0.0:8080" in output
