"""Per-instance leases: one holder at a time for a sync or a write-back pass, on SQLite and PostgreSQL alike.

Why: two runs of one instance at once (a `sync NAME` beside the daemon, two daemons on one store) both read
the cooldowns before either records its job, and post the same contacts twice; a `replay` beside the
daemon's write-back cannot tell the journal rows that write has in flight from a crash's leftovers. A lease
is a row taken by one atomic upsert (`ON CONFLICT … DO UPDATE … WHERE` the row is free or expired), renewed
as the work goes on, and released at its end. Its epoch grows with each new holder, so a holder that froze
past its expiry finds out at its next renewal (`LeaseLost`) before it writes anything more.

A holder that died without releasing (SIGKILL, power loss) is waited out until its lease expires, except on
the same host, where a holder whose process no longer exists is taken over at once: a restarted daemon
resumes without waiting.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from connector.errors import Busy, LeaseLost
from connector.store import schema
from connector.store.database import Database
from connector.store.dialect import upsert
from connector.store.fences import Fence, extend

log = logging.getLogger(__name__)
# Longer than any one step between renewals can take: one CRM or LoneScale call retried up to its 300 s
# deadline (connector.retry), with room to spare.
DEFAULT_TTL = timedelta(minutes=10)
WAIT_STEP = 0.5  # seconds between tries while waiting for a lease
# `Lease.check` renews at most this often (or a tenth of the TTL, if shorter): a renewal is a write
# transaction, and a sync or a write-back makes one CRM call after another (3,935 checks in a HubSpot cycle of
# 100,000 contacts, measured; about 4 % of its CPU on SQLite).
FRESH_FOR = timedelta(seconds=1)
Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


@dataclass(frozen=True)
class Holding:
    """Who holds (or last held) a lease, as a person reads it in a refusal or in `status`."""

    name: str
    holder: str
    host: str
    pid: int
    purpose: str
    epoch: int
    acquired_at: datetime
    expires_at: datetime

    def describe(self) -> str:
        return (
            f"process {self.pid} on {self.host} holds it ({self.purpose}) since "
            f"{self.acquired_at:%Y-%m-%d %H:%M:%SZ}, until {self.expires_at:%H:%M:%SZ} unless renewed"
        )


class Lease:
    """A lease we hold. `check()` before each call that acts on the other side (a trigger, a CRM call);
    `renew()` before a step that must extend it whatever (the cursor)."""

    def __init__(
        self, leases: Leases, name: str, holder: str, epoch: int, ttl: timedelta, written_at: datetime
    ):
        self._leases, self.name, self.holder, self.epoch, self.ttl = leases, name, holder, epoch, ttl
        self.released = False
        self._fresh_for = min(FRESH_FOR, ttl / 10)
        # When we last wrote it: by our monotonic clock, and as stamped (a tuple: the sender's thread and the
        # sync's check the same lease, and each reads one whole pair).
        self._confirmed = (time.monotonic(), written_at)

    @property
    def fence(self) -> Fence:
        """What a commit made under this lease checks in its own transaction (connector.store.fences)."""
        return Fence(self.name, self.holder, self.epoch, self.ttl)

    def renew(self) -> None:
        """Extend it; raises LeaseLost when another holder has taken it meanwhile."""
        written_at = self._leases.renew(self)
        if written_at is None:
            raise LeaseLost(
                f"{self.name}: our lease expired and another process took it over; stopping before writing more"
            )
        self._confirmed = (time.monotonic(), written_at)

    def check(self) -> None:
        """Renew it (LeaseLost if it is another's), unless we wrote it less than a second ago (FRESH_FOR) on
        both our monotonic clock and the real one against the time it was stamped with.

        Within that second nobody can have taken it: a takeover needs the lease expired, a whole TTL after our
        last write, or our process gone. A holder that froze past its lease finds, when it wakes, at least
        that second gone on its monotonic clock, and renews; the real clock's side covers a lease stamped long
        ago (a holder whose clock stopped, as tests/test_fencing.py models one), and the monotonic side a
        real clock stepped back."""
        since, written_at = self._confirmed
        if (
            not self.released  # released by us: the renewal finds it no longer ours, as before
            and time.monotonic() - since < self._fresh_for.total_seconds()
            and _now() - written_at < self._fresh_for
        ):
            return
        self.renew()

    def release(self) -> None:
        if not self.released:
            self._leases.release(self)
            self.released = True

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Leases:
    def __init__(self, database: Database, clock: Clock = _now, ttl: timedelta = DEFAULT_TTL):
        self._database, self._clock, self._ttl = database, clock, ttl
        self._host, self._pid = socket.gethostname()[:200], os.getpid()

    def acquire(self, name: str, purpose: str, ttl: timedelta | None = None, *, wait: float = 0.0) -> Lease:
        """Take the lease, or raise Busy naming who has it; `wait` seconds for it to come free first. `ttl`:
        the store's (`[cluster] lease_ttl`, else DEFAULT_TTL) unless given."""
        ttl = self._ttl if ttl is None else ttl
        deadline = time.monotonic() + wait
        while True:
            try:
                return self._acquire(name, purpose, ttl)
            except Busy:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(min(WAIT_STEP, max(0.0, deadline - time.monotonic())))

    def _acquire(self, name: str, purpose: str, ttl: timedelta) -> Lease:
        holder = f"{self._host}:{self._pid}:{uuid.uuid4().hex[:12]}"
        for _ in range(3):  # a lease released between our upsert and our read is tried again
            now = self._clock()
            epoch = self._take_if_free(name, holder, purpose, now, ttl)
            if epoch is None:
                current = self.holding(name)
                if current is None:
                    continue
                epoch = self._take_from_the_dead(current, holder, purpose, now, ttl)
            return Lease(self, name, holder, epoch, ttl, written_at=now)
        raise Busy(f"{name} is busy: other processes keep taking it; try again later")

    def _take_if_free(
        self, name: str, holder: str, purpose: str, now: datetime, ttl: timedelta
    ) -> int | None:
        table = schema.leases
        row = {"name": name, "holder": holder, "host": self._host, "pid": self._pid, "purpose": purpose,
               "epoch": 1, "acquired_at": now, "expires_at": now + ttl}  # fmt: skip
        statement = upsert(
            self._database.engine.dialect.name,
            table,
            ("name",),
            ("holder", "host", "pid", "purpose", "acquired_at", "expires_at"),
            also={"epoch": table.c.epoch + 1},
            where=(table.c.holder == "") | (table.c.expires_at < now),
        ).returning(table.c.epoch)
        with self._database.writing() as db:
            epoch = db.execute(statement, row).scalar()
        return None if epoch is None else int(epoch)

    def _take_from_the_dead(
        self, current: Holding, holder: str, purpose: str, now: datetime, ttl: timedelta
    ) -> int:
        if current.host != self._host or current.pid == self._pid or process_alive(current.pid):
            raise Busy(f"{current.name} is busy: {current.describe()}; try again when it has finished")
        table = schema.leases
        statement = (
            update(table)
            .where(table.c.name == current.name, table.c.holder == current.holder,
                   table.c.epoch == current.epoch)
            .values(holder=holder, host=self._host, pid=self._pid, purpose=purpose, acquired_at=now,
                    expires_at=now + ttl, epoch=table.c.epoch + 1)
            .returning(table.c.epoch)
        )  # fmt: skip
        with self._database.writing() as db:
            epoch = db.execute(statement).scalar()
        if epoch is None:
            raise Busy(f"{current.name} is busy: another process took it over at the same moment")
        log.info(
            "%s: took over from process %d, which stopped without releasing it", current.name, current.pid
        )
        return int(epoch)

    def renew(self, lease: Lease) -> datetime | None:
        """Extend the lease if it is still this holder's: the time it was stamped with, or None if it is not."""
        now = self._clock()
        with self._database.writing() as db:
            return now if extend(db, lease.fence, now) else None

    def release(self, lease: Lease) -> None:
        table = schema.leases
        statement = (
            update(table)
            .where(table.c.name == lease.name, table.c.holder == lease.holder, table.c.epoch == lease.epoch)
            .values(holder="", expires_at=self._clock())
        )
        with self._database.writing() as db:
            db.execute(statement)

    def holding(self, name: str) -> Holding | None:
        """The live holder of a lease, or None when it is free (released or expired)."""
        table = schema.leases
        with self._database.reading() as db:
            row = db.execute(select(table).where(table.c.name == name)).first()
        if row is None or not row.holder or _aware(row.expires_at) < self._clock():
            return None
        return Holding(row.name, row.holder, row.host, row.pid, row.purpose, row.epoch,
                       _aware(row.acquired_at), _aware(row.expires_at))  # fmt: skip

    @contextmanager
    def held(self, name: str, purpose: str, ttl: timedelta | None = None) -> Iterator[Lease]:
        lease = self.acquire(name, purpose, ttl)
        try:
            yield lease
        finally:
            lease.release()


def instance_lease(instance: str) -> str:
    """The lease a sync, a write-back pass, a replay and a rollback of one instance all take."""
    return f"instance:{instance}"
