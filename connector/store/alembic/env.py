"""Alembic's environment for the store: run on the connection connector.store.upgrade hands it (in its
transaction, under its lock), or, for a developer at Alembic's own command line, on `sqlalchemy.url`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from connector.store import schema
from connector.store.dialect import make_engine


def run(connection: Connection) -> None:
    # target_metadata is today's tables: what `alembic check` and tests/store/test_upgrade.py compare the
    # revisions' result with. The revisions themselves never read it.
    context.configure(connection=connection, target_metadata=schema.metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("alembic: set sqlalchemy.url to the URL of the store to upgrade")
    engine = make_engine(url)
    with engine.begin() as connection:
        run(connection)
    engine.dispose()
