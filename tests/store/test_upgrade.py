"""The store's schema by Alembic: a fresh database gets exactly connector.store.schema's tables, a database
the old migrations made is adopted with its data, a newer one is refused, and two processes starting at once
on a fresh database migrate it once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from connector.errors import StoreTooNew
from connector.models import JobStatus
from connector.store import Database, Store, schema
from connector.store.dialect import make_engine, shown
from connector.store.upgrade import head, read_state
from tests.store import legacy

T0 = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)


def revision(engine: Engine) -> list[str]:
    with engine.connect() as db:
        return list(db.execute(text("SELECT version_num FROM alembic_version")).scalars())


def differences(engine: Engine) -> list[object]:
    """What the database lacks or has beyond connector.store.schema's tables (Alembic's own comparison)."""
    with engine.connect() as db:
        found = compare_metadata(MigrationContext.configure(db, opts={"compare_type": True}), schema.metadata)
    return [
        d
        for d in found
        if not (d[0] == "remove_table" and d[1].name in ("alembic_version", "schema_migrations"))
    ]


def test_a_fresh_database_gets_exactly_the_tables_the_code_queries(store_url: str) -> None:
    database = Database(store_url)
    before, after = database.schema

    assert before.revision is None and after.revision == head() == "0007"
    assert revision(database.engine) == ["0007"]
    assert differences(database.engine) == []
    assert "schema_migrations" not in inspect(database.engine).get_table_names()
    database.close()

    again = Database(store_url)
    assert again.schema[0].at_head and again.schema[0] == again.schema[1], "nothing to do the second time"
    again.close()


def legacy_job(engine: Engine, status: str) -> None:
    """A run and a job of one contact, written as the old code wrote them."""
    with engine.begin() as db:
        run_id = db.execute(
            legacy.runs.insert().values(
                instance="acme", kind="sync", status="succeeded", started_at=T0, counts={}
            )
        ).inserted_primary_key[0]
        db.execute(legacy.jobs.insert().values(
            id="job-1", instance="acme", run_id=run_id, token_sha256="ab" * 32, status=status,
            enrichment_types=["email"], contact_count=1, created_at=T0, polls=0, updated_at=T0,
        ))  # fmt: skip
        db.execute(legacy.job_contacts.insert().values(
            job_id="job-1", record_id="003A", object="Contact", sent={"firstname": "Zoë"}, pulled={}, status="waiting"
        ))  # fmt: skip
        db.execute(legacy.cursors.insert().values(instance="acme", changed_at=T0, updated_at=T0))


def test_a_database_the_old_migrations_made_is_adopted_with_its_data(store_url: str) -> None:
    old = make_engine(store_url)
    assert legacy.migrate(old) == [1, 2, 3, 4, 5]
    legacy_job(old, "pending")
    old.dispose()

    store = Store(store_url)
    before, after = store.database.schema

    assert before.revision is None and before.legacy == 5 and before.adopted_as == "0005"
    assert after.revision == "0007" and revision(store.database.engine) == ["0007"]
    assert differences(store.database.engine) == []
    job = store.jobs.get("job-1")
    assert job is not None and job.status is JobStatus.PENDING and job.contact_count == 1
    assert [c.record_id for c in store.jobs.contacts("job-1")] == ["003A"]
    cursor = store.cursors.get("acme")
    assert cursor is not None and cursor.changed_at == T0
    store.close()


def test_a_database_from_before_the_old_migration_3_is_brought_forward_from_where_it_stood(
    store_url: str,
) -> None:
    old = make_engine(store_url)
    legacy.migrate(old, upto=2)
    with old.begin() as db:  # as version 2 left it: its first step had built `jobs` without a provider
        db.execute(text("ALTER TABLE jobs DROP COLUMN provider"))
    with old.begin() as db:
        db.execute(text(
            "INSERT INTO runs (instance, kind, status, started_at, counts) VALUES ('acme', 'sync', 'succeeded', :t, '{}')"
        ), {"t": T0})  # fmt: skip
        db.execute(text(
            "INSERT INTO jobs (id, instance, run_id, token_sha256, status, enrichment_types, contact_count, "
            "created_at, polls, updated_at) SELECT 'job-1', 'acme', id, 'ab', 'received', '[\"email\"]', 1, :t, 0, :t "
            "FROM runs"
        ), {"t": T0})  # fmt: skip
    old.dispose()

    store = Store(store_url)

    assert store.database.schema[0].adopted_as == "0002"
    assert revision(store.database.engine) == ["0007"] and differences(store.database.engine) == []
    job = store.jobs.get("job-1")
    assert job is not None and job.status is JobStatus.PARTLY_APPLIED and job.provider is None  # 0003, 0004
    store.jobs.record_provider("job-1", "lonescale")
    recorded = store.jobs.get("job-1")
    assert recorded is not None and recorded.provider == "lonescale"
    store.close()


def test_a_database_newer_than_the_code_is_refused_before_anything_runs(store_url: str) -> None:
    Database(store_url).close()
    engine = make_engine(store_url)
    with engine.begin() as db:
        db.execute(text("UPDATE alembic_version SET version_num = '0099'"))
        db.execute(text("DROP TABLE cursors"))  # what revision 0099 might have done: nothing may put it back

    with pytest.raises(StoreTooNew) as refused:
        Database(store_url)

    assert str(refused.value) == (
        f"the database at {shown(store_url)} is at schema revision 0099, newer than this lonescale-sync (knows "
        "up to 0007): upgrade lonescale-sync, or point [store] at another database"
    )
    assert "password" not in str(refused.value)
    assert "cursors" not in inspect(engine).get_table_names() and revision(engine) == ["0099"]
    engine.dispose()


def test_two_processes_opening_a_fresh_database_at_once_migrate_it_once(store_url: str) -> None:
    start = threading.Barrier(4)
    opened: list[Database] = []
    failed: list[BaseException] = []

    def open_it() -> None:
        start.wait()
        try:
            opened.append(Database(store_url))
        except BaseException as exc:
            failed.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert failed == [] and len(opened) == 4
    upgraded = [d for d in opened if d.schema[0].revision is None]
    assert len(upgraded) == 1, "one of them ran the revisions; the others found them done"
    assert all(d.schema[1].revision == "0007" for d in opened)
    assert read_state(opened[0].engine).at_head and differences(opened[0].engine) == []
    for database in opened:
        database.close()
