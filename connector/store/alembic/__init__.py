"""The store's schema revisions, applied by Alembic (connector.store.upgrade runs them; env.py is Alembic's
entry point, versions/ holds one file per revision, in order)."""
