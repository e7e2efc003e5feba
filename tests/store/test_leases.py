"""Per-instance leases on SQLite and PostgreSQL: one holder at a time, a lost lease found before writing."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from connector.errors import Busy, LeaseLost
from connector.store import Leases, Store, instance_lease

NAME = instance_lease("acme")


def test_a_second_holder_is_refused_with_who_holds_it_until_the_first_releases(store: Store) -> None:
    first = store.leases.acquire(NAME, "sync")
    with pytest.raises(Busy, match=r"instance:acme is busy: process \d+ on .+ holds it \(sync\) since"):
        store.leases.acquire(NAME, "apply")
    holding = store.leases.holding(NAME)
    assert holding is not None and (holding.purpose, holding.epoch) == ("sync", first.epoch)
    first.release()
    assert store.leases.holding(NAME) is None
    second = store.leases.acquire(NAME, "apply")
    assert second.epoch == first.epoch + 1, "each new holder gets a new epoch"


def test_an_expired_lease_is_taken_over_and_its_old_holder_finds_out_before_writing(store: Store) -> None:
    frozen = store.leases.acquire(NAME, "sync", ttl=timedelta(seconds=-1))  # as if it froze past its expiry
    taker = store.leases.acquire(NAME, "sync")
    with pytest.raises(LeaseLost):
        frozen.renew()
    frozen.release()  # releasing a lease we lost leaves the new holder's alone
    taker.renew()
    assert store.leases.holding(NAME) is not None


def test_a_lease_left_by_a_killed_process_on_this_host_is_taken_over_at_once(store_url: str) -> None:
    """A daemon restarted after SIGKILL: its old self cannot release, and waiting out the lease would stall
    every instance for minutes."""
    script = (
        "import os, signal, sys; from connector.store import Store; "
        "Store(sys.argv[1]).leases.acquire('instance:acme', 'sync'); os.kill(os.getpid(), signal.SIGKILL)"
    )
    killed = subprocess.run([sys.executable, "-c", script, store_url], check=False)
    assert killed.returncode == -9
    store = Store(store_url)
    try:
        left = store.leases.holding(NAME)
        assert left is not None and left.expires_at > datetime.now(UTC), "the dead process's lease is live"
        lease = store.leases.acquire(NAME, "sync")
        assert lease.epoch == left.epoch + 1
    finally:
        store.close()


def test_leases_of_different_instances_do_not_meet(store: Store) -> None:
    with store.leases.held(instance_lease("a"), "sync"), store.leases.held(instance_lease("b"), "sync"):
        assert store.leases.holding(instance_lease("a")) and store.leases.holding(instance_lease("b"))


def test_a_holder_may_wait_for_a_lease_to_come_free(store: Store) -> None:
    """The daemon's scheduled sync waits for a write-back pass of its instance instead of skipping its turn."""
    first = store.leases.acquire(NAME, "apply")
    releaser = threading.Timer(0.3, first.release)
    releaser.start()
    try:
        waited = store.leases.acquire(NAME, "sync", wait=10)
    finally:
        releaser.join()
    assert waited.epoch == first.epoch + 1
    with pytest.raises(Busy):
        store.leases.acquire(NAME, "sync", wait=0.2)  # held now, and not released within the wait


def expiry(store: Store) -> datetime:
    holding = store.leases.holding(NAME)
    assert holding is not None
    return holding.expires_at


def test_a_check_under_a_second_after_the_last_write_writes_nothing_and_a_later_one_renews(
    store: Store,
) -> None:
    """A sync or write-back checks before every CRM call: a write transaction each time would be most of what
    a check costs, and within a second of our last write nobody can have taken the lease."""
    moment = [datetime.now(UTC)]
    leases = Leases(store.database, clock=lambda: moment[0])
    lease = leases.acquire(NAME, "sync", ttl=timedelta(seconds=2))  # checks renew at most every 0.2 s
    written = expiry(store)
    moment[0] += timedelta(seconds=30)  # any renewal now would be stamped 30 s later: it would show
    lease.check()
    assert expiry(store) == written, "checked under 0.2 s after the lease was taken: nothing written"
    time.sleep(0.25)
    lease.check()
    assert expiry(store) == written + timedelta(seconds=30), "0.25 s later: renewed"
    lease.check()
    assert expiry(store) == written + timedelta(seconds=30)


def test_a_holder_that_froze_past_its_lease_finds_it_lost_at_its_first_check_after_waking(
    store: Store,
) -> None:
    """Frozen in real time (a GC pause, SIGSTOP): the freeze outlasts the second a check trusts."""
    holder = store.leases.acquire(NAME, "sync", ttl=timedelta(seconds=0.3))
    holder.check()
    time.sleep(0.4)  # …frozen, past its TTL
    taker = store.leases.acquire(NAME, "sync")
    assert taker.epoch == holder.epoch + 1
    with pytest.raises(LeaseLost):
        holder.check()


def test_a_check_trusts_the_monotonic_clock_when_the_real_one_is_behind_the_lease_stamp(store: Store) -> None:
    """A lease stamped ahead of the real clock (the clock stepped back since): only the monotonic clock says
    the second has gone, and the check renews, finding the takeover."""
    ahead = Leases(store.database, clock=lambda: datetime.now(UTC) + timedelta(hours=1))
    holder = ahead.acquire(NAME, "sync", ttl=timedelta(seconds=0.3))
    time.sleep(0.4)
    taker = ahead.acquire(NAME, "sync")  # by the same clock, expired: taken over
    assert taker.epoch == holder.epoch + 1
    with pytest.raises(LeaseLost):
        holder.check()


def test_a_check_after_the_holder_released_its_lease_finds_it_no_longer_held(store: Store) -> None:
    """A thread of the holder still working after the lease was let go (a sender behind its sync) stops."""
    lease = store.leases.acquire(NAME, "sync")
    lease.check()
    lease.release()
    with pytest.raises(LeaseLost):
        lease.check()
