"""The store's records: what callers get back, typed, instead of rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from connector.models import JobStatus


@dataclass(frozen=True)
class Cursor:
    """Where the next pull starts. A moment only: records tied on it are re-read through the look-back
    window and recognised as already sent, so no id tie-break is kept."""

    changed_at: datetime


@dataclass(frozen=True)
class Job:
    id: str
    instance: str
    run_id: int
    token_sha256: str
    lonescale_id: str | None
    status: JobStatus
    enrichment_types: list[str]
    contact_count: int
    created_at: datetime
    sent_at: datetime | None
    deadline: datetime | None
    reason: str | None
    polls: int = 0
    updated_at: datetime | None = None  # set by the store: when the status (or anything else) last changed
    provider: str | None = None  # the downstream provider its results named (`Jobs.record_provider`)


@dataclass(frozen=True)
class JobContact:
    job_id: str
    record_id: str
    object: str
    sent: dict[str, Any]
    pulled: dict[str, Any]
    status: str = "waiting"
    reason: str | None = None


class Arrival(NamedTuple):
    """A webhook body about to be kept in the inbox."""

    job_id: str
    body: bytes
    status: str = "new"
    error: str | None = None
    instance: str | None = None  # its job's, when the webhook knows it: whose write-back it wakes


@dataclass(frozen=True)
class Delivery:
    id: int
    job_id: str
    body: bytes
    received_at: datetime


@dataclass(frozen=True)
class JournalEntry:
    run_id: int
    job_id: str | None
    instance: str
    record_id: str
    field: str
    old_value: Any
    new_value: Any
    outcome: str  # pending (about to be sent) | written | rejected | unknown
    reason: str | None = None
    written_at: datetime | None = None
    id: int | None = None
    cycle: int | None = None  # the sync run whose job this value came from (None: a rollback's own row)

    @property
    def run(self) -> int:
        """The run a person knows this write by: the sync that bought the value, else the run that wrote it."""
        return self.cycle if self.cycle is not None else self.run_id
