"""The store opened on SQLite and, when LONESCALE_SYNC_TEST_POSTGRES_URL names one, on PostgreSQL too
(`store_url`, in tests/conftest.py), and a job to hang deliveries, contacts and cooldowns on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from connector.models import JobStatus
from connector.store import Job, JobContact, Store

T0 = datetime(2026, 11, 1, 9, 30, 15, 123000, tzinfo=UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def make_job(store: Store) -> Callable[..., Job]:
    """A pending job of two contacts (003A, 003B) asking for emails, created at T0."""

    def make(job_id: str = "job-1", instance: str = "acme") -> Job:
        run_id = store.runs.start(instance, "sync")
        job = Job(
            job_id, instance, run_id, "ab" * 32, None, JobStatus.PENDING, ["email"], 2, T0, None, None, None
        )
        store.jobs.create(
            job,
            [
                JobContact(
                    job_id, "003A", "Contact", {"firstname": "Zoë", "lastname": "Lefèvre"}, {"Email": None}
                ),
                JobContact(
                    job_id, "003B", "Contact", {"firstname": "A", "lastname": "B"}, {"Email": "a@b.com"}
                ),
            ],
        )
        return job

    return make
