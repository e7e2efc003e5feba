"""Group commit: concurrent deliveries share a transaction, each is answered after the commit with its own
answer, twins in one group are one delivery, and a failed group acknowledges nothing. On SQLite and, when
LONESCALE_SYNC_TEST_POSTGRES_URL names one, on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, select, text

from connector.ingest import GroupCommit, GroupCommitFailed
from connector.models import JobStatus
from connector.serving import ThreadedServer
from connector.store import Arrival, Inbox, Job, Store, schema, sha256
from connector.store.database import Database
from connector.store.inbox import Wake
from connector.webhook import create_app

HTTP = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=32))


class GroupsSeen(Inbox):
    """A real inbox that also notes the size of each group it is handed."""

    def __init__(self, database: Database):
        super().__init__(database)
        self.groups: list[int] = []

    def keep_all(self, arrivals: Sequence[Arrival], wake: Wake | None = None) -> list[bool]:
        self.groups.append(len(arrivals))
        return super().keep_all(arrivals, wake)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def inbox(store: Store) -> GroupsSeen:
    return GroupsSeen(store.database)


def add_job(store: Store, contacts: int = 1) -> tuple[str, str]:
    """A sent job of `contacts`: its id and its webhook token."""
    job_id, token = str(uuid.uuid4()), secrets.token_urlsafe(24)
    now = datetime.now(UTC)
    run_id = store.runs.start("acme", "sync")
    store.jobs.create(
        Job(job_id, "acme", run_id, sha256(token), None, JobStatus.SENT, ["email"], contacts, now, now, None, None),
        [],
    )  # fmt: skip
    return job_id, token


def together(commit: GroupCommit, arrivals: Sequence[Arrival]) -> list[bool | BaseException]:
    """Every arrival handed over at once, as concurrent requests would: each one's answer or error.

    All are queued before the writer first runs (tasks start in the order they are made, the writer last),
    so they form one group, up to the group bound."""

    async def run() -> list[bool | BaseException]:
        return await asyncio.gather(*(commit.keep(a) for a in arrivals), return_exceptions=True)

    return asyncio.run(run())


def kept(store: Store, job_id: str) -> list[tuple[bytes, str]]:
    return [(bytes(d["body"]), d["status"]) for d in store.inbox.of_job(job_id)]


# --------------------------------------------------------------------------- the group commit itself


def test_deliveries_handed_over_together_are_one_transaction_with_an_answer_each(
    store: Store, inbox: GroupsSeen
) -> None:
    job_id, _ = add_job(store)
    inbox.keep(job_id, b'{"n": "before"}')
    answers = together(
        GroupCommit(inbox),
        [
            Arrival(job_id, b'{"n": 1}'),
            Arrival(job_id, b'{"n": "before"}'),  # stored by an earlier request
            Arrival(job_id, b'{"n": 2}'),
            Arrival(job_id, b'{"n": 1}'),  # its twin is earlier in this same group
        ],
    )
    assert answers == [True, False, True, False]
    assert inbox.groups == [1, 4], "one store call for the four"
    assert sorted(body for body, _ in kept(store, job_id)) == [b'{"n": "before"}', b'{"n": 1}', b'{"n": 2}']


def test_of_twins_in_one_group_the_first_is_kept_as_it_came(store: Store, inbox: GroupsSeen) -> None:
    job_id, _ = add_job(store)
    refused = Arrival(job_id, b"[]", "invalid", "no contacts in the payload")
    answers = together(GroupCommit(inbox), [refused, Arrival(job_id, b"[]")])
    assert answers == [True, False]
    assert kept(store, job_id) == [(b"[]", "invalid")]


def test_a_failed_group_fails_every_request_in_it_and_keeps_none_of_it(
    store: Store, inbox: GroupsSeen
) -> None:
    job_id, _ = add_job(store)
    good = [Arrival(job_id, f'{{"n": {n}}}'.encode()) for n in range(5)]
    refused_by_the_database = Arrival(job_id, b'{"n": "bad"}', None)  # type: ignore[arg-type]  # status is NOT NULL
    answers = together(GroupCommit(inbox), [*good[:2], refused_by_the_database, *good[2:]])
    assert inbox.groups == [6]
    assert all(isinstance(answer, GroupCommitFailed) for answer in answers), answers
    assert kept(store, job_id) == []
    # Nothing of the failed group was half-kept: sent again, every body is fresh.
    assert together(GroupCommit(inbox), good) == [True] * 5


def test_a_group_is_bounded_and_the_rest_follow_in_the_next(store: Store, inbox: GroupsSeen) -> None:
    job_id, _ = add_job(store)
    arrivals = [Arrival(job_id, f'{{"n": {n}}}'.encode()) for n in range(5)]
    assert together(GroupCommit(inbox, largest_group=2), arrivals) == [True] * 5
    assert inbox.groups == [2, 2, 1]


def test_a_lone_delivery_is_a_group_of_one(store: Store, inbox: GroupsSeen) -> None:
    job_id, _ = add_job(store)
    commit = GroupCommit(inbox)
    assert together(commit, [Arrival(job_id, b'{"n": 1}')]) == [True]
    assert together(commit, [Arrival(job_id, b'{"n": 1}')]) == [False]
    assert inbox.groups == [1, 1]


# --------------------------------------------------------------------------- through the webhook


@dataclass
class Served:
    url: str
    store: Store
    store_url: str
    job_id: str
    token: str

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        return HTTP.post(
            f"{self.url}/webhooks/lonescale/{self.job_id}",
            params={"token": self.token},
            content=body,
            headers=headers,
        )


@pytest.fixture
def served(store: Store, inbox: GroupsSeen, store_url: str) -> Iterator[Served]:
    job_id, token = add_job(store, contacts=64)  # the tests deliver one body per contact, 64 at most
    store.inbox = inbox  # the webhook keeps its deliveries through it, so its groups are seen
    server = ThreadedServer(create_app(store), name="webhook")
    url = server.start()
    yield Served(url, store, store_url, job_id, token)
    server.stop()


def result(n: int) -> bytes:
    return json.dumps({"email": f"ada.{n}@example.com", "custom": {"contact_id": f"003{n}"}}).encode()


def test_concurrent_deliveries_are_each_stored_once_and_committed_before_their_2xx(
    served: Served, inbox: GroupsSeen
) -> None:
    bodies = [result(n) for n in range(64)]
    sent = [body for body in bodies for _ in range(2)]  # each delivered twice, the copies side by side
    observer = Store(served.store_url)  # its own engine: sees only what was committed
    inbox = schema.inbox

    def deliver(body: bytes) -> tuple[int, str, int]:
        response = served.post(body)
        with observer.database.engine.connect() as db:
            rows = db.execute(
                select(func.count()).where(
                    inbox.c.job_id == served.job_id, inbox.c.body_sha256 == sha256(body)
                )
            ).scalar_one()
        return response.status_code, response.json()["message"], int(rows)

    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(deliver, sent))
    finally:
        observer.close()
    assert {(status, rows) for status, _, rows in answers} == {(200, 1)}, "stored, once, before the answer"
    for n, body in enumerate(bodies):
        messages = sorted(message for _, message, _ in answers[2 * n : 2 * n + 2])
        assert messages == ["duplicate", "stored"], body
    assert sorted(body for body, _ in kept(served.store, served.job_id)) == sorted(bodies)
    assert sum(served.store.inbox.groups) == len(sent)  # type: ignore[attr-defined]


def test_while_the_store_fails_every_delivery_is_refused_5xx_and_none_is_kept(served: Served) -> None:
    with served.store.database.engine.begin() as db:
        db.execute(text("ALTER TABLE inbox RENAME TO inbox_away"))
    bodies = [result(n) for n in range(24)]
    # uvicorn closes a connection whose request raised: one request per connection, so none is sent down
    # a connection the server is closing.
    once = {"connection": "close"}
    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(lambda body: served.post(body, once).status_code, bodies))
    assert statuses == [500] * len(bodies)
    with served.store.database.engine.begin() as db:
        db.execute(text("ALTER TABLE inbox_away RENAME TO inbox"))
    assert kept(served.store, served.job_id) == []
    # None was acknowledged nor kept: LoneScale's next attempt stores each one, not a duplicate.
    with ThreadPoolExecutor(max_workers=12) as pool:
        messages = list(pool.map(lambda body: served.post(body).json()["message"], bodies))
    assert messages == ["stored"] * len(bodies)
