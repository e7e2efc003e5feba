"""The store's tables (SQLAlchemy Core, portable types only): one place that says what we keep, as the code
queries it. The database gets them from the Alembic revisions (connector/store/alembic/versions/), each with
its own DDL; tests/store/test_upgrade.py checks that the revisions build exactly these tables."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()
ID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite only autoincrements INTEGER PRIMARY KEY
WHEN = DateTime(timezone=True)

runs = Table(
    "runs",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("instance", String(64), nullable=False),
    Column("kind", String(32), nullable=False),  # sync | apply | rollback | replay
    Column("status", String(32), nullable=False),  # running | succeeded | failed | stopped
    Column("started_at", WHEN, nullable=False),
    Column("finished_at", WHEN),
    Column("counts", JSON, nullable=False, default=dict),  # pulled, sent, skipped by reason, written…
    Column("error", Text),
    Index("ix_runs_instance_started", "instance", "started_at"),
)

# The runs' counts summed as each run finishes, in the transaction that writes its counts
# (connector/store/run_totals.py): /metrics reads these few rows per instance at each scrape instead of
# taking apart every run's JSON, which grew with the history (1.6 s a scrape at 200,000 runs, measured).
# One row per (instance, kind of run, count, entry): `entry` is '' for a count that is a number (`pulled`),
# the mapping's key for a count that is a mapping (`skipped`: reason → records). Only JSON numbers add.
run_totals = Table(
    "run_totals",
    metadata,
    Column("instance", String(64), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("name", Text, primary_key=True),
    Column("entry", Text, primary_key=True),
    Column("total", Float, nullable=False),
)

# Each (instance, kind) that has had a run, from the run's start (so a figure reads 0, not nothing, while the
# first run is running, as the sums over the runs did), and when its latest successful run finished.
run_kinds = Table(
    "run_kinds",
    metadata,
    Column("instance", String(64), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("last_succeeded_at", WHEN),
)

# Where the next pull starts: the end of the last window fully stored for this instance.
cursors = Table(
    "cursors",
    metadata,
    Column("instance", String(64), primary_key=True),
    Column("changed_at", WHEN, nullable=False),
    Column("updated_at", WHEN, nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),  # ours, a UUID: exists before LoneScale is called
    Column("instance", String(64), nullable=False),
    Column("run_id", ID, ForeignKey("runs.id"), nullable=False),
    Column("token_sha256", String(64), nullable=False),  # the webhook URL's token, hashed
    Column("lonescale_id", String(128)),
    Column("status", String(16), nullable=False),  # connector.models.JobStatus
    Column("enrichment_types", JSON, nullable=False),
    Column("contact_count", Integer, nullable=False),
    Column("created_at", WHEN, nullable=False),
    Column("sent_at", WHEN),
    Column("deadline", WHEN),
    Column("polls", Integer, nullable=False, default=0),  # times we asked LoneScale after the deadline
    Column("updated_at", WHEN, nullable=False),
    Column("reason", Text),
    # The downstream provider LoneScale's results said they came from (the request `custom` echoed), if any.
    Column("provider", String(64)),
    # The monthly cap's sum of this month's jobs; /metrics's count and oldest per state (revision 0009).
    Index("ix_jobs_instance_created", "instance", "created_at"),
    Index("ix_jobs_instance_status_created", "instance", "status", "created_at"),
)

job_contacts = Table(
    "job_contacts",
    metadata,
    Column("job_id", String(36), ForeignKey("jobs.id"), primary_key=True),
    Column("record_id", String(64), primary_key=True),
    Column("object", String(64), nullable=False),
    Column("sent", JSON, nullable=False),  # the Contact exactly as sent
    Column("pulled", JSON, nullable=False),  # write-back fields as they were at pull time
    # waiting | applied | rejected | superseded | expired (no results by the grace) | resent (by a person)
    Column("status", String(16), nullable=False),
    Column("reason", Text),
)

# Every webhook body, stored before the 2xx; (job, sha256) makes duplicate deliveries a no-op.
inbox = Table(
    "inbox",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("job_id", String(36), nullable=False),
    Column("body_sha256", String(64), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("received_at", WHEN, nullable=False),
    Column("status", String(16), nullable=False),  # new | applied | invalid | uncorrelated
    Column("error", Text),
    UniqueConstraint("job_id", "body_sha256", name="uq_inbox_delivery"),
    Index("ix_inbox_status", "status"),
)

# Per record: when each enrichment type was last sent and whether it was found, for cooldowns. (What we
# wrote lives in the write journal.)
record_state = Table(
    "record_state",
    metadata,
    Column("instance", String(64), primary_key=True),
    Column("record_id", String(64), primary_key=True),
    Column("types", JSON, nullable=False, default=dict),  # type → {"sent_at": iso, "found": bool | null}
    Column("updated_at", WHEN, nullable=False),
)

write_journal = Table(
    "write_journal",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("run_id", ID, ForeignKey("runs.id"), nullable=False),
    Column("job_id", String(36)),
    Column("instance", String(64), nullable=False),
    Column("record_id", String(64), nullable=False),
    Column("field", String(128), nullable=False),
    Column("old_value", JSON),
    Column("new_value", JSON),
    Column("outcome", String(16), nullable=False),  # written | rejected
    Column("reason", Text),
    Column("written_at", WHEN, nullable=False),
    Index("ix_journal_record", "instance", "record_id"),
    Index("ix_journal_run", "run_id"),
)

# Who may work on an instance now (a sync or a write-back pass): one row per instance, taken for a while and
# renewed as the work goes on. `epoch` grows with every new holder, so work done under a lease that was lost
# (a frozen process that came back) can be told from the current holder's.
leases = Table(
    "leases",
    metadata,
    Column("name", String(128), primary_key=True),  # e.g. "instance:acme-salesforce"
    Column("holder", String(200), nullable=False),  # "" once released
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    # sync | apply | replay | retry | rollback | start (settling a crash) | overdue | resend | reset (the cursor)
    Column("purpose", String(32), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("acquired_at", WHEN, nullable=False),
    Column("expires_at", WHEN, nullable=False),
)

# When each instance's sync is next due, shared by every replica (the cluster clock): written from the config
# by an idempotent upsert, claimed by compare-and-set on `next_due`, so a due time is taken by one replica only
# and replicas whose config files drift cannot add runs.
schedules = Table(
    "schedules",
    metadata,
    Column("instance", String(64), primary_key=True),
    Column("schedule", String(200), nullable=False),  # as the config says it: `every 15m`, a crontab line
    Column("next_due", WHEN, nullable=False),
    Column("updated_at", WHEN, nullable=False),
)

# Which of procrastinate's schema steps this database has (docs/procrastinate.md#schema-and-migrations):
# procrastinate keeps no record of its own. One row per step: "schema.sql <version>" for its whole schema, or
# a migration file's name. Written by connector.store.queue_schema on PostgreSQL only, with [cluster] on.
queue_schema = Table(
    "queue_schema",
    metadata,
    Column("name", String(200), primary_key=True),
    # applied (we ran it) | in schema.sql <version> (the whole schema we ran holds it) | adopted (found in place)
    Column("how", String(64), nullable=False),
    Column("applied_at", WHEN, nullable=False),
)

# Which contact of a CRM instance holds each email, as the pulls and our own writes last saw it: HubSpot keeps
# a contact's email unique per portal and refuses a whole batch update (409) for one email another contact
# holds, so the write-back leaves out a found email another record holds instead of paying for the refusal
# (connector/apply_unique.py). The email is kept as the SHA-256 of its casefolded form: fixed width, and no
# second copy of an address. One row per contact with an email, replaced when its email changes.
crm_emails = Table(
    "crm_emails",
    metadata,
    Column("instance", String(64), primary_key=True),
    Column("email_sha256", String(64), primary_key=True),
    Column("record_id", String(64), nullable=False),
    Column("seen_at", WHEN, nullable=False),
    Index("ix_crm_emails_record", "instance", "record_id"),
)
