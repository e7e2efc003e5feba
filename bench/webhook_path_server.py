"""The server child of bench/webhook_path.py: the real webhook app and store, its CPU measured in phases.

`python -m bench.webhook_path_server --db D --jobs J.json [--http h11|httptools] [--json stdlib|orjson]`
creates the jobs of J.json in a SQLite store at D (status sent, as a sync leaves them), serves
`connector.webhook.create_app` on `ThreadedServer`, prints `{"url": ...}`, then obeys one command a line on
stdin, each answered by one JSON line on stdout:

- `start`: the receive phase begins (CPU counted from here);
- `stop`: it ends; answers this process's CPU seconds (all threads: getrusage), the inbox's count;
- `apply <endpoints JSON>`: stops the server, then runs `apply_results` pass after pass over the stored
  deliveries against the sandbox's CRM, as the daemon does; answers its CPU seconds and what it wrote.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import resource
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from connector.models import JobStatus
from connector.serving import ThreadedServer
from connector.store import Job, JobContact, Store, schema, sha256
from connector.webhook import create_app


def cpu_seconds() -> float:
    """This process's CPU, user and system, all its threads (the event loop's, the store's workers)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def use_stdlib_json() -> None:
    """The variant without orjson: `connector.jsoncodec` swapped for the standard library, as it was before
    (a measurement's switch in this child only; the product has no such switch)."""
    from connector import jsoncodec

    def loads(data: bytes | str, parse_constant: Callable[[str], Any] | None = None) -> Any:
        return json.loads(data, parse_constant=parse_constant)

    def dumps(value: Any) -> bytes:  # starlette's JSONResponse.render
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()

    jsoncodec.loads, jsoncodec.dumps = loads, dumps  # type: ignore[assignment]


def create_jobs(store: Store, spec: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    run_id = store.runs.start(spec["instance"], "sync")  # a job belongs to a run
    for job in spec["jobs"]:
        contacts = [
            JobContact(job["id"], c["record_id"], c["object"], c["sent"], c["pulled"])
            for c in job["contacts"]
        ]
        record = Job(job["id"], spec["instance"], run_id, sha256(job["token"]), None, JobStatus.SENT,
                     spec["types"], len(contacts), now, now, now + timedelta(hours=1), None)  # fmt: skip
        store.jobs.create(record, contacts)


def inbox_counts(store: Store) -> dict[str, int]:
    inbox = schema.inbox
    with store.database.engine.connect() as db:
        rows = db.execute(select(inbox.c.status, func.count()).group_by(inbox.c.status)).all()
    return {str(status): int(count) for status, count in rows}


def apply_all(store: Store, crm: str, endpoints: dict[str, str], max_passes: int, profile: bool = False,
              ) -> dict[str, Any]:  # fmt: skip
    """`apply_results` as the daemon calls it, pass after pass until the inbox is drained; CPU of the passes
    alone (the instance is built, and HubSpot's status fields created, before). `profile`: under cProfile
    (its CPU then inflated), with the top functions by own time."""
    from bench.measures import hot_spots
    from bench.pipeline import build_instance, drain

    instance = build_instance(crm, endpoints)
    profiler = cProfile.Profile(time.thread_time) if profile else None  # this thread's CPU, not its waits
    try:
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        report, passes = drain({instance.name: instance}, store, max_passes)
        if profiler is not None:
            profiler.disable()
        cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
    finally:
        instance.adapter.close()
    spots = {} if profiler is None else {"hot_spots": hot_spots(profiler, 25),
                                         "hot_spots_cumulative": hot_spots(profiler, 25, "cumulative", True)}  # fmt: skip
    return {
        **spots,
        "cpu_seconds": round(cpu, 3),
        "wall_seconds": round(wall, 3),
        "passes": passes,
        "deliveries": report.deliveries,
        "results": report.results,
        "records_written": report.records_written,
        "records_rejected": report.records_rejected,
        "failures": report.failures[:5],
        "inbox": inbox_counts(store),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_path_server")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--jobs", type=Path, required=True)
    parser.add_argument("--http", default="auto", choices=["auto", "h11", "httptools"])
    parser.add_argument("--json", default="orjson", choices=["stdlib", "orjson"])
    args = parser.parse_args(argv)
    if args.json == "stdlib":
        use_stdlib_json()
    spec = json.loads(args.jobs.read_text())
    store = Store(f"sqlite:///{args.db}")  # the daemon's default store
    create_jobs(store, spec)
    server = ThreadedServer(create_app(store), name="bench-webhook", http=args.http)
    running = True

    def say(figures: dict[str, Any]) -> None:
        print(json.dumps(figures), flush=True)

    try:
        say({"url": server.start()})
        cpu0 = cpu_seconds()
        for line in sys.stdin:
            command, _, rest = line.strip().partition(" ")
            if command == "start":
                cpu0 = cpu_seconds()
                say({"started": True})
            elif command == "stop":
                say({"cpu_seconds": round(cpu_seconds() - cpu0, 3), "inbox": inbox_counts(store)})
            elif command == "apply":
                server.stop()
                running = False
                options = json.loads(rest)
                say(apply_all(store, options["crm"], options["endpoints"], options["max_passes"],
                              options.get("profile", False)))  # fmt: skip
            elif command == "quit":
                break
    finally:
        if running:
            server.stop()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
