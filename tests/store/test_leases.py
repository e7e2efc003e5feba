"""Per-instance leases on SQLite and PostgreSQL: one holder at a time, a lost lease found before writing."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest

from connector.errors import Busy, LeaseLost
from connector.store import Store, instance_lease

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
