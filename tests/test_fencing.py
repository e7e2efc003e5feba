"""Fencing: a holder that froze past its lease and lost it to another process writes nothing after it wakes,
neither to the store (cursor, journal) nor to the CRM (no batch after the takeover but those on the wire)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from connector.errors import LeaseLost
from connector.fencing import fenced
from connector.models import FieldUpdate, RecordRef
from connector.store import Cursor, JournalEntry, Lease, Leases, Store, instance_lease
from tests.conftest import Served
from tests.support import hubspot_instance

NAME = instance_lease("acme")
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


def frozen_holder(store: Store) -> Lease:
    """A lease taken by a holder whose clock stopped long ago: to everyone else it expired at once, as the
    lease of a process suspended past its expiry does; the holder itself does not know yet."""
    return Leases(store.database, clock=lambda: LONG_AGO).acquire(NAME, "apply")


def test_a_holder_that_lost_its_lease_moves_no_cursor_and_records_nothing(store_url: str) -> None:
    store = Store(store_url)
    try:
        store.cursors.set("acme", Cursor(datetime(2026, 1, 1, tzinfo=UTC)))
        frozen = frozen_holder(store)
        run = store.runs.start("acme", "apply")
        (pending,) = store.journal.add(
            [JournalEntry(run, None, "acme", "r1", "Title", None, "CTO", "pending")]
        )
        # …and here it froze, past its lease's expiry.
        taker = store.leases.acquire(NAME, "sync")  # the frozen one's lease has expired: taken over
        assert taker.epoch == frozen.epoch + 1

        with pytest.raises(LeaseLost):
            store.cursors.set("acme", Cursor(datetime(2026, 6, 1, tzinfo=UTC)), fence=frozen.fence)
        with pytest.raises(LeaseLost):
            store.journal.settle("acme", {pending: ("written", None)}, {}, {}, fence=frozen.fence)
        with pytest.raises(LeaseLost):
            store.journal.add(
                [JournalEntry(run, None, "acme", "r2", "Title", None, "CEO", "pending")], frozen.fence
            )
        with pytest.raises(LeaseLost):
            frozen.renew()

        assert store.cursors.get("acme") == Cursor(datetime(2026, 1, 1, tzinfo=UTC)), "the cursor stayed"
        assert [(e.record_id, e.outcome) for e in store.journal.pending("acme")] == [("r1", "pending")]
        store.cursors.set("acme", Cursor(datetime(2026, 6, 1, tzinfo=UTC)), fence=taker.fence)
        assert store.cursors.get("acme") == Cursor(datetime(2026, 6, 1, tzinfo=UTC)), (
            "the new holder's counts"
        )
    finally:
        store.close()


def test_a_write_back_whose_lease_is_taken_over_mid_write_sends_no_batch_after_it(
    tmp_path: object, hubspot_sandbox: Served
) -> None:
    store = Store(f"sqlite:///{tmp_path}/store.db")
    instance = hubspot_instance(hubspot_sandbox)
    people = [{"email": f"fence{n}@example.com", "firstname": "F", "lastname": f"N{n}"} for n in range(500)]
    ids = hubspot_sandbox.control.seed(people)
    updates = [FieldUpdate(RecordRef(instance.name, "contacts", i), {"jobtitle": "Fenced"}) for i in ids]
    hubspot_sandbox.control.configure(
        latency_ms=400
    )  # the first two batches (of five) are on the wire a while
    hubspot_sandbox.control.clear_stats()
    frozen = frozen_holder(store)
    took: list[Lease] = []

    def take_over() -> None:
        deadline = time.monotonic() + 30
        while hubspot_sandbox.control.concurrency()["in_flight"] == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        took.append(store.leases.acquire(NAME, "apply"))

    other = threading.Thread(target=take_over)
    other.start()
    try:
        with fenced(frozen.check), pytest.raises(LeaseLost):
            instance.adapter.write_back(updates)
    finally:
        other.join()
        store.close()

    assert took, "another process took the lease over while the batches were on the wire"
    sent = hubspot_sandbox.control.count(route="/crm/v3/objects/contacts/batch/update")
    assert sent == 2, f"the two batches on the wire at the takeover, none after (of 5): {sent}"
