"""The inbox: each webhook body kept once, durably, until applied; what waits, what was refused, and
what a replay finds again."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from connector.store import Arrival, Job, Store, schema, sha256

HOUR = timedelta(hours=1)


def test_a_duplicate_delivery_is_stored_once(store: Store, make_job: Callable[..., Job]) -> None:
    make_job()
    assert store.inbox.keep("job-1", b'{"email": "a@x.com"}') is True
    assert store.inbox.keep("job-1", b'{"email": "a@x.com"}') is False
    assert store.inbox.keep("job-1", b'{"email": "b@x.com"}') is True
    deliveries = store.inbox.new()
    assert [d.body for d in deliveries] == [b'{"email": "a@x.com"}', b'{"email": "b@x.com"}']
    store.inbox.mark([deliveries[0].id], "applied")
    assert [d.body for d in store.inbox.new()] == [b'{"email": "b@x.com"}']


def test_bodies_kept_together_say_each_whether_it_was_fresh(
    store: Store, make_job: Callable[..., Job]
) -> None:
    make_job()
    store.inbox.keep("job-1", b"[1]")
    fresh = store.inbox.keep_all(
        [
            Arrival("job-1", b"[1]"),
            Arrival("job-1", b"[2]", "invalid", "no contacts"),
            Arrival("job-1", b"[2]"),
        ]
    )
    assert fresh == [False, True, False], "stored before; fresh; its twin earlier in the same call"
    assert [(bytes(r["body"]), r["status"]) for r in store.inbox.of_job("job-1")] == [
        (b"[1]", "new"),
        (b"[2]", "invalid"),
    ], "of twins, the first is kept as it came"


def test_unapplied_deliveries_come_page_by_page_in_arrival_order(
    store: Store, make_job: Callable[..., Job]
) -> None:
    make_job()
    make_job("job-2")
    for n in range(5):
        store.inbox.keep("job-1" if n % 2 else "job-2", f"[{n}]".encode())
    first = store.inbox.new(limit=2)
    assert [d.body for d in first] == [b"[0]", b"[1]"]
    assert [d.body for d in store.inbox.new(limit=2, after=first[-1].id)] == [b"[2]", b"[3]"]
    assert store.inbox.unapplied("job-1") == 2 and store.inbox.unapplied("job-2") == 3
    store.inbox.mark([d.id for d in first], "applied")
    assert store.inbox.unapplied("job-1") == 1 and store.inbox.unapplied("job-2") == 2


def test_a_jobs_inbox_usage_counts_every_body_it_keeps_and_their_bytes(
    store: Store, make_job: Callable[..., Job]
) -> None:
    make_job()
    make_job("job-2")
    assert store.inbox.usage("job-1") == (0, 0) and not store.inbox.has("job-1", sha256(b"[]"))
    store.inbox.keep("job-1", b'{"email": "a@x.com"}')
    store.inbox.keep("job-1", b"\xff not json", "invalid", "not JSON")  # kept for a person: it counts
    store.inbox.keep("job-2", b"[]", "invalid", "no contacts")
    assert store.inbox.usage("job-1") == (2, 20 + 10)
    assert store.inbox.has("job-1", sha256(b"\xff not json"))
    assert not store.inbox.has("job-1", sha256(b"[]")), "job-2's body, not job-1's"


def test_deliveries_kept_for_a_person_and_results_that_matched_no_contact(
    store: Store, make_job: Callable[..., Job]
) -> None:
    make_job()
    make_job("job-2", instance="other")
    store.inbox.keep("job-1", b"not json", "invalid", "not JSON")
    store.inbox.keep("job-1", b"[1]")
    store.inbox.keep("job-1", b"[2]")
    store.inbox.keep("job-2", b"[3]")
    applied = store.inbox.new()
    store.inbox.mark([applied[0].id], "applied", "2 result(s) matched no contact")
    store.inbox.mark([applied[1].id], "applied", "1 result(s) matched no contact")
    store.inbox.mark([applied[2].id], "applied", "3 result(s) matched no contact")
    assert store.inbox.unmatched_results("acme") == 3 and store.inbox.unmatched_results("other") == 3
    kept = store.inbox.unusable()
    assert [(d["job_id"], d["status"], d["error"]) for d in kept] == [
        ("job-2", "applied", "3 result(s) matched no contact"),
        ("job-1", "applied", "1 result(s) matched no contact"),
        ("job-1", "applied", "2 result(s) matched no contact"),
        ("job-1", "invalid", "not JSON"),
    ], "newest first"
    assert len(store.inbox.unusable(limit=1)) == 1


def test_the_latest_applied_deliveries_leave_out_big_bodies(
    store: Store, make_job: Callable[..., Job]
) -> None:
    make_job()
    for body in (b"[1]", b"[" + b"0" * 100 + b"]", b"[2]", b"[3]"):
        store.inbox.keep("job-1", body)
    first, big, second, _waiting = store.inbox.new()
    store.inbox.mark([first.id, big.id, second.id], "applied")
    assert [d.body for d in store.inbox.recent(10, max_bytes=50)] == [b"[2]", b"[1]"]
    assert [d.body for d in store.inbox.recent(1)] == [b"[2]"]


def test_a_replay_finds_a_jobs_deliveries_or_those_since_a_moment(
    store: Store, make_job: Callable[..., Job]
) -> None:
    make_job()
    make_job("job-2")
    for job_id, body in (("job-1", b"[1]"), ("job-2", b"[2]"), ("job-1", b"[3]")):
        store.inbox.keep(job_id, body)
    since = datetime.now(UTC) - timedelta(minutes=1)
    with store.database.engine.begin() as db:  # [1] came in long ago
        db.execute(update(schema.inbox).where(schema.inbox.c.body == b"[1]").values(received_at=since - HOUR))
    assert [d.body for d in store.inbox.matching(job_id="job-1")] == [b"[1]", b"[3]"]
    assert [d.body for d in store.inbox.matching(since=since)] == [b"[2]", b"[3]"]
    assert [d.body for d in store.inbox.matching(job_id="job-1", since=since)] == [b"[3]"]


def test_concurrent_writers_do_not_lose_deliveries(store: Store, make_job: Callable[..., Job]) -> None:
    make_job()
    errors: list[BaseException] = []

    def deliver(worker: int) -> None:
        try:
            for n in range(25):
                store.inbox.keep("job-1", f'{{"w": {worker}, "n": {n}}}'.encode())
        except BaseException as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.inbox.new(limit=1000)) == 100


def test_old_payloads_are_emptied_but_still_recognised_as_duplicates(
    store: Store, make_job: Callable[..., Job]
) -> None:
    make_job()
    store.inbox.keep("job-1", b'{"email": "a@x.com"}')
    store.inbox.keep("job-1", b'{"email": "b@x.com"}')
    first, _unapplied = store.inbox.new()
    store.inbox.mark([first.id], "applied")
    assert store.inbox.purge(datetime.now(UTC) + timedelta(seconds=1)) == 1, (
        "a delivery not yet applied is kept"
    )
    assert [d.body for d in store.inbox.matching(job_id="job-1")] == [b'{"email": "b@x.com"}']
    assert store.inbox.keep("job-1", b'{"email": "a@x.com"}') is False


def test_the_apply_loop_waits_for_a_batch_worth_writing(store: Store, make_job: Callable[..., Job]) -> None:
    from connector.runtime import FULL_BACKLOG, QUIET, backlog_ready

    assert not backlog_ready(store.inbox, datetime.now(UTC)), "nothing to apply"
    make_job()
    store.inbox.keep("job-1", b'{"n": 0}')
    arrived = datetime.now(UTC)
    assert not backlog_ready(store.inbox, arrived), "one result just arrived: more are probably coming"
    assert backlog_ready(store.inbox, arrived + QUIET), "arrivals paused: apply what is there"
    for n in range(1, FULL_BACKLOG):
        store.inbox.keep("job-1", f'{{"n": {n}}}'.encode())
    assert backlog_ready(store.inbox, datetime.now(UTC)), "a full batch is worth a write at once"
