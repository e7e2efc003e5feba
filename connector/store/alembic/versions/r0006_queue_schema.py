"""Queue schema: which of procrastinate's schema steps the database has, since procrastinate keeps no record.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    # On every dialect, SQLite too where it stays empty: one set of tables whatever the store, as
    # connector.store.schema declares them.
    op.create_table(
        "queue_schema",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("how", sa.String(64), nullable=False),
        sa.Column("applied_at", WHEN, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("queue_schema")
