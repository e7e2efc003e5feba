"""Run totals: the runs' counts summed as each run finishes, so /metrics stops reading every run at each scrape;
built here from the runs already stored, so an upgraded store's figures go on from where they were.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# The one thing taken from the code: how each database takes a JSON object apart (everything dialect-specific
# lives in connector.store.dialect). Never today's tables.
from connector.store.dialect import json_members

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)
# The tables as this revision reads and fills them (never today's connector.store.schema).
runs = sa.table(
    "runs",
    sa.column("instance", sa.String),
    sa.column("kind", sa.String),
    sa.column("status", sa.String),
    sa.column("finished_at", WHEN),
    sa.column("counts", sa.JSON),
)
run_totals = sa.table(
    "run_totals",
    sa.column("instance", sa.String),
    sa.column("kind", sa.String),
    sa.column("name", sa.Text),
    sa.column("entry", sa.Text),
    sa.column("total", sa.Float),
)
run_kinds = sa.table(
    "run_kinds",
    sa.column("instance", sa.String),
    sa.column("kind", sa.String),
    sa.column("last_succeeded_at", WHEN),
)


def upgrade() -> None:
    op.create_table(
        "run_totals",
        sa.Column("instance", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("entry", sa.Text, primary_key=True),
        sa.Column("total", sa.Float, nullable=False),
    )
    op.create_table(
        "run_kinds",
        sa.Column("instance", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("last_succeeded_at", WHEN),
    )
    backfill(op.get_bind().dialect.name)


def backfill(dialect: str) -> None:
    """The sums as connector.store.run_totals keeps them, over every run stored: set-based, a few statements
    whatever the history (each run's counts taken apart by the database's JSON functions), in the upgrade's
    transaction. A count that is a number goes under entry ''; a mapping's entries under their keys; only JSON
    numbers add (a NULL sum, of nothing but non-numbers, is 0)."""
    top = json_members(dialect, runs.c.counts)
    scalars = (
        sa.select(
            runs.c.instance,
            runs.c.kind,
            top.key,
            sa.literal(""),
            sa.func.coalesce(sa.func.sum(top.number), 0.0),
        )
        .select_from(runs)
        .join(top.table, sa.true())
        .where(sa.not_(top.is_object))
        .group_by(runs.c.instance, runs.c.kind, top.key)
    )
    inner = json_members(dialect, top.nested)  # no rows for a member that is not an object
    entries = (
        sa.select(
            runs.c.instance, runs.c.kind, top.key, inner.key, sa.func.coalesce(sa.func.sum(inner.number), 0.0)
        )
        .select_from(runs)
        .join(top.table, sa.true())
        .join(inner.table, sa.true())
        .group_by(runs.c.instance, runs.c.kind, top.key, inner.key)
    )
    columns = ["instance", "kind", "name", "entry", "total"]
    op.execute(run_totals.insert().from_select(columns, scalars))
    op.execute(run_totals.insert().from_select(columns, entries))
    latest = sa.func.max(sa.case((runs.c.status == "succeeded", runs.c.finished_at)))
    every_kind = sa.select(runs.c.instance, runs.c.kind, latest).group_by(runs.c.instance, runs.c.kind)
    op.execute(run_kinds.insert().from_select(["instance", "kind", "last_succeeded_at"], every_kind))


def downgrade() -> None:
    op.drop_table("run_kinds")
    op.drop_table("run_totals")
