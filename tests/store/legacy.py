"""A frozen copy of the store's migrations before Alembic (connector/store/migrations.py and the tables of
connector/store/schema.py as they were at its last version, 5), to build the databases that code made: the
adoption tests open them with today's code. Frozen: never edit it to follow the schema."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    select,
    text,
    update,
)

metadata = MetaData()
ID = BigInteger().with_variant(Integer(), "sqlite")
WHEN = DateTime(timezone=True)

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String(200), nullable=False),
    Column("applied_at", WHEN, nullable=False),
)

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
    Index("ix_jobs_instance_status", "instance", "status"),
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
    # sync | apply | replay | retry | rollback | start (settling a crash) | overdue | resend
    Column("purpose", String(32), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("acquired_at", WHEN, nullable=False),
    Column("expires_at", WHEN, nullable=False),
)


schedules = Table(
    "schedules",
    metadata,
    Column("instance", String(64), primary_key=True),
    Column("schedule", String(200), nullable=False),  # as the config says it: `every 15m`, a crontab line
    Column("next_due", WHEN, nullable=False),
    Column("updated_at", WHEN, nullable=False),
)

Migration = tuple[int, str, Callable[[Connection], None]]


_FIRST_TABLES = ("runs", "cursors", "jobs", "job_contacts", "inbox", "record_state", "write_journal")


def _initial(connection: Connection) -> None:
    tables = [metadata.tables[name] for name in _FIRST_TABLES]
    metadata.create_all(connection, tables=tables)


def _leases(connection: Connection) -> None:
    leases.create(connection, checkfirst=True)


def _partly_applied(connection: Connection) -> None:
    connection.execute(update(jobs).where(jobs.c.status == "received").values(status="partly_applied"))


def _job_provider(connection: Connection) -> None:
    # `_initial` builds `jobs` from today's schema, so a database created since has the column already.
    if any(c["name"] == "provider" for c in inspect(connection).get_columns("jobs")):
        return
    kind = jobs.c.provider.type.compile(connection.dialect)
    connection.execute(text(f"ALTER TABLE jobs ADD COLUMN provider {kind}"))


def _schedules(connection: Connection) -> None:
    schedules.create(connection, checkfirst=True)


# Append, never edit: a released migration is history. A new table or column is a new entry with its own DDL
# (and `_initial` names its own tables, so a fresh database gets later ones from their migrations).
MIGRATIONS: list[Migration] = [
    (1, "runs, cursors, jobs, job contacts, inbox, record state, write journal", _initial),
    (2, "leases: one holder per instance for syncs and write-backs", _leases),
    (3, "jobs.status 'received' is called what it is: 'partly_applied'", _partly_applied),
    (4, "jobs.provider: the provider LoneScale's results name", _job_provider),
    (5, "schedules: when each instance's sync is next due, shared by replicas", _schedules),
]


def migrate(engine: Engine, upto: int = 5) -> list[int]:
    """Bring the database to the latest version (here: to `upto`, as older code did); returns the versions
    applied now."""
    schema_migrations.create(engine, checkfirst=True)
    applied_now = []
    with engine.begin() as connection:
        done = set(connection.scalars(select(schema_migrations.c.version)))
    for version, description, apply in MIGRATIONS:
        if version in done or version > upto:
            continue
        with engine.begin() as connection:
            apply(connection)
            connection.execute(
                schema_migrations.insert().values(
                    version=version, description=description, applied_at=datetime.now(UTC)
                )
            )
        applied_now.append(version)
    return applied_now


def current_version(engine: Engine) -> int:
    with engine.connect() as connection:
        versions = list(connection.scalars(select(schema_migrations.c.version)))
    return max(versions, default=0)
