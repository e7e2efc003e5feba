"""The sandbox in its own process: `python -m connector.cli sandbox`, its key=value lines, its CPU apart."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx

from connector.sandbox.control import SandboxControl
from connector.sandbox.salesforce.org import CONNECTOR_STATUS_FIELDS

ENDPOINT_KEYS = ("hubspot", "salesforce", "lonescale", "salesforce_private_key_path")
START_TIMEOUT = 600.0  # seeding 200,000 contacts takes a while on a small machine


@dataclass
class SandboxProcess:
    """`lonescale-sync sandbox` as a child process; emulators steered through their admin routes."""

    contacts: int
    seed: int = 1
    relaxed: bool = True
    endpoints: dict[str, str] = field(default_factory=dict)
    _process: subprocess.Popen[bytes] | None = None
    _stderr: Any = None
    _controls: dict[str, SandboxControl] = field(default_factory=dict)

    def start(self) -> dict[str, str]:
        command = [sys.executable, "-m", "connector.cli", "sandbox", "--contacts", str(self.contacts),
                   "--seed", str(self.seed)]  # fmt: skip
        if self.relaxed:
            command.append("--relaxed")
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._stderr)
        assert self._process.stdout is not None
        deadline, buffer = time.monotonic() + START_TIMEOUT, b""
        while not all(key in self.endpoints for key in ENDPOINT_KEYS):
            if self._process.poll() is not None:
                self._stderr.seek(0)
                raise RuntimeError(
                    f"the sandbox exited: {self._stderr.read()[-2000:].decode(errors='replace')}"
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"the sandbox did not start within {START_TIMEOUT:.0f} s")
            ready, _, _ = select.select([self._process.stdout], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(self._process.stdout.fileno(), 65536)
            buffer += chunk
            *lines, rest = buffer.split(b"\n")
            buffer = rest
            for line in lines:
                key, sep, value = line.decode().strip().partition("=")
                if sep:
                    self.endpoints[key] = value
        for name in ("hubspot", "salesforce", "lonescale"):
            self._controls[name] = SandboxControl(self.endpoints[name], timeout=300.0)
        return self.endpoints

    def control(self, name: str) -> SandboxControl:
        return self._controls[name]

    def cpu_seconds(self) -> float:
        """The sandbox process's own CPU (all three emulators share the process)."""
        stats = httpx.get(f"{self.endpoints['lonescale']}/__sandbox/stats", timeout=60.0)
        stats.raise_for_status()
        return float(stats.json()["process_cpu_seconds"])

    def reset(self, contacts: int, **lonescale: Any) -> None:
        """Every emulator back to seeded data with `contacts` records; credits unlimited for benchmarks."""
        for name in ("hubspot", "salesforce", "lonescale"):
            self._controls[name].reset(contacts=contacts, seed=self.seed)
        for sobject in ("Contact", "Lead"):  # as the org's admin creates them in Setup, before the first sync
            self._controls["salesforce"].create_fields(sobject, CONNECTOR_STATUS_FIELDS)
        self._controls["lonescale"].admin_post("credits", {"enrichment_credits": 10**12})
        # The kind reading the figures rest on, named: LoneScale echoes each contact's `custom`, so jobs hold
        # `batch_size` contacts whatever they ask for (without it, phone and email lookups go one contact per
        # job: connector.batching). BENCHMARKS.md says so beside the figures.
        self._controls["lonescale"].configure(echo_custom=True, **lonescale)
        self.contacts = contacts

    def stop(self) -> None:
        for control in self._controls.values():
            control.close()
        self._controls.clear()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        if self._process is not None and self._process.stdout is not None:
            self._process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()

    def __enter__(self) -> SandboxProcess:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
