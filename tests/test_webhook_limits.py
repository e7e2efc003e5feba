"""What one job's token may cost, over a real socket: it retires a grace period after the job is done (410),
and a job keeps only so many bodies and bytes, sized from its contacts (429, 413). A refused body is never
stored and never answered 2xx; a duplicate of a kept body is still a 200. The grace is crossed by moving
the app's clock, never by waiting."""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text, update

from connector.models import JobStatus
from connector.serving import ThreadedServer
from connector.store import Job, Store, schema, sha256
from connector.webhook import create_app

HTTP = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=32))
GRACE = timedelta(days=7)


class Clock:
    """The app's idea of now: the real time at first, then wherever a test moves it."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Served:
    url: str
    store: Store
    clock: Clock

    def add_job(self, contacts: int = 1, status: JobStatus = JobStatus.SENT) -> tuple[str, str]:
        """A job of `contacts`: its id and its webhook token."""
        job_id, token = str(uuid.uuid4()), secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        run_id = self.store.runs.start("acme", "sync")
        job = Job(
            job_id, "acme", run_id, sha256(token), None, status, ["email"], contacts, now, now, None, None
        )
        self.store.jobs.create(job, [])
        return job_id, token

    def post(self, job_id: str, token: str, body: bytes) -> httpx.Response:
        return HTTP.post(f"{self.url}/webhooks/lonescale/{job_id}", params={"token": token}, content=body)

    def kept(self, job_id: str) -> list[bytes]:
        return [bytes(d["body"]) for d in self.store.inbox.of_job(job_id)]


@contextmanager
def serving(store: Store, clock: Clock, **options: Any) -> Iterator[str]:
    server = ThreadedServer(create_app(store, token_grace=GRACE, clock=clock, **options), name="webhook")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    store, clock = Store(f"sqlite:///{tmp_path / 'hook.db'}"), Clock()
    try:
        with serving(store, clock) as url:
            yield Served(url, store, clock)
    finally:
        store.close()


def result(n: int, padding: int = 0) -> bytes:
    """A distinct valid delivery (an identical body would be a duplicate), `padding` bytes longer."""
    body = json.dumps({"email": f"ada.{n}@example.com", "custom": {"contact_id": f"003{n}"}}).encode()
    return body + b" " * padding


def answered(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["message"]


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "connector.webhook" and r.levelno >= logging.WARNING
    ]


# --------------------------------------------------------------------------- a token retires


def test_a_token_retires_a_grace_period_after_its_job_is_done(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="connector")  # the demo's test sets it to WARNING: undo that here
    job_id, token = served.add_job(contacts=5)
    assert answered(served.post(job_id, token, result(1))) == (200, "stored")
    served.store.jobs.update(job_id, JobStatus.APPLIED)  # after the webhook saw it as sent
    served.clock.advance(GRACE - timedelta(hours=1))
    assert answered(served.post(job_id, token, result(2))) == (200, "stored"), (
        "a late retry, within the grace"
    )
    served.clock.advance(timedelta(hours=2))
    assert answered(served.post(job_id, token, result(3))) == (410, "the job is done and its token retired")
    assert served.post(job_id, token, result(1)).status_code == 410, "nothing at all, not even a duplicate"
    assert served.kept(job_id) == [result(1), result(2)], "a refused body is not stored"
    # Only the token's holder learns that the job exists: a wrong token still gets the prober's 401.
    assert served.post(job_id, "a-guessed-token", result(4)).status_code == 401
    lines = [line for line in warnings(caplog) if "refused 410" in line]  # a uuid may hold "410"
    assert len(lines) == 2 and job_id in lines[0]
    assert "job applied 7 d ago, its token retired after 7 d" in lines[0]
    assert not [r for r in caplog.records if token in r.getMessage() and r.name.startswith("connector")]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (JobStatus.APPLIED, 410),
        (JobStatus.FAILED, 410),
        (JobStatus.EXPIRED, 410),  # a late result within the grace is applied; a month late, it is refused
        (JobStatus.SENT, 200),  # still awaiting results: a token retires only once its job is done
        (JobStatus.PARTLY_APPLIED, 200),
        (JobStatus.UNCERTAIN, 200),
    ],
)
def test_only_a_job_that_is_done_retires_its_token(served: Served, status: JobStatus, code: int) -> None:
    job_id, token = served.add_job(status=status)
    served.clock.advance(timedelta(days=30))
    assert served.post(job_id, token, result(1)).status_code == code
    assert len(served.kept(job_id)) == (code == 200)


def test_a_job_done_before_the_grace_is_refused_410_and_nothing_stored(tmp_path: Path) -> None:
    # No clock moved: the job was applied eight days ago by the store's own account.
    store = Store(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        served = Served("", store, Clock())
        job_id, token = served.add_job()
        with store.database.engine.begin() as db:
            db.execute(
                update(schema.jobs)
                .where(schema.jobs.c.id == job_id)
                .values(status="applied", updated_at=datetime.now(UTC) - timedelta(days=8))
            )
        server = ThreadedServer(create_app(store), name="webhook-defaults")  # the default grace: 7 days
        served.url = server.start()
        try:
            assert served.post(job_id, token, result(1)).status_code == 410
        finally:
            server.stop()
        assert served.kept(job_id) == []
    finally:
        store.close()


# --------------------------------------------------------------------------- per-job caps


def test_a_job_keeps_three_bodies_per_contact_and_ten_more_then_429(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    job_id, token = served.add_job(contacts=2)  # 3 per contact + 10 = 16 bodies
    answers = [served.post(job_id, token, result(n)).status_code for n in range(14)]
    answers += [
        served.post(job_id, token, bad).status_code for bad in (b"not json", b"[]")
    ]  # kept: they count
    assert answers == [200] * 14 + [400, 422]
    assert answered(served.post(job_id, token, result(99))) == (429, "the job has had its 16 deliveries")
    assert len(served.kept(job_id)) == 16 and result(99) not in served.kept(job_id)
    assert any("refused 429, body not kept" in line and job_id in line for line in warnings(caplog))
    # A duplicate of a body it keeps is still what it always was: a 200, or the refusal of a bad body.
    assert answered(served.post(job_id, token, result(3))) == (200, "duplicate")
    assert served.post(job_id, token, b"not json").status_code == 400
    assert len(served.kept(job_id)) == 16


def test_a_job_keeps_64_kib_per_contact_and_1_mib_more_then_413(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    job_id, token = served.add_job(contacts=1)  # 64 KiB + 1 MiB = 1,114,112 bytes
    big = result(1, padding=700_000)
    assert answered(served.post(job_id, token, big)) == (200, "stored")
    over = served.post(job_id, token, result(2, padding=500_000))  # each body is well under max_body_bytes
    assert answered(over) == (413, "the job's deliveries may not exceed 1114112 bytes in all")
    assert any("refused 413, body not kept" in line for line in warnings(caplog))
    assert answered(served.post(job_id, token, result(3, padding=300_000))) == (200, "stored"), "what fits"
    assert answered(served.post(job_id, token, big)) == (200, "duplicate")
    assert served.kept(job_id) == [big, result(3, padding=300_000)]


def test_the_caps_count_what_the_store_already_keeps_for_the_job(served: Served) -> None:
    job_id, token = served.add_job(contacts=1)  # 13 bodies
    for n in range(12):  # kept before this server saw the job: by a previous run, or by polling
        served.store.inbox.keep(job_id, result(n))
    assert served.post(job_id, token, result(12)).status_code == 200
    assert served.post(job_id, token, result(13)).status_code == 429
    with serving(served.store, served.clock) as restarted:  # a restart forgets nothing that was stored
        again = HTTP.post(
            f"{restarted}/webhooks/lonescale/{job_id}", params={"token": token}, content=result(14)
        )
    assert again.status_code == 429
    assert len(served.kept(job_id)) == 13


def test_concurrent_deliveries_cannot_take_a_job_past_its_cap(served: Served) -> None:
    job_id, token = served.add_job(contacts=1)  # 13 bodies
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = sorted(pool.map(lambda n: served.post(job_id, token, result(n)).status_code, range(40)))
    assert statuses == [200] * 13 + [429] * 27
    assert len(served.kept(job_id)) == 13


def test_a_delivery_the_store_failed_to_keep_does_not_count_against_the_cap(served: Served) -> None:
    job_id, token = served.add_job(contacts=1)  # 13 bodies
    assert served.post(job_id, token, result(0)).status_code == 200
    with served.store.database.engine.begin() as db:
        db.execute(text("ALTER TABLE inbox RENAME TO inbox_away"))
    once = {"connection": "close"}  # uvicorn closes a connection whose request raised
    failed = [
        HTTP.post(f"{served.url}/webhooks/lonescale/{job_id}", params={"token": token}, content=result(n),
                  headers=once).status_code
        for n in range(100, 120)
    ]  # fmt: skip
    assert failed == [500] * 20
    with served.store.database.engine.begin() as db:
        db.execute(text("ALTER TABLE inbox_away RENAME TO inbox"))
    statuses = [served.post(job_id, token, result(n)).status_code for n in range(1, 14)]
    assert statuses == [200] * 12 + [429], "the 20 that failed took none of the job's 13"
