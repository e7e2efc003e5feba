"""A procrastinate worker in a process of its own, for tests/cluster/test_procrastinate_facts.py.

    python -m tests.cluster.facts_worker CONNINFO SCHEMA [--concurrency N] [--periodic] [--no-wait] ...

Every task notes what it does in the `fact_log` table of the test's schema (with the database's clock, so rows
written by several processes compare), because the facts are about what the worker did, not what it said.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import threading
import time
from typing import Any

import procrastinate
import psycopg

CONNECT_TIMEOUT = 5  # seconds; every connection these tests open has one


def connect(conninfo: str, schema: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        conninfo, options=f"-c search_path={schema}", connect_timeout=CONNECT_TIMEOUT, autocommit=True
    )


def note(conninfo: str, schema: str, label: str, event: str) -> None:
    with connect(conninfo, schema) as db:
        db.execute(
            "INSERT INTO fact_log (label, event, pid, thread, at) VALUES (%s, %s, %s, %s, clock_timestamp())",
            (label, event, os.getpid(), threading.current_thread().name),
        )


def seen(conninfo: str, schema: str, label: str, event: str) -> bool:
    with connect(conninfo, schema) as db:
        row = db.execute("SELECT 1 FROM fact_log WHERE label = %s AND event = %s", (label, event)).fetchone()
    return row is not None


def build_app(conninfo: str, schema: str, *, periodic: bool = False) -> procrastinate.App:
    """The app both sides use: the test defers with it (or with its SQL), the worker process runs it."""
    connector = procrastinate.PsycopgConnector(
        conninfo=conninfo,
        kwargs={"options": f"-c search_path={schema}", "connect_timeout": CONNECT_TIMEOUT},
        min_size=1,
        max_size=4,  # the PostgreSQL is shared with other test runs
    )
    app = procrastinate.App(connector=connector)

    @app.task(name="record")
    def record(label: str, wait_for: str | None = None, wait_seconds: float = 0.0) -> None:
        # A sync task: the worker runs it in a thread (asgiref sync_to_async), which `thread` shows.
        note(conninfo, schema, label, "start")
        if wait_for is not None:
            # Wait (bounded) for another job to start: it can only start meanwhile if nothing holds it back.
            deadline = time.monotonic() + wait_seconds
            while time.monotonic() < deadline:
                if seen(conninfo, schema, wait_for, "start"):
                    note(conninfo, schema, label, f"saw {wait_for}")
                    break
                time.sleep(0.05)
        note(conninfo, schema, label, "end")

    @app.task(name="hang")
    def hang(label: str) -> None:
        note(conninfo, schema, label, "start")
        time.sleep(600)  # until the test kills the process

    if periodic:

        @app.periodic(cron="* * * * * *")  # the optional sixth field: every second
        @app.task(name="tick")
        def tick(timestamp: int) -> None:
            note(conninfo, schema, f"tick {timestamp}", "start")

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("conninfo")
    parser.add_argument("schema")
    parser.add_argument("--name", default="facts")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--periodic", action="store_true")
    parser.add_argument("--no-wait", action="store_true", help="stop once the queue is empty")
    parser.add_argument("--heartbeat", type=float, default=10.0, help="update_heartbeat_interval")
    args = parser.parse_args()
    # The periodic deferrer says at DEBUG whether it deferred a tick or found it deferred already.
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(message)s")
    logging.getLogger("procrastinate.periodic").setLevel(logging.DEBUG)
    app = build_app(args.conninfo, args.schema, periodic=args.periodic)

    async def run() -> None:
        async with app.open_async():
            await app.run_worker_async(
                name=args.name,
                concurrency=args.concurrency,
                wait=not args.no_wait,
                # A job held back by a lock is fetched again only on a NOTIFY or at the next poll, not
                # when the lock frees (docs/procrastinate.md#listennotify-and-polling): poll often here.
                fetch_job_polling_interval=0.2,
                update_heartbeat_interval=args.heartbeat,
            )

    asyncio.run(run())


if __name__ == "__main__":
    main()
