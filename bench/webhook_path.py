"""Issue 14: the connector's CPU per per-contact webhook delivery — received, stored, then applied — apart from
the sender's.

One process serves the real webhook app on the real store (bench/webhook_path_server.py: SQLite in a temp
dir, the daemon's default; jobs of 100 contacts prepared, status sent); another posts the deliveries
(bench/webhook_path_load.py: prebuilt requests on keep-alive sockets), one contact per body in LoneScale's
documented shape, each body distinct. The server's own CPU (all its threads) over the load gives the cost of
receive + store; then the same process applies what it stored against the sandbox's CRM, pass after pass,
and its CPU over the passes gives the cost of apply. Variants without httptools (uvicorn's h11) and without
orjson (the stdlib's json) say what each fast part saves.
"""

from __future__ import annotations

import json
import secrets
import select
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.pipeline import TYPES, build_instance
from bench.sandbox import SandboxProcess
from connector.adapters.base import Window
from connector.mapping import Mapped, to_contact
from connector.sandbox.lonescale.behaviour import LoneScaleBehaviour
from connector.sandbox.lonescale.fakes import look_up
from connector.sandbox.lonescale.payloads import camel_fields, with_custom

ROOT = Path(__file__).resolve().parent.parent
CONTACTS_PER_JOB = 100
TARGET_CPU_MS, TARGET_RATE, TARGET_P99_MS = 0.3, 3000, 50.0
CHILD_TIMEOUT = 600.0
# (http, json) measured beside the main run, receive + store only: each without one fast part.
VARIANTS: tuple[tuple[str, str], ...] = (("h11", "orjson"), ("httptools", "stdlib"), ("h11", "stdlib"))


# ------------------------------------------------------------------------------------------ preparing
def prepare(
    sandbox: SandboxProcess, crm: str, deliveries: int, seed: int
) -> tuple[dict[str, Any], list[bytes]]:
    """The sandbox seeded with `deliveries` contacts, pulled as a sync pulls them; jobs of 100 of them (the
    spec the server child creates) and, per contact, the body LoneScale's sandbox would POST for it."""
    sandbox.reset(deliveries + deliveries // 10 + 10)  # a few seeded contacts have no name to send
    instance = build_instance(crm, sandbox.endpoints)
    try:
        fields = instance.mapping.read_fields()
        unique = instance.adapter.unique_field
        if unique and unique not in fields:
            fields = [*fields, unique]
        window = Window(datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(days=1))
        records = list(instance.adapter.pull_changed(window, fields))
    finally:
        instance.adapter.close()
    write_fields = [rule.field for rule in instance.mapping.write_back]
    behaviour = LoneScaleBehaviour()
    shares = {name: getattr(behaviour, name) for name in (
        "not_found_share", "email_miss_share", "phone_miss_share", "job_change_share", "job_change_unknown_share")}  # fmt: skip
    requested = {t.value for t in TYPES}
    contacts, bodies = [], []
    for record in records:
        mapped = to_contact(instance.mapping, record)
        if not isinstance(mapped, Mapped):
            continue
        sent = mapped.contact.to_request()
        contacts.append({"record_id": record.ref.id, "object": record.ref.object, "sent": sent,
                         "pulled": {name: record.get(name) for name in write_fields}})  # fmt: skip
        lookup = look_up(sent, seed, **shares)
        hits = set(requested) if lookup.found else set()
        if lookup.email_status is None:
            hits.discard("email")
        if not lookup.phones:
            hits.discard("phone")
        fields_found = camel_fields(lookup, requested, hits, False, {})
        bodies.append(json.dumps(with_custom(fields_found, sent, True)).encode())
        if len(contacts) == deliveries:
            break
    jobs = []
    for start in range(0, len(contacts), CONTACTS_PER_JOB):
        jobs.append({"id": str(uuid.uuid4()), "token": secrets.token_urlsafe(32),
                     "contacts": contacts[start : start + CONTACTS_PER_JOB]})  # fmt: skip
    spec = {"instance": instance.name, "types": sorted(requested), "jobs": jobs}
    return spec, bodies


def requests_of(spec: dict[str, Any], bodies: Sequence[bytes]) -> list[tuple[str, str]]:
    """(path, body) per delivery, jobs interleaved as LoneScale finishes them: one body per contact."""
    paths = [
        f"/webhooks/lonescale/{job['id']}?token={job['token']}"
        for job in spec["jobs"]
        for _ in job["contacts"]
    ]
    return [(path, body.decode()) for path, body in zip(paths, bodies, strict=True)]


# ---------------------------------------------------------------------------------------- the children
class ServerChild:
    """bench/webhook_path_server.py, steered a command a line; each answer is a JSON line."""

    def __init__(self, directory: Path, jobs: Path, http: str, codec: str, tag: str):
        command = [sys.executable, "-m", "bench.webhook_path_server", "--db", str(directory / f"{tag}.db"),
                   "--jobs", str(jobs), "--http", http, "--json", codec]  # fmt: skip
        self._log = directory / f"{tag}.log"
        self._errors = self._log.open("wb")
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self._errors, cwd=ROOT)  # fmt: skip
        self.url = str(self.read()["url"])

    def read(self, timeout: float = CHILD_TIMEOUT) -> dict[str, Any]:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else b""
        if not line:
            raise RuntimeError(
                f"the webhook server child failed: {self._log.read_text(errors='replace')[-3000:]}"
            )
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask(self, command: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")
        self.process.stdin.flush()
        return self.read()

    def close(self) -> None:
        try:
            if self.process.poll() is None and self.process.stdin is not None:
                self.process.stdin.close()
                self.process.wait(30)
        except subprocess.TimeoutExpired:
            pass
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(10)
            self._errors.close()


def run_load(url: str, requests: Path, concurrency: int) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.webhook_path_load", "--url", url, "--requests", str(requests),
         "--concurrency", str(concurrency)],
        capture_output=True, timeout=CHILD_TIMEOUT, check=False, cwd=ROOT,
    )  # fmt: skip
    if completed.returncode != 0:
        raise RuntimeError(f"the load child failed: {completed.stderr.decode(errors='replace')[-3000:]}")
    figures: dict[str, Any] = json.loads(completed.stdout.decode().strip().splitlines()[-1])
    return figures


def receive(server: ServerChild, requests: Path, deliveries: int, concurrency: int) -> dict[str, Any]:
    """One load against a fresh server: rate, latencies, statuses, the server's CPU per delivery."""
    server.ask("start")
    load = run_load(server.url, requests, concurrency)
    ended = server.ask("stop")
    answered_2xx = sum(n for status, n in load["statuses"].items() if status.startswith("2"))
    stored = sum(ended["inbox"].values())
    elapsed = load["elapsed_seconds"]
    return {
        **load,
        "deliveries_per_second": round(load["answered"] / elapsed, 1) if elapsed else None,
        "answered_2xx": answered_2xx,
        "stored": stored,
        "stored_new": ended["inbox"].get("new", 0),
        "stored_matches_2xx": stored == answered_2xx == deliveries,
        "server_cpu_seconds": ended["cpu_seconds"],
        "server_cpu_ms_per_delivery": round(ended["cpu_seconds"] * 1000 / deliveries, 4),
        "client_cpu_ms_per_delivery": round(load["client_cpu_seconds"] * 1000 / deliveries, 4),
    }


def parse_cost(bodies: Sequence[bytes]) -> dict[str, float]:
    """µs per delivery of `parse_payload` on these bodies, stdlib json vs orjson (what apply re-parses)."""
    from connector import jsoncodec
    from connector.lonescale import parse_payload

    figures = {}
    fast = jsoncodec.loads
    for name, loads in (("stdlib", lambda data, parse_constant=None: json.loads(data)), ("orjson", fast)):
        jsoncodec.loads = loads  # type: ignore[assignment]
        try:
            started = time.process_time()
            for body in bodies:
                parse_payload(body)
            figures[name] = round((time.process_time() - started) * 1e6 / max(1, len(bodies)), 2)
        finally:
            jsoncodec.loads = fast
    return figures


# ----------------------------------------------------------------------------------------- the measure
def measure_webhook_path(
    deliveries: int = 20_000,
    concurrency: int = 32,
    *,
    crm: str = "hubspot",
    http: str = "httptools",
    codec: str = "orjson",
    variants: Sequence[tuple[str, str]] = VARIANTS,
    apply: bool = True,
    sandbox: SandboxProcess | None = None,
    seed: int = 1,
) -> dict[str, Any]:
    """Per-contact deliveries received + stored by the webhook's process, then applied by it; CPU per
    delivery of each apart and together, against issue 14's targets. `variants`: (http, json) pairs measured
    for receive + store beside the main (`http`, `codec`). `sandbox`: one already running (else started)."""
    own = sandbox is None
    sandbox = sandbox or SandboxProcess(contacts=10, seed=seed, relaxed=True)
    if own:
        sandbox.start()
    try:
        spec, bodies = prepare(sandbox, crm, deliveries, seed)
        deliveries = len(bodies)
        with tempfile.TemporaryDirectory(prefix="lonescale-bench-path-") as name:
            directory = Path(name)
            jobs, requests = directory / "jobs.json", directory / "requests.jsonl"
            jobs.write_text(json.dumps(spec))
            with requests.open("w", encoding="utf-8") as out:
                for item in requests_of(spec, bodies):
                    out.write(json.dumps(item) + "\n")
            server = ServerChild(directory, jobs, http, codec, "main")
            try:
                figures = {"receive": receive(server, requests, deliveries, concurrency)}
                if apply:
                    options = {
                        "crm": crm,
                        "endpoints": sandbox.endpoints,
                        "max_passes": deliveries // 100 + 20,
                    }
                    applied = server.ask(f"apply {json.dumps(options)}")
                    applied["cpu_ms_per_delivery"] = round(applied["cpu_seconds"] * 1000 / deliveries, 4)
                    figures["apply"] = applied
            finally:
                server.close()
            measured = []
            for index, (variant_http, variant_codec) in enumerate(variants):
                child = ServerChild(directory, jobs, variant_http, variant_codec, f"variant-{index}")
                try:
                    got = receive(child, requests, deliveries, concurrency)
                finally:
                    child.close()
                measured.append({"http": variant_http, "json": variant_codec, **{k: got[k] for k in (
                    "deliveries_per_second", "p50_ms", "p99_ms", "statuses", "stored_matches_2xx",
                    "server_cpu_ms_per_delivery")}})  # fmt: skip
    finally:
        if own:
            sandbox.stop()
    received = figures["receive"]
    total = received["server_cpu_ms_per_delivery"] + (
        figures["apply"]["cpu_ms_per_delivery"] if apply else 0.0
    )
    return {
        "deliveries": deliveries,
        "concurrency": concurrency,
        "crm": crm,
        "contacts_per_job": CONTACTS_PER_JOB,
        "jobs": len(spec["jobs"]),
        "http": http,
        "json": codec,
        **figures,
        "variants": measured,
        "parse_us_per_delivery": parse_cost(bodies),
        "total_cpu_ms_per_delivery": round(total, 4),
        "targets": {
            "cpu_ms_per_delivery": TARGET_CPU_MS,
            "deliveries_per_second": TARGET_RATE,
            "p99_ms": TARGET_P99_MS,
        },
        "meets": {
            "cpu": bool(apply) and total <= TARGET_CPU_MS,
            "rate": (received["deliveries_per_second"] or 0) >= TARGET_RATE,
            "p99": received["p99_ms"] < TARGET_P99_MS,
            "stored_before_2xx": received["stored_matches_2xx"],
        },
    }


if __name__ == "__main__":  # a quick look while developing: python -m bench.webhook_path [N] [C]
    arguments = [int(a) for a in sys.argv[1:3]]
    print(json.dumps(measure_webhook_path(*arguments), indent=2))
