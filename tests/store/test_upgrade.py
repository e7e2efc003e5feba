"""The store's schema by Alembic: a fresh database gets exactly connector.store.schema's tables, a database
the old migrations made is adopted with its data, a newer one is refused, and two processes starting at once
on a fresh database migrate it once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from bench.scrape import NaiveRuns
from connector.errors import StoreTooNew
from connector.models import JobStatus
from connector.store import Database, Store, schema
from connector.store.dialect import make_engine, shown
from connector.store.upgrade import head, read_state, upgrade
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

    assert before.revision is None and after.revision == head() == "0009"
    assert revision(database.engine) == ["0009"]
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
    assert after.revision == "0009" and revision(store.database.engine) == ["0009"]
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
    assert revision(store.database.engine) == ["0009"] and differences(store.database.engine) == []
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
        "up to 0009): upgrade lonescale-sync, or point [store] at another database"
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
    assert all(d.schema[1].revision == "0009" for d in opened)
    assert read_state(opened[0].engine).at_head and differences(opened[0].engine) == []
    for database in opened:
        database.close()


# Runs as the code of revision 0007 left them: (instance, kind, status, counts).
HISTORY_AT_0007: list[tuple[str, str, str, dict[str, Any]]] = [
    ("acme", "sync", "succeeded", {"pulled": 10, "sent": 4, "skipped": {"cooling down": 3}, "projected_credits": 6.5}),
    ("acme", "sync", "failed", {"pulled": 2, "sent": 0, "skipped": {"cooling down": 1, "over the cap": 1}}),
    ("acme", "apply", "succeeded", {"fields_written": 9, "kept_by_policy": {"fill_empty: has a value": 2},
                                    "rejected_by_code": {}, "refused_by_code": {"STRING_TOO_LONG": 1}}),
    ("acme", "sync", "interrupted", {}),
    ("other", "sync", "succeeded", {"pulled": 5, "clock_skew_seconds": None, "skipped": {"x": None}}),
    ("other", "apply", "running", {}),
]  # fmt: skip


def store_at_0007(url: str, history: list[tuple[str, str, str, dict[str, Any]]]) -> None:
    old = make_engine(url)
    upgrade(old, "test", to="0007")
    assert revision(old) == ["0007"]
    with old.begin() as db:
        for n, (instance, kind, status, counts) in enumerate(history):
            started = T0 + timedelta(minutes=n)
            db.execute(legacy.runs.insert().values(
                instance=instance, kind=kind, status=status, started_at=started, counts=counts,
                finished_at=None if status == "running" else started + timedelta(seconds=30),
            ))  # fmt: skip
    old.dispose()


def test_an_upgrade_from_0007_sums_the_runs_already_stored_so_the_figures_go_on(store_url: str) -> None:
    store_at_0007(store_url, HISTORY_AT_0007)

    store = Store(store_url)

    assert revision(store.database.engine) == ["0009"] and differences(store.database.engine) == []
    runs, before = store.runs, NaiveRuns(store.database)  # the GROUP BY over the runs, as before 0008
    for kinds, keys in ((["sync"], ["pulled", "sent", "projected_credits"]), (["apply"], ["fields_written"])):
        assert runs.totals(kinds, keys) == before.totals(kinds, keys)
    for key in ("skipped", "kept_by_policy", "refused_by_code", "rejected_by_code"):
        assert runs.totals_by(["sync", "apply"], key) == before.totals_by(["sync", "apply"], key)
    assert runs.last_succeeded() == before.last_succeeded() == {
        ("acme", "sync"): T0 + timedelta(seconds=30), ("acme", "apply"): T0 + timedelta(minutes=2, seconds=30),
        ("other", "sync"): T0 + timedelta(minutes=4, seconds=30),
    }  # fmt: skip
    assert runs.totals(["sync"], ["pulled", "projected_credits"]) == {
        "acme": {"pulled": 12.0, "projected_credits": 6.5}, "other": {"pulled": 5.0, "projected_credits": 0.0}
    }  # fmt: skip
    assert runs.totals(["apply"], ["fields_written"]) == {"acme": {"fields_written": 9.0}, "other": {
        "fields_written": 0.0}}, "other's apply was running at the upgrade: listed, at 0"  # fmt: skip
    assert runs.totals_by(["sync"], "skipped") == {
        ("acme", "cooling down"): 4.0,
        ("acme", "over the cap"): 1.0,
        ("other", "x"): 0.0,
    }

    run = store.runs.start("acme", "sync")
    store.runs.finish(run, "succeeded", {"pulled": 1, "skipped": {"cooling down": 1}})
    assert runs.totals(["sync"], ["pulled"])["acme"] == {"pulled": 13.0}, "the sums go on from the backfill"
    assert runs.totals_by(["sync"], "skipped")[("acme", "cooling down")] == 5.0
    store.close()


def test_the_upgrade_reads_only_json_numbers_as_a_finish_does(store_url: str) -> None:
    odd = {"pulled": True, "sent": "12", "jobs": [1], "by_types": {"email": {"found": 1}},
           "skipped": {"a": False, "b": "3", "c": 2.5}, "credits_at_start": 1e3}  # fmt: skip
    store_at_0007(store_url, [("acme", "sync", "succeeded", odd)])
    store = Store(store_url)
    again = store.runs.start("again", "sync")  # the same counts, finished by today's code
    store.runs.finish(again, "succeeded", odd)

    keys = ["pulled", "sent", "jobs", "by_types", "skipped", "credits_at_start"]
    totals = store.runs.totals(["sync"], keys)
    assert totals["acme"] == totals["again"] == {**dict.fromkeys(keys, 0.0), "credits_at_start": 1000.0}
    for key in ("skipped", "by_types"):
        by = store.runs.totals_by(["sync"], key)
        assert {e: v for (i, e), v in by.items() if i == "acme"} == {
            e: v for (i, e), v in by.items() if i == "again"
        }
    assert store.runs.totals_by(["sync"], "skipped")[("acme", "c")] == 2.5
    assert store.runs.totals_by(["sync"], "by_types") == {("acme", "email"): 0.0, ("again", "email"): 0.0}
    store.close()
