"""The database the store's parts share: migrated once on open, SQLite in WAL mode."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text

from connector.store import Job, Store
from connector.store.migrations import MIGRATIONS, current_version, migrate


def test_migrations_run_once_and_are_recorded(store_url: str) -> None:
    first = Store(store_url)
    assert current_version(first.database.engine) == max(version for version, _, _ in MIGRATIONS)
    assert migrate(first.database.engine) == []
    first.close()
    again = Store(store_url)
    assert current_version(again.database.engine) == max(version for version, _, _ in MIGRATIONS)
    again.close()


def test_a_database_from_before_migration_4_gains_the_jobs_provider_and_keeps_its_jobs(
    store_url: str, store: Store, make_job: Callable[..., Job]
) -> None:
    make_job()
    with store.database.engine.begin() as db:  # as version 3 left it: no provider column
        db.execute(text("ALTER TABLE jobs DROP COLUMN provider"))
        db.execute(text("DELETE FROM schema_migrations WHERE version = 4"))
    store.close()

    reopened = Store(store_url)
    kept = reopened.jobs.get("job-1")
    reopened.jobs.record_provider("job-1", "lonescale")
    recorded = reopened.jobs.get("job-1")
    reopened.close()

    assert kept is not None and kept.provider is None and kept.contact_count == 2
    assert recorded is not None and recorded.provider == "lonescale"


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'wal.db'}")
    with store.database.engine.connect() as db:
        assert db.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    store.close()
