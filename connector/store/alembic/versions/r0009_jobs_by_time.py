"""Jobs indexed by instance and creation time: the monthly cap and /metrics read only what they need.

`Jobs.contacts_sent_since` (the monthly cap, before every sync and per capped instance at each /metrics scrape)
sums one instance's jobs of this month: with only (instance, status) indexed it read all of the instance's jobs
ever. `Jobs.ages` (each scrape) counts jobs per instance and state with the oldest one's time: the index on
(instance, status) becomes (instance, status, created_at), which holds all it reads (the queries that used the
old one use its first two columns). Jobs are never deleted, so both read more every month without these.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_instance_created", "jobs", ["instance", "created_at"])
    op.create_index("ix_jobs_instance_status_created", "jobs", ["instance", "status", "created_at"])
    op.drop_index("ix_jobs_instance_status", table_name="jobs")


def downgrade() -> None:
    op.create_index("ix_jobs_instance_status", "jobs", ["instance", "status"])
    op.drop_index("ix_jobs_instance_status_created", table_name="jobs")
    op.drop_index("ix_jobs_instance_created", table_name="jobs")
