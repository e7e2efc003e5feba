"""A cluster's receiver: each delivery and its write-back wake-up commit in one transaction, before the 2xx; a
wake-up already waiting absorbs the next; without the wake-up nothing is stored and nothing acknowledged; the
tick wakes a write-back whose wake-up was lost; the sweeper ends a silent worker's wake-up and makes it again."""

from __future__ import annotations

import json
import os
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import create_engine, text

from connector.clock import SharedSyncTimes
from connector.cluster import QueueDispatcher, cluster_tick, purge_ended_wakeups, sweep
from connector.models import JobStatus
from connector.serving import ThreadedServer
from connector.store import Job, Store, sha256
from connector.store.queue_schema import upgrade_queue_schema
from connector.store.wakeups import wake_write_backs
from connector.webhook import create_app

POSTGRES = os.environ.get("LONESCALE_SYNC_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(
    not POSTGRES, reason="set LONESCALE_SYNC_TEST_POSTGRES_URL: wake-ups live in PostgreSQL"
)
pytest.importorskip("procrastinate", reason="procrastinate is the `cluster` extra")

RESULT = {"email": "zoe@acme.fr", "emailStatus": "valid", "custom": {"contact_id": "003A"}}


@pytest.fixture
def store() -> Iterator[Store]:
    assert POSTGRES
    schema = f"w_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES)
    with admin.begin() as db:
        db.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in POSTGRES else "?"
    opened = Store(f"{POSTGRES}{separator}options=-csearch_path%3D{schema}")
    upgrade_queue_schema(opened.database)
    yield opened
    opened.close()
    with admin.begin() as db:
        db.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def job_of(store: Store, instance: str) -> tuple[str, str]:
    token, job_id = secrets.token_urlsafe(24), str(uuid.uuid4())
    now = datetime.now(UTC)
    run_id = store.runs.start(instance, "sync")
    job = Job(
        job_id, instance, run_id, sha256(token), "ls-1", JobStatus.SENT, ["email"], 10, now, now, None, None
    )
    store.jobs.create(job, [])
    return job_id, token


@pytest.fixture
def receiver(store: Store) -> Iterator[str]:
    server = ThreadedServer(create_app(store, wake=wake_write_backs), name="webhook")
    yield server.start()
    server.stop()


def post(url: str, job_id: str, token: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{url}/webhooks/lonescale/{job_id}", params={"token": token}, content=json.dumps(body),
                      timeout=10)  # fmt: skip


def test_a_delivery_commits_with_its_write_back_wake_up_and_a_waiting_one_absorbs_the_next(
    store: Store, receiver: str
) -> None:
    acme, token = job_of(store, "acme")
    other, other_token = job_of(store, "globex")

    assert post(receiver, acme, token, RESULT).status_code == 200
    assert store.wakeups.waiting() == [("apply", "acme")]
    second = {**RESULT, "email": "zoe@acme.com"}
    assert post(receiver, acme, token, second).json()["message"] == "stored", "absorbed, not refused"
    assert post(receiver, other, other_token, RESULT).status_code == 200
    assert store.wakeups.waiting() == [("apply", "acme"), ("apply", "globex")], "one waits per instance"
    assert len(store.inbox.new()) == 3


def test_without_its_wake_up_a_delivery_is_neither_stored_nor_acknowledged(
    store: Store, receiver: str
) -> None:
    acme, token = job_of(store, "acme")
    with store.database.engine.begin() as db:  # the queue's table gone: the wake-up cannot be written
        db.execute(text("ALTER TABLE procrastinate_jobs RENAME TO procrastinate_jobs_away"))

    response = post(receiver, acme, token, RESULT)

    assert response.status_code >= 500, response.text
    assert store.inbox.new() == [], "the row went with the wake-up's transaction"


def test_a_silent_workers_wake_up_is_ended_and_made_again_and_a_live_ones_is_left(store: Store) -> None:
    store.wakeups.wake("sync", ["acme", "globex"])
    with store.database.engine.begin() as db:
        db.execute(
            text(
                "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 hour'), (now())"
            )
        )
        silent, live = (
            row.id for row in db.execute(text("SELECT id FROM procrastinate_workers ORDER BY last_heartbeat"))
        )
        for worker, instance in (
            (silent, "acme"),
            (live, "globex"),
        ):  # each worker takes one, as a fetch does
            db.execute(
                text(
                    "UPDATE procrastinate_jobs SET status = 'doing', worker_id = :worker WHERE args->>'instance' = :name"
                ),
                {"worker": worker, "name": instance},
            )

    swept = sweep(store.wakeups, QueueDispatcher(store.wakeups), stall_seconds=30)

    assert [(job.kind, job.instance) for job in swept] == [("sync", "acme")]
    assert store.wakeups.waiting() == [("sync", "acme")], "woken again, to run elsewhere"
    with store.database.engine.connect() as db:
        statuses = dict(db.execute(text("SELECT args->>'instance', status::text FROM procrastinate_jobs "
                                        "WHERE status <> 'todo'")).all())  # fmt: skip
    assert statuses == {"acme": "failed", "globex": "doing"}
    assert sweep(store.wakeups, QueueDispatcher(store.wakeups), stall_seconds=30) == [], "once"


def test_the_tick_wakes_the_due_syncs_and_a_ready_write_back_whose_wake_up_was_lost(store: Store) -> None:
    times, dispatcher = SharedSyncTimes(store.schedules), QueueDispatcher(store.wakeups)
    now = datetime.now(UTC)
    times.declare({"acme": "every 1h", "globex": "every 1h"}, now - timedelta(minutes=1))
    acme, _ = job_of(store, "acme")
    store.inbox.keep(acme, json.dumps(RESULT).encode())  # stored without its wake-up: as if it was lost
    with store.database.engine.begin() as db:  # arrived a minute ago: the backlog is ready
        db.execute(text("UPDATE inbox SET received_at = :at"), {"at": now - timedelta(minutes=1)})

    report = cluster_tick(store, {"acme", "globex"}, times, dispatcher, 30, now)

    assert sorted(report.syncs) == ["acme", "globex"] and report.write_backs == ["acme"]
    waiting = store.wakeups.waiting()
    assert waiting[0] == ("apply", "acme") and sorted(waiting[1:]) == [("sync", "acme"), ("sync", "globex")]
    again = cluster_tick(store, {"acme", "globex"}, times, dispatcher, 30, now)
    assert (again.syncs, again.write_backs) == ([], []), "each due time claimed once; one wake-up waits"
    assert len(store.wakeups.waiting()) == 3
    with store.database.engine.begin() as db:  # what a worker's fetch takes first: results bought come first
        taken = db.execute(
            text("SELECT task_name, args->>'instance' FROM procrastinate_fetch_job_v2(NULL, NULL)")
        )
        assert tuple(taken.one()) == ("apply", "acme"), "a write-back waits behind no sync, though woken last"


def test_the_retention_pass_deletes_wake_ups_ended_a_month_ago_and_keeps_the_rest(store: Store) -> None:
    store.wakeups.wake("sync", ["old", "recent", "running"])
    store.wakeups.wake("apply", ["waiting"])
    with store.database.engine.begin() as db:
        ids = dict(db.execute(text("SELECT args->>'instance', id FROM procrastinate_jobs")).all())
        db.execute(text("UPDATE procrastinate_jobs SET status = 'doing' WHERE id IN (:a, :b, :c)"),
                   {"a": ids["old"], "b": ids["recent"], "c": ids["running"]})  # fmt: skip
        for name in ("old", "recent"):  # ended by a sweep, as connector.cluster.sweep does
            db.execute(text("SELECT procrastinate_finish_job_v1(:id, 'failed', false)"), {"id": ids[name]})
        # The old one's every event (deferred, started, failed) 31 days back; the running one's too: only an
        # ended wake-up goes, however old.
        db.execute(text("UPDATE procrastinate_events SET at = at - interval '31 days' WHERE job_id IN (:a, :c)"),
                   {"a": ids["old"], "c": ids["running"]})  # fmt: skip

    assert purge_ended_wakeups(store.wakeups) == 1
    with store.database.engine.connect() as db:
        left = dict(db.execute(text("SELECT args->>'instance', status::text FROM procrastinate_jobs")).all())
        events = db.execute(text("SELECT count(*) FROM procrastinate_events WHERE job_id = :id"),
                            {"id": ids["old"]}).scalar_one()  # fmt: skip
    assert left == {"recent": "failed", "running": "doing", "waiting": "todo"}
    assert events == 0, "its events went with it"
    assert purge_ended_wakeups(store.wakeups) == 0
