"""CRM emails: which contact holds each email of an instance (hashed), so a write-back does not send an email
another contact holds.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "crm_emails",
        sa.Column("instance", sa.String(64), primary_key=True),
        sa.Column("email_sha256", sa.String(64), primary_key=True),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("seen_at", WHEN, nullable=False),
    )
    op.create_index("ix_crm_emails_record", "crm_emails", ["instance", "record_id"])


def downgrade() -> None:
    op.drop_index("ix_crm_emails_record", table_name="crm_emails")
    op.drop_table("crm_emails")
