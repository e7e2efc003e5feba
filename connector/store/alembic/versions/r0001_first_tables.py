"""The first tables: runs, cursors, jobs, job contacts, inbox, record state, write journal.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite only autoincrements INTEGER PRIMARY KEY
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("instance", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("finished_at", WHEN),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_runs_instance_started", "runs", ["instance", "started_at"])
    op.create_table(
        "cursors",
        sa.Column("instance", sa.String(64), primary_key=True),
        sa.Column("changed_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("instance", sa.String(64), nullable=False),
        sa.Column("run_id", ID, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("lonescale_id", sa.String(128)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("enrichment_types", sa.JSON, nullable=False),
        sa.Column("contact_count", sa.Integer, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("sent_at", WHEN),
        sa.Column("deadline", WHEN),
        sa.Column("polls", sa.Integer, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.Column("reason", sa.Text),
    )
    op.create_index("ix_jobs_instance_status", "jobs", ["instance", "status"])
    op.create_table(
        "job_contacts",
        sa.Column("job_id", sa.String(36), sa.ForeignKey("jobs.id"), primary_key=True),
        sa.Column("record_id", sa.String(64), primary_key=True),
        sa.Column("object", sa.String(64), nullable=False),
        sa.Column("sent", sa.JSON, nullable=False),
        sa.Column("pulled", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
    )
    op.create_table(
        "inbox",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("received_at", WHEN, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text),
        sa.UniqueConstraint("job_id", "body_sha256", name="uq_inbox_delivery"),
    )
    op.create_index("ix_inbox_status", "inbox", ["status"])
    op.create_table(
        "record_state",
        sa.Column("instance", sa.String(64), primary_key=True),
        sa.Column("record_id", sa.String(64), primary_key=True),
        sa.Column("types", sa.JSON, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_table(
        "write_journal",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("run_id", ID, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("job_id", sa.String(36)),
        sa.Column("instance", sa.String(64), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("field", sa.String(128), nullable=False),
        sa.Column("old_value", sa.JSON),
        sa.Column("new_value", sa.JSON),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("written_at", WHEN, nullable=False),
    )
    op.create_index("ix_journal_record", "write_journal", ["instance", "record_id"])
    op.create_index("ix_journal_run", "write_journal", ["run_id"])


def downgrade() -> None:
    for table in ("write_journal", "record_state", "inbox", "job_contacts", "jobs", "cursors", "runs"):
        op.drop_table(table)
