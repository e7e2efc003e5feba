"""The database the store's parts share: SQLite in WAL mode. (Its schema: tests/store/test_upgrade.py.)"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from connector.store import Store


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'wal.db'}")
    with store.database.engine.connect() as db:
        assert db.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    store.close()
