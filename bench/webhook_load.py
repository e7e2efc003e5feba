"""Webhook ingest: the real webhook app in its own process (ThreadedServer), loaded from this one."""

from __future__ import annotations

import http.client
import json
import secrets
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from connector.models import JobStatus
from connector.serving import ThreadedServer
from connector.store import Job, JobContact, Store, sha256
from connector.webhook import create_app

CONTACTS_PER_PAYLOAD = 10
REQUEST_TIMEOUT = 30.0


def serve(db_path: Path, jobs: int) -> None:
    """The child: a store with `jobs` sent jobs of 10 contacts, the webhook app on ThreadedServer; prints one
    JSON line (url, jobs, tokens), serves until stdin closes, then prints its CPU seconds."""
    store = Store(f"sqlite:///{db_path}")
    now = datetime.now(UTC)
    run_id = store.runs.start("bench", "sync")  # a job belongs to a run
    listing = []
    for _ in range(jobs):
        job_id, token = str(uuid.uuid4()), secrets.token_urlsafe(32)
        ids = [f"rec-{uuid.uuid4().hex[:12]}" for _ in range(CONTACTS_PER_PAYLOAD)]
        job = Job(job_id, "bench", run_id, sha256(token), None, JobStatus.SENT, ["email"], len(ids), now, now,
                  now + timedelta(hours=1), None)  # fmt: skip
        store.jobs.create(
            job, [JobContact(job_id, i, "contacts", {"firstname": "A", "lastname": "B"}, {}) for i in ids]
        )
        listing.append({"id": job_id, "token": token, "records": ids})
    server = ThreadedServer(create_app(store), name="bench-webhook")
    url = server.start()
    cpu0 = time.process_time()
    print(json.dumps({"url": url, "jobs": listing}), flush=True)
    try:
        sys.stdin.read()  # the parent closes stdin to stop us
    finally:
        server.stop()
        cpu = time.process_time() - cpu0
        with store.database.engine.connect() as db:
            from sqlalchemy import func, select

            from connector.store import schema

            stored = int(db.execute(select(func.count()).select_from(schema.inbox)).scalar_one())
        store.close()
        print(json.dumps({"cpu_seconds": round(cpu, 3), "stored": stored}), flush=True)


def payload(job: dict[str, Any], sequence: int) -> bytes:
    """A per-contact list of 10 results, distinct per request (an identical body is a duplicate)."""
    items = [
        {
            "firstName": "Ada",
            "lastName": "Lovelace",
            "email": f"ada.{sequence}.{index}@example.com",
            "emailStatus": "valid",
            "jobTitle": f"Engineer {sequence}",
            "custom": {"contact_id": record},
        }
        for index, record in enumerate(job["records"])
    ]
    return json.dumps(items).encode()


def load(url: str, jobs: list[dict[str, Any]], posts: int, concurrency: int) -> dict[str, Any]:
    """`posts` POSTs from `concurrency` keep-alive connections; latency per request, statuses."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    counter = iter(range(posts))
    bodies = [payload(jobs[i % len(jobs)], i) for i in range(posts)]

    def worker() -> None:
        connection = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT)
        mine: list[float] = []
        seen: dict[int, int] = {}
        try:
            while True:
                with lock:
                    index = next(counter, None)
                if index is None:
                    break
                job = jobs[index % len(jobs)]
                path = f"/webhooks/lonescale/{job['id']}?token={job['token']}"
                started = time.perf_counter()
                connection.request(
                    "POST", path, body=bodies[index], headers={"content-type": "application/json"}
                )
                response = connection.getresponse()
                response.read()
                mine.append(time.perf_counter() - started)
                seen[response.status] = seen.get(response.status, 0) + 1
        finally:
            connection.close()
            with lock:
                latencies.extend(mine)
                for status, count in seen.items():
                    statuses[status] = statuses.get(status, 0) + count

    threads = [threading.Thread(target=worker, name=f"load-{i}", daemon=True) for i in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(REQUEST_TIMEOUT * posts)
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)

    def percentile(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")

    return {
        "posts": posts,
        "concurrency": concurrency,
        "elapsed_seconds": round(elapsed, 3),
        "payloads_per_second": round(len(latencies) / elapsed, 1) if elapsed else None,
        "p50_ms": round(percentile(0.50) * 1000, 2),
        "p99_ms": round(percentile(0.99) * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2) if ordered else None,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def measure_webhook_ingest(posts: int, concurrency: int = 16) -> dict[str, Any]:
    """Concurrent POSTs of 10-contact payloads to the webhook served by its own process."""
    # One payload per contact of each job at most: within a job's caps on deliveries (connector.webhook),
    # so every POST is stored, as a correct sender's would be.
    jobs = max(100, -(-posts // CONTACTS_PER_PAYLOAD))
    with tempfile.TemporaryDirectory(prefix="lonescale-bench-hook-") as directory:
        command = [sys.executable, "-m", "bench", "webhook-server", "--db", str(Path(directory) / "hook.db"),
                   "--jobs", str(jobs)]  # fmt: skip
        errors = (Path(directory) / "server.log").open("wb")
        child = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            cwd=Path(__file__).resolve().parent.parent,
        )
        try:
            assert child.stdout is not None and child.stdin is not None
            ready, _, _ = select.select([child.stdout], [], [], 120.0)
            line = child.stdout.readline() if ready else b""
            if not line:
                log = (Path(directory) / "server.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the webhook server did not start: {log}")
            started = json.loads(line)
            figures = load(started["url"], started["jobs"], posts, concurrency)
            child.stdin.close()
            ready, _, _ = select.select([child.stdout], [], [], 60.0)
            if ready:
                ended = json.loads(child.stdout.readline() or "{}")
                figures["server_cpu_seconds"] = ended.get("cpu_seconds")
                figures["stored"] = ended.get("stored")
            child.wait(30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(10)
            errors.close()
    return figures
