"""procrastinate's schema applied and tracked by us (connector.store.queue_schema), on the real PostgreSQL with
the installed procrastinate: a fresh database gets its schema and works, a second run does nothing, a schema
someone else applied is adopted, a database behind gets the migrations it lacks, two upgrades at once apply
once, `db upgrade` says it, and the worker's check refuses a database without it in one sentence."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

procrastinate = pytest.importorskip("procrastinate", reason="procrastinate is the `cluster` extra")
from sqlalchemy import Connection, text  # noqa: E402

from connector.errors import ConnectorError, QueueSchemaMissing  # noqa: E402
from connector.starter import write_starter  # noqa: E402
from connector.store import Database  # noqa: E402
from connector.store.dialect import make_engine, shown  # noqa: E402
from connector.store.queue_schema import (  # noqa: E402
    AS_IS,
    check_queue_schema,
    installed,
    upgrade_queue_schema,
)
from connector.store.upgrade import LOCK_KEY, head  # noqa: E402
from tests.test_cli_ops import cli  # noqa: E402

ON_POSTGRES = pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
VERSION = installed().version
WHOLE = f"schema.sql {VERSION}"
FIX = "run `lonescale-sync db upgrade`"
WAIT = 30.0  # seconds: the most a condition below is waited for before the test fails
# A schema as an older procrastinate's schema.sql made it: its migrations up to this version, the newer ones
# (03.04.00: procrastinate_retry_job_v2, one pre and one post) left to apply.
OLDER = "03.03.00"


def record(database: Database) -> dict[str, str]:
    with database.reading() as db:
        return {row.name: row.how for row in db.execute(text("SELECT name, how FROM queue_schema"))}


def has_queue(database: Database) -> bool:
    with database.reading() as db:
        return bool(db.execute(text("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")).scalar())


def works(database: Database) -> None:
    """A job deferred by the library on our connection, then taken and ended as a worker would."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector())  # never opened: our connection serves

    @app.task(name="wake", queueing_lock="crm:a")
    def wake(instance: str) -> None: ...

    with database.writing() as db:
        job = wake.configure(connection=db.connection.driver_connection).defer(instance="acme")
    with database.writing() as db:
        assert db.execute(text("SELECT id FROM procrastinate_fetch_job_v2(NULL, NULL)")).scalar_one() == job
        db.execute(text("SELECT procrastinate_finish_job_v1(:id, 'succeeded', false)"), {"id": job})
    with database.reading() as db:
        status = db.execute(text("SELECT status FROM procrastinate_jobs WHERE id = :id"), {"id": job})
        assert status.scalar_one() == "succeeded"


@ON_POSTGRES
def test_a_fresh_database_gets_procrastinates_schema_once_and_it_works(store_url: str) -> None:
    database = Database(store_url)
    with pytest.raises(QueueSchemaMissing) as missing:
        check_queue_schema(database)
    assert str(missing.value) == (
        f"the store at {database.where} has no procrastinate schema, the cluster's job queue: {FIX}"
    )

    assert upgrade_queue_schema(database) == [WHOLE]
    found = installed()
    assert record(database) == {WHOLE: "applied"} | dict.fromkeys(found.migrations, f"in {WHOLE}")
    assert found.migrations[-1].startswith("03.04.00_50_post_")  # every shipped migration is in the record
    check_queue_schema(database)
    works(database)

    assert upgrade_queue_schema(database) == []
    later = Database(store_url)  # another process, later: nothing either
    assert upgrade_queue_schema(later) == []
    later.close()
    database.close()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@ON_POSTGRES
def test_a_schema_someone_else_applied_is_adopted_as_the_installed_versions(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    database = Database(store_url)
    with database.writing() as db:  # what `procrastinate schema --apply` runs
        db.exec_driver_sql(installed().schema_sql, execution_options=AS_IS)
    with pytest.raises(QueueSchemaMissing) as unrecorded:
        check_queue_schema(database)
    assert str(unrecorded.value) == (
        f"the store at {database.where} has procrastinate's tables but no record of which schema they are: {FIX}"
    )

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="connector.store.queue_schema"):
        assert upgrade_queue_schema(database) == []
    assert warnings(caplog) == [
        f"the store at {database.where} has procrastinate's tables but no record of lonescale-sync applying "
        f"them (`procrastinate schema --apply`?): taken to be procrastinate {VERSION}'s schema and recorded "
        "so; if an older procrastinate made them, apply its migrations since that version by hand "
        "(docs/procrastinate.md#schema-and-migrations)"
    ]
    assert set(record(database).values()) == {"adopted"} and WHOLE in record(database)
    check_queue_schema(database)
    works(database)

    caplog.clear()
    assert upgrade_queue_schema(database) == [] and warnings(caplog) == []
    database.close()


DROP_QUEUE = """
DO $$
DECLARE found record;
BEGIN
    FOR found IN SELECT tablename FROM pg_tables
        WHERE schemaname = current_schema() AND tablename LIKE 'procrastinate%' LOOP
        EXECUTE 'DROP TABLE ' || quote_ident(found.tablename) || ' CASCADE';
    END LOOP;
    FOR found IN SELECT CAST(oid AS regprocedure) AS signature FROM pg_proc
        WHERE pronamespace = CAST(current_schema() AS regnamespace) AND proname LIKE 'procrastinate%' LOOP
        EXECUTE 'DROP FUNCTION ' || found.signature || ' CASCADE';
    END LOOP;
    FOR found IN SELECT typname FROM pg_type
        WHERE typnamespace = CAST(current_schema() AS regnamespace) AND typname LIKE 'procrastinate%' LOOP
        EXECUTE 'DROP TYPE IF EXISTS ' || quote_ident(found.typname) || ' CASCADE';
    END LOOP;
END;
$$
"""


@ON_POSTGRES
def test_a_record_whose_tables_were_dropped_is_applied_again(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    database = Database(store_url)
    assert upgrade_queue_schema(database) == [WHOLE]
    with database.writing() as db:
        db.exec_driver_sql(DROP_QUEUE, execution_options=AS_IS)
    assert not has_queue(database) and record(database)

    caplog.clear()
    assert upgrade_queue_schema(database) == [WHOLE]  # the record says what the database has, not had
    assert warnings(caplog) == [
        f"the store at {database.where}: procrastinate's tables are gone, its schema is applied again"
    ]
    assert record(database)[WHOLE] == "applied"
    works(database)
    database.close()


def build_older(db: Connection) -> list[str]:
    """procrastinate's migrations up to OLDER, one file after the other as `psql` would, recorded as our
    upgrade with that procrastinate would have (its schema.sql holds them); the newer ones, in order."""
    found = installed()
    older = [m for m in found.migrations if m[:8] <= OLDER]
    for migration in older:
        with db.begin():
            db.exec_driver_sql(found.read(migration), execution_options=AS_IS)
    step = "schema.sql 3.3.0"
    with db.begin():
        db.execute(
            text("INSERT INTO queue_schema (name, how, applied_at) VALUES (:name, :how, now())"),
            [{"name": step, "how": "applied"}] + [{"name": m, "how": f"in {step}"} for m in older],
        )
    return [m for m in found.migrations if m not in older]


def has_function(database: Database, name: str) -> bool:
    with database.reading() as db:
        found = db.execute(
            text(
                "SELECT 1 FROM pg_proc WHERE proname = :name AND pronamespace = CAST(current_schema() AS regnamespace)"
            ),
            {"name": name},
        )
        return found.first() is not None


@ON_POSTGRES
def test_a_database_behind_the_installed_procrastinate_gets_the_migrations_it_lacks(store_url: str) -> None:
    database = Database(store_url)
    with database.reading() as db:
        newer = build_older(db)
    pre, post = newer
    assert pre.startswith("03.04.00_01_pre_") and post.startswith("03.04.00_50_post_")
    assert not has_function(database, "procrastinate_retry_job_v2")

    # The new code needs the pre-migration: the worker refuses until it is there ...
    with pytest.raises(QueueSchemaMissing) as behind:
        check_queue_schema(database)
    assert str(behind.value) == (
        f"the store at {database.where} lacks 1 of the migrations procrastinate {VERSION} needs "
        f"(first: {pre}): {FIX}"
    )

    assert upgrade_queue_schema(database) == [pre, post]
    assert has_function(database, "procrastinate_retry_job_v2")
    assert record(database)[pre] == record(database)[post] == "applied"
    check_queue_schema(database)
    works(database)
    assert upgrade_queue_schema(database) == []
    database.close()


@ON_POSTGRES
def test_only_post_migrations_left_do_not_stop_the_worker(store_url: str) -> None:
    database = Database(store_url)
    with database.reading() as db:
        pre, post = build_older(db)
        with db.begin():  # the pre-migration, applied before the rollout; the post one waits for after it
            db.exec_driver_sql(installed().read(pre), execution_options=AS_IS)
            db.execute(
                text("INSERT INTO queue_schema (name, how, applied_at) VALUES (:name, 'applied', now())"),
                {"name": pre},
            )
    check_queue_schema(database)
    assert upgrade_queue_schema(database) == [post]
    database.close()


def waiting_for_the_lock(database: Database, count: int) -> Callable[[], bool]:
    def check() -> bool:
        with database.reading() as db:
            found = db.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    " AND classid = :key AND objsubid = 2"
                    " AND objid::bigint = (hashtext(current_schema())::bigint & 4294967295)"
                ),
                {"key": LOCK_KEY},
            )
            return bool(found.scalar_one() >= count)

    return check


def until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"waited {WAIT:.0f} s for {what}"
        time.sleep(0.05)


@ON_POSTGRES
def test_two_upgrades_at_once_apply_the_schema_once(store_url: str) -> None:
    holder = Database(store_url)
    databases = [Database(store_url), Database(store_url)]  # two processes' pools: connections of their own
    results: list[Any] = [None, None]

    def upgrade(n: int) -> None:
        try:
            results[n] = upgrade_queue_schema(databases[n])
        except Exception as exc:  # the test says which, below
            results[n] = exc

    # Both start while the store's lock is held (as another upgrade would), so both find no schema, queue
    # for the lock, and race for it when it frees.
    with holder.engine.connect() as lock, lock.begin():
        lock.execute(
            text("SELECT pg_advisory_xact_lock(CAST(:key AS integer), hashtext(current_schema()))"),
            {"key": LOCK_KEY},
        )
        threads = [threading.Thread(target=upgrade, args=(n,)) for n in (0, 1)]
        for thread in threads:
            thread.start()
        until("both upgrades waiting for the lock", waiting_for_the_lock(holder, 2))
    for thread in threads:
        thread.join(timeout=WAIT)

    assert sorted(results, key=len) == [[], [WHOLE]], results
    assert record(holder)[WHOLE] == "applied"
    works(holder)
    for database in (holder, *databases):
        database.close()


def test_on_sqlite_there_is_no_queue_to_upgrade(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    for call in (upgrade_queue_schema, check_queue_schema):
        with pytest.raises(ConnectorError, match="is not PostgreSQL: procrastinate's queue lives only there"):
            call(database)
    with database.reading() as db:  # the table is there, empty: one set of tables whatever the dialect
        assert db.execute(text("SELECT count(*) FROM queue_schema")).scalar_one() == 0
    database.close()


@pytest.fixture
def config(tmp_path: Path, store_url: str) -> Path:
    """The starter config, its store pointed at the test's database (as tests/test_cli_ops.py's)."""
    starter = write_starter(tmp_path)
    written = starter.config.read_text().replace(
        'url = "sqlite:///lonescale-sync.db"', f'url = "{store_url}"', 1
    )
    starter.config.write_text(written)
    return starter.config


@ON_POSTGRES
def test_db_upgrade_applies_procrastinates_schema_only_with_the_cluster_on(
    config: Path, store_url: str
) -> None:
    where = shown(store_url)
    code, output = cli("db", "upgrade", "--config", str(config))
    assert code == 0 and output.endswith(
        f"the store at {where}: schema upgraded from no schema to revision {head()} (head)\n"
    ), output
    database = Database(store_url)
    assert not has_queue(database), "one process, no queue"

    config.write_text(config.read_text() + "\n[cluster]\nenabled = true\n")
    code, output = cli("db", "upgrade", "--config", str(config))
    said = output.splitlines()  # with the upgrade's own log line between them, on stderr
    assert code == 0, output
    assert said[0] == f"the store at {where}: schema revision {head()} (head); nothing to do"
    assert said[-1] == f"the store at {where}: procrastinate's schema {VERSION} applied"
    assert has_queue(database)

    code, output = cli("db", "upgrade", "--config", str(config))
    assert (code, output) == (
        0,
        f"the store at {where}: schema revision {head()} (head); nothing to do\n"
        f"the store at {where}: procrastinate's schema: at {VERSION}, nothing to apply\n",
    )
    database.close()


@ON_POSTGRES
def test_an_engine_is_checked_like_a_database(store_url: str) -> None:
    # The worker may hold an engine rather than a Database: its refusal names the store the same way.
    engine = make_engine(store_url)
    Database(store_url).close()
    with pytest.raises(
        QueueSchemaMissing, match=f"^the store at {re.escape(shown(store_url))} has no procrastinate"
    ):
        check_queue_schema(engine)
    engine.dispose()
