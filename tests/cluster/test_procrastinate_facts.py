"""What issue 13 relies on from procrastinate, pinned against the real library and the real PostgreSQL.

Each test states one fact of docs/procrastinate.md and fails if an upgrade changes it. Each runs in a schema of
its own (procrastinate's schema applied there, search_path set), so tests never see each other's jobs. Workers
are real processes (tests/cluster/facts_worker.py) where the fact is about processes: SIGTERM, SIGKILL, two
workers ticking.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

procrastinate = pytest.importorskip("procrastinate", reason="procrastinate is the `cluster` extra")
import psycopg  # noqa: E402
from procrastinate import exceptions as procrastinate_errors  # noqa: E402
from procrastinate.manager import JobManager  # noqa: E402
from procrastinate.schema import SchemaManager  # noqa: E402
from sqlalchemy import Connection, Engine, create_engine, make_url, text  # noqa: E402
from sqlalchemy.exc import DBAPIError, IntegrityError  # noqa: E402

from tests.cluster.facts_worker import CONNECT_TIMEOUT, build_app  # noqa: E402

POSTGRES = os.environ.get("LONESCALE_SYNC_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(
    not POSTGRES, reason="set LONESCALE_SYNC_TEST_POSTGRES_URL: these facts are about PostgreSQL"
)

ROOT = Path(__file__).resolve().parents[2]
QUEUEING_LOCK_INDEX = "procrastinate_jobs_queueing_lock_idx_v1"
LOCK_INDEX = "procrastinate_jobs_lock_idx_v1"
WAIT = 30.0  # seconds: the most any condition below is waited for before the test fails

# The one SQL call a replica makes to defer inside its own transaction (docs/procrastinate.md#defer-inside-our-transaction):
# an array of the composite type procrastinate_job_to_defer_v1, one row per job, in one INSERT.
JOB_ROW = """ROW(
        CAST(:queue_{n} AS varchar), CAST(:task_{n} AS varchar), CAST(:priority_{n} AS integer),
        CAST(:lock_{n} AS text), CAST(:queueing_lock_{n} AS text), CAST(:args_{n} AS jsonb),
        CAST(:scheduled_at_{n} AS timestamptz)
    )"""
FETCH = text("SELECT id FROM procrastinate_fetch_job_v2(NULL, NULL)")  # what a worker runs to take a job

T = TypeVar("T")


@dataclass
class Pg:
    """A fresh PostgreSQL schema with procrastinate's schema applied, and the processes started on it."""

    schema: str
    conninfo: str  # libpq form, for procrastinate and psycopg
    engine: Engine  # ours: SQLAlchemy Core on psycopg 3, search_path set to the schema
    logs: Path  # each worker's stderr, one file each
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    stderr: dict[int, Path] = field(default_factory=dict)

    def sql(self, query: str, **params: Any) -> list[Any]:
        with self.engine.begin() as db:
            result = db.execute(text(query), params)
            return list(result) if result.returns_rows else []

    def job(self, job_id: int) -> Any:
        return self.sql("SELECT * FROM procrastinate_jobs WHERE id = :id", id=job_id)[0]

    def worker(self, *options: str) -> subprocess.Popen[bytes]:
        stderr = self.logs / f"worker-{len(self.processes)}.log"
        with stderr.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.cluster.facts_worker", self.conninfo, self.schema, *options],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=sink,
            )
        self.stderr[process.pid] = stderr
        self.processes.append(process)
        return process

    def said(self, process: subprocess.Popen[bytes]) -> str:
        """What a worker wrote on stderr."""
        return self.stderr[process.pid].read_text(errors="replace")

    def until(self, what: str, check: Callable[[], T]) -> T:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            for process in self.processes:
                if process.poll() not in (None, 0, -signal.SIGKILL, -signal.SIGTERM):
                    raise AssertionError(f"a worker died: {self.said(process)}")
            time.sleep(0.1)
        raise AssertionError(f"waited {WAIT:.0f} s for {what}")

    def manager(self, call: Callable[[JobManager], Awaitable[T]]) -> T:
        """Run one of the library's (async) JobManager calls against this schema."""

        async def run() -> T:
            app = build_app(self.conninfo, self.schema)
            async with app.open_async():
                return await call(app.job_manager)

        return asyncio.run(run())


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Pg]:
    assert POSTGRES
    schema = f"p_{uuid.uuid4().hex[:12]}"
    url = make_url(POSTGRES)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = create_engine(POSTGRES, connect_args={"connect_timeout": CONNECT_TIMEOUT})
    with admin.begin() as db:
        db.execute(text(f"CREATE SCHEMA {schema}"))
    engine = create_engine(
        url, connect_args={"options": f"-c search_path={schema}", "connect_timeout": CONNECT_TIMEOUT}
    )
    # procrastinate's schema, applied the programmatic way (docs/procrastinate.md#schema-and-migrations).
    app = procrastinate.App(
        connector=procrastinate.SyncPsycopgConnector(
            conninfo=conninfo, kwargs={"options": f"-c search_path={schema}"}, min_size=1, max_size=1
        )
    )
    with app.open():
        app.schema_manager.apply_schema()
    with engine.begin() as db:
        db.execute(
            text(
                "CREATE TABLE fact_log (id serial PRIMARY KEY, label text, event text, pid int, thread text,"
                " at timestamptz)"
            )
        )
        db.execute(text("CREATE TABLE our_rows (id serial PRIMARY KEY, note text)"))
    state = Pg(schema, conninfo, engine, tmp_path)
    try:
        yield state
    finally:
        for process in state.processes:  # only the processes this test started, by their handle
            if process.poll() is None:
                process.kill()
            process.wait(timeout=WAIT)
        engine.dispose()
        with admin.begin() as db:
            db.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def defer(
    db: Connection,
    task: str,
    args: dict[str, Any],
    *,
    lock: str | None = None,
    queueing_lock: str | None = None,
    scheduled_at: datetime | None = None,
) -> int:
    job = {
        "task": task,
        "args": args,
        "lock": lock,
        "queueing_lock": queueing_lock,
        "scheduled_at": scheduled_at,
    }
    return defer_all(db, [job])[0]


def defer_all(db: Connection, jobs: list[dict[str, Any]]) -> list[int]:
    """procrastinate_defer_jobs_v1 on our connection: the ids of the jobs, in order."""
    rows = ", ".join(JOB_ROW.format(n=n) for n in range(len(jobs)))
    params: dict[str, Any] = {}
    for n, job in enumerate(jobs):
        params |= {
            f"queue_{n}": "default",
            f"task_{n}": job["task"],
            f"priority_{n}": 0,
            f"lock_{n}": job.get("lock"),
            f"queueing_lock_{n}": job.get("queueing_lock"),
            f"args_{n}": json.dumps(job["args"]),
            f"scheduled_at_{n}": job.get("scheduled_at"),
        }
    query = text(
        f"SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[{rows}]::procrastinate_job_to_defer_v1[])) AS id"
    )
    return [int(row.id) for row in db.execute(query, params)]


def log(pg: Pg, label: str) -> dict[str, Any]:
    """What the worker noted for one job: each event's time, and the thread it ran in."""
    rows = pg.sql("SELECT event, at, thread FROM fact_log WHERE label = :label ORDER BY id", label=label)
    return {row.event: row.at for row in rows} | {"thread": rows[0].thread if rows else None}


def ended(pg: Pg, *job_ids: int) -> bool:
    rows = pg.sql("SELECT status FROM procrastinate_jobs WHERE id = ANY(:ids)", ids=list(job_ids))
    return len(rows) == len(job_ids) and all(row.status == "succeeded" for row in rows)


# --------------------------------------------------------------------------- (a) defer in our transaction


def test_a_job_deferred_in_our_transaction_exists_only_if_that_transaction_commits(pg: Pg) -> None:
    record = build_app(pg.conninfo, pg.schema).tasks["record"]
    with pg.engine.connect() as db:
        with db.begin() as tx:
            db.execute(text("INSERT INTO our_rows (note) VALUES ('rolled back')"))
            by_sql = defer(db, "record", {"label": "sql, rolled back"})
            # The library's own way onto our connection: psycopg 3's connection under SQLAlchemy's.
            by_library = record.configure(connection=db.connection.driver_connection).defer(
                label="library, rolled back"
            )
            tx.rollback()
        with db.begin():
            db.execute(text("INSERT INTO our_rows (note) VALUES ('committed')"))
            kept_sql = defer(db, "record", {"label": "sql, committed"})
            kept_library = record.configure(connection=db.connection.driver_connection).defer(
                label="library, committed"
            )

    assert pg.sql("SELECT id FROM procrastinate_jobs WHERE id IN (:a, :b)", a=by_sql, b=by_library) == []
    assert [row.note for row in pg.sql("SELECT note FROM our_rows")] == ["committed"]
    worker = pg.worker("--no-wait")  # takes what is queued, then stops
    assert worker.wait(timeout=WAIT) == 0
    assert ended(pg, kept_sql, kept_library)
    assert {row.label for row in pg.sql("SELECT DISTINCT label FROM fact_log")} == {
        "sql, committed",
        "library, committed",
    }
    # A sync task runs off the event loop, in a thread of asgiref's executor.
    assert log(pg, "sql, committed")["thread"].startswith("asyncio_")  # the loop's default executor


# --------------------------------------------------------------------------- (b) queueing lock


def test_a_second_defer_with_the_same_queueing_lock_is_refused_and_a_savepoint_absorbs_it(pg: Pg) -> None:
    record = build_app(pg.conninfo, pg.schema).tasks["record"]
    with pg.engine.begin() as db:
        first = defer(db, "record", {"label": "first"}, lock="crm:a", queueing_lock="crm:a")

    with pg.engine.connect() as db, db.begin():
        db.execute(text("INSERT INTO our_rows (note) VALUES ('inbox row')"))
        with pytest.raises(IntegrityError) as by_sql, db.begin_nested():  # SAVEPOINT
            defer(db, "record", {"label": "twin"}, lock="crm:a", queueing_lock="crm:a")
        with pytest.raises(procrastinate_errors.AlreadyEnqueued), db.begin_nested():
            record.configure(
                lock="crm:a", queueing_lock="crm:a", connection=db.connection.driver_connection
            ).defer(label="twin")
        db.execute(text("INSERT INTO our_rows (note) VALUES ('after the refusal')"))

    refusal = by_sql.value.orig
    assert isinstance(refusal, psycopg.errors.UniqueViolation)
    assert refusal.diag.constraint_name == QUEUEING_LOCK_INDEX
    assert [row.note for row in pg.sql("SELECT note FROM our_rows ORDER BY id")] == [
        "inbox row",
        "after the refusal",
    ]
    assert [row.id for row in pg.sql("SELECT id FROM procrastinate_jobs")] == [first]

    # Without the savepoint the refusal poisons our transaction: nothing after it runs, nothing commits.
    with pg.engine.connect() as db, pytest.raises(DBAPIError) as poisoned, db.begin():
        db.execute(text("INSERT INTO our_rows (note) VALUES ('lost')"))
        with contextlib.suppress(IntegrityError):  # what absorbing it without a savepoint would be
            defer(db, "record", {"label": "twin"}, queueing_lock="crm:a")
        db.execute(text("INSERT INTO our_rows (note) VALUES ('never')"))
    assert isinstance(poisoned.value.orig, psycopg.errors.InFailedSqlTransaction)
    assert len(pg.sql("SELECT id FROM our_rows")) == 2

    # The queueing lock guards `todo` only: once a worker has taken the first, one more may wait.
    with pg.engine.begin() as db:
        assert db.execute(FETCH).scalar_one() == first
        second = defer(db, "record", {"label": "second"}, lock="crm:a", queueing_lock="crm:a")
        with pytest.raises(IntegrityError), db.begin_nested():
            defer(db, "record", {"label": "third"}, lock="crm:a", queueing_lock="crm:a")
    assert pg.job(first).status == "doing"
    assert pg.job(second).status == "todo"


def test_a_batch_defer_with_queueing_locks_is_all_or_nothing(pg: Pg) -> None:
    record = build_app(pg.conninfo, pg.schema).tasks["record"]
    # The library's batch takes one configuration: its queueing lock goes on every job of the batch, so
    # two jobs refuse each other, on an empty queue.
    with (
        pg.engine.connect() as db,
        db.begin(),
        pytest.raises(procrastinate_errors.AlreadyEnqueued),
        db.begin_nested(),
    ):
        record.configure(queueing_lock="crm:a", connection=db.connection.driver_connection).batch_defer(
            {"label": "one"}, {"label": "two"}
        )
    assert pg.sql("SELECT id FROM procrastinate_jobs") == []

    # Each job its own lock (our SQL): one lock taken refuses the whole array, the free one with it.
    with pg.engine.begin() as db:
        queued = defer(db, "record", {"label": "queued"}, queueing_lock="crm:b")
    jobs = [
        {"task": "record", "args": {"label": "a"}, "queueing_lock": "crm:a"},
        {"task": "record", "args": {"label": "b"}, "queueing_lock": "crm:b"},
    ]
    with pg.engine.connect() as db, db.begin(), pytest.raises(IntegrityError) as refused, db.begin_nested():
        defer_all(db, jobs)
    assert refused.value.orig.diag.constraint_name == QUEUEING_LOCK_INDEX
    assert [row.id for row in pg.sql("SELECT id FROM procrastinate_jobs")] == [queued]


# --------------------------------------------------------------------------- (c) lock


def test_two_jobs_with_the_same_lock_never_run_at_once(pg: Pg) -> None:
    with pg.engine.begin() as db:
        # `first` waits (2 s at most) for `second` to start: with one lock, `second` cannot meanwhile.
        first = defer(db, "record", {"label": "first", "wait_for": "second", "wait_seconds": 2}, lock="crm:x")
        second = defer(db, "record", {"label": "second"}, lock="crm:x")
    pg.worker("--concurrency", "2")
    pg.until("both jobs of crm:x", lambda: ended(pg, first, second))
    a, b = log(pg, "first"), log(pg, "second")
    assert "saw second" not in a
    assert b["start"] >= a["end"]  # one after the other, oldest job first

    # The same worker runs two jobs of different locks at once: the wait above is the lock, not the worker.
    with pg.engine.begin() as db:
        third = defer(
            db, "record", {"label": "third", "wait_for": "fourth", "wait_seconds": WAIT}, lock="crm:y"
        )
        fourth = defer(db, "record", {"label": "fourth"}, lock="crm:z")
    pg.until("the jobs of crm:y and crm:z", lambda: ended(pg, third, fourth))
    assert "saw fourth" in log(pg, "third")


def test_a_job_of_a_lock_scheduled_for_later_holds_back_a_ready_job_of_that_lock(pg: Pg) -> None:
    with pg.engine.begin() as db:
        later = defer(
            db,
            "record",
            {"label": "later"},
            lock="crm:x",
            scheduled_at=datetime.now(UTC) + timedelta(hours=1),
        )
    with pg.engine.begin() as db:
        ready = defer(db, "record", {"label": "ready"}, lock="crm:x")
        other = defer(db, "record", {"label": "other"}, lock="crm:y")
        assert db.execute(FETCH).scalar_one() == other
        assert db.execute(FETCH).scalar_one_or_none() is None  # `ready` waits for `later`, an hour
    assert (pg.job(later).status, pg.job(ready).status) == ("todo", "todo")


# --------------------------------------------------------------------------- (d) periodic


def test_two_workers_ticking_one_periodic_task_defer_it_once_per_tick(pg: Pg) -> None:
    workers = [pg.worker("--periodic", "--name", f"w{n}") for n in (1, 2)]
    pg.until("two workers registered", lambda: len(pg.sql("SELECT id FROM procrastinate_workers")) == 2)
    since = int(time.time()) + 1

    def ticks() -> list[Any]:
        rows = pg.sql(
            "SELECT (args->>'timestamp')::bigint AS at, count(*) AS n FROM procrastinate_jobs"
            " WHERE task_name = 'tick' AND (args->>'timestamp')::bigint >= :since GROUP BY 1 ORDER BY 1",
            since=since,
        )
        return rows if len(rows) >= 3 else []

    deferred = pg.until("three ticks after both workers started", ticks)
    for worker in workers:
        worker.send_signal(signal.SIGTERM)  # a graceful stop: finish what runs, unregister
    for worker in workers:
        worker.wait(timeout=WAIT)
    logs = [pg.said(worker) for worker in workers]

    assert all(row.n == 1 for row in deferred), deferred
    assert [w.returncode for w in workers] == [0, 0]
    assert pg.sql("SELECT id FROM procrastinate_workers") == []
    # Both tried: for some tick, one worker deferred it and the other found it deferred already.
    said = "\n".join(logs)
    assert re.search(r"deferred for timestamp \d+ with id", said), said
    assert re.search(r"skipped for timestamp \d+: already deferred", said), said
    # The store of ticks keeps only the newest per task and periodic id (older rows are deleted).
    assert pg.sql("SELECT count(*) AS n FROM procrastinate_periodic_defers")[0].n == 1


# --------------------------------------------------------------------------- (e) SIGKILL, stalled jobs


def test_a_job_whose_worker_was_killed_stays_doing_and_holds_its_lock_until_swept(pg: Pg) -> None:
    dead = pg.worker("--heartbeat", "0.2")
    with pg.engine.begin() as db:
        stuck = defer(db, "hang", {"label": "stuck"}, lock="crm:x", queueing_lock="crm:x")
    pg.until("the job started", lambda: "start" in log(pg, "stuck"))
    with pg.engine.begin() as db:  # one more may wait: the first left `todo`
        twin = defer(db, "record", {"label": "twin"}, lock="crm:x", queueing_lock="crm:x")
    dead_id = pg.job(stuck).worker_id
    dead.send_signal(signal.SIGKILL)
    assert dead.wait(timeout=WAIT) == -signal.SIGKILL

    # Nothing ends it: it stays `doing`, its worker's row stays, and its lock holds `twin` back.
    assert pg.job(stuck).status == "doing"
    assert [row.id for row in pg.sql("SELECT id FROM procrastinate_workers")] == [dead_id]
    with pg.engine.begin() as db:
        assert db.execute(FETCH).scalar_one_or_none() is None
    with pytest.raises(IntegrityError) as held, pg.engine.begin() as db:
        db.execute(text("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = :id"), {"id": twin})
    assert held.value.orig.diag.constraint_name == LOCK_INDEX

    # A live worker's running job is not stalled; the dead worker's is, once its heartbeat is 3 s old.
    live = pg.worker("--heartbeat", "0.2", "--concurrency", "2")
    with pg.engine.begin() as db:
        running = defer(db, "hang", {"label": "running"}, lock="crm:y")
    pg.until("the live worker's job started", lambda: "start" in log(pg, "running"))
    pg.until(
        "the dead worker's heartbeat 3 s old",
        lambda: pg.sql(
            "SELECT 1 FROM procrastinate_workers WHERE id = :id AND last_heartbeat < now() - interval '3 seconds'",
            id=dead_id,
        ),
    )
    stalled = pg.manager(lambda jobs: jobs.get_stalled_jobs(seconds_since_heartbeat=3))
    assert [job.id for job in stalled] == [stuck]

    # Pruning the dead worker's row nulls the job's worker_id; the job is still found stalled.
    assert pg.manager(lambda jobs: jobs.prune_stalled_workers(3)) == [dead_id]
    assert pg.job(stuck).worker_id is None
    assert [job.id for job in pg.manager(lambda jobs: jobs.get_stalled_jobs(seconds_since_heartbeat=3))] == [
        stuck
    ]

    # The library's retry of it fails while its twin waits (same queueing lock in `todo`) ...
    with pytest.raises(procrastinate_errors.UniqueViolation) as twin_waits:
        pg.manager(lambda jobs: jobs.retry_job_by_id_async(stuck, retry_at=datetime.now(UTC)))
    assert twin_waits.value.constraint_name == QUEUEING_LOCK_INDEX
    assert pg.job(stuck).status == "doing"
    # ... so our sweeper ends it instead (the twin carries the work); that frees the lock for the twin.
    with pg.engine.begin() as db:
        db.execute(text("SELECT procrastinate_finish_job_v1(:id, 'failed', false)"), {"id": stuck})
    pg.until("the twin ran", lambda: ended(pg, twin))
    assert pg.job(stuck).status == "failed"
    assert pg.job(running).status == "doing"
    live.kill()  # its job sleeps; a graceful stop would wait for it


# --------------------------------------------------------------------------- schema


def names_in(pg: Pg) -> set[str]:
    """Every relation (tables, indexes, sequences, composite types), enum and function in the schema."""
    rows = pg.sql(
        """
        SELECT relname AS name FROM pg_class WHERE relnamespace = CAST(:schema AS regnamespace)
        UNION ALL SELECT typname FROM pg_type
            WHERE typnamespace = CAST(:schema AS regnamespace) AND typrelid = 0 AND typelem = 0
        UNION ALL SELECT proname FROM pg_proc WHERE pronamespace = CAST(:schema AS regnamespace)
        """,
        schema=pg.schema,
    )
    return {row.name for row in rows}


def test_procrastinates_schema_lives_beside_ours_under_its_own_names(pg: Pg) -> None:
    from connector.store.database import Database

    theirs = {n for n in names_in(pg) if not n.startswith(("fact_log", "our_rows"))}  # the fixture's own
    assert {"procrastinate_jobs", "procrastinate_workers", "procrastinate_periodic_defers"} <= theirs
    # Every object its schema makes is named procrastinate_* (two indexes idx_procrastinate_*) ...
    assert all(n.startswith(("procrastinate_", "idx_procrastinate_")) for n in theirs), sorted(theirs)
    # It is a fresh database's schema, not an idempotent one: applied twice, it fails.
    again = procrastinate.App(
        connector=procrastinate.SyncPsycopgConnector(
            conninfo=pg.conninfo, kwargs={"options": f"-c search_path={pg.schema}"}, min_size=1, max_size=1
        )
    )
    with again.open(), pytest.raises(procrastinate_errors.ConnectorException) as twice:
        again.schema_manager.apply_schema()
    assert isinstance(twice.value.__cause__, psycopg.errors.DuplicateObject)
    # ... and our store's migrations run in the same schema without meeting one of its objects.
    separator = "&" if "?" in (POSTGRES or "") else "?"
    Database(f"{POSTGRES}{separator}options=-csearch_path%3D{pg.schema}").close()
    assert {"jobs", "inbox", "schema_migrations"} <= names_in(pg) - theirs
    # Its migrations ship in the package, named {x.y.z}_{nn}_{pre|post}_{what}.sql (older ones without
    # pre/post are post).
    folder = Path(SchemaManager.get_migrations_path())
    migrations = sorted(p.name for p in folder.glob("*.sql"))
    assert all(re.fullmatch(r"\d\d\.\d\d\.\d\d_\d\d_[a-z0-9_]+\.sql", m) for m in migrations)
    assert migrations[-1].startswith("03.04.00_50_post_")


def test_a_frozen_worker_looks_stalled_and_its_job_runs_on_after_the_sweep(pg: Pg) -> None:
    frozen = pg.worker("--heartbeat", "0.2")
    with pg.engine.begin() as db:
        job = defer(db, "record", {"label": "frozen", "wait_for": "go", "wait_seconds": WAIT}, lock="crm:x")
    pg.until("the job started", lambda: "start" in log(pg, "frozen"))
    frozen.send_signal(signal.SIGSTOP)
    try:
        worker_id = pg.job(job).worker_id
        pg.until(
            "the frozen worker's heartbeat 3 s old",
            lambda: pg.sql(
                "SELECT 1 FROM procrastinate_workers WHERE id = :id"
                " AND last_heartbeat < now() - interval '3 seconds'",
                id=worker_id,
            ),
        )
        # Alive, yet stalled by the only measure there is: a heartbeat cannot tell frozen from dead.
        assert frozen.poll() is None
        stalled = pg.manager(lambda jobs: jobs.get_stalled_jobs(seconds_since_heartbeat=3))
        assert [j.id for j in stalled] == [job]
        with pg.engine.begin() as db:  # a sweep ends it, and the lock is free for the next job
            db.execute(text("SELECT procrastinate_finish_job_v1(:id, 'failed', false)"), {"id": job})
            successor = defer(db, "record", {"label": "successor"}, lock="crm:x")
        with pg.engine.begin() as db:
            assert db.execute(FETCH).scalar_one() == successor
    finally:
        frozen.send_signal(signal.SIGCONT)
    with pg.engine.begin() as db:
        db.execute(text("INSERT INTO fact_log (label, event) VALUES ('go', 'start')"))
    # The swept job's code ran on to its end while its successor held the lock: procrastinate's lock
    # does not exclude a frozen worker. The worker's own finish then finds the job ended, and leaves it.
    pg.until("the frozen job's end", lambda: "end" in log(pg, "frozen"))
    pg.until("the worker to give up on the swept job", lambda: 'not in "doing"' in pg.said(frozen))
    assert pg.job(job).status == "failed"
    assert frozen.poll() is None  # it goes on working
    frozen.send_signal(signal.SIGTERM)
    assert frozen.wait(timeout=WAIT) == 0
