"""jobs.status 'received' is called what it is: 'partly_applied'.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE jobs SET status = 'partly_applied' WHERE status = 'received'")


def downgrade() -> None:
    op.execute("UPDATE jobs SET status = 'received' WHERE status = 'partly_applied'")
