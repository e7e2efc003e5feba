"""jobs.provider: the provider LoneScale's results name.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database adopted from the old migrations (connector.store.upgrade) at version 3 may have the column
    # already: their first step built `jobs` from the tables of the day, which had it once it existed.
    if any(c["name"] == "provider" for c in sa.inspect(op.get_bind()).get_columns("jobs")):
        return
    op.add_column("jobs", sa.Column("provider", sa.String(64)))


def downgrade() -> None:
    op.drop_column("jobs", "provider")
