"""Fencing: a commit made under a lease checks, in its own transaction, that the lease is still ours.

A holder that froze (a GC pause, a suspended VM, SIGSTOP) past its lease's expiry may wake up after another
process took the lease over (its epoch grew). Renewing before a step narrows the gap but leaves one: the
freeze may come between the renewal and the commit. So the commits that move an instance on (its cursor,
the journal's settlement of a write-back) extend the lease in the same transaction, matching holder and
epoch; when no row matches, the transaction is rolled back and nothing of it is kept
(docs/architecture.md#one-run-of-an-instance-at-a-time; Kleppmann, "How to do distributed locking", 2016:
https://martin.kleppmann.com/2016/02/08/how-to-do-distributed-locking.html).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, update

from connector.errors import LeaseLost
from connector.store import schema


@dataclass(frozen=True)
class Fence:
    """A lease as one holder took it: its name, that holder and the epoch it was taken at."""

    name: str
    holder: str
    epoch: int
    ttl: timedelta


def extend(db: Connection, fence: Fence, now: datetime) -> bool:
    """Extend the lease if it is still this holder's, in the caller's transaction; False if it is not."""
    table = schema.leases
    statement = (
        update(table)
        .where(table.c.name == fence.name, table.c.holder == fence.holder, table.c.epoch == fence.epoch)
        .values(expires_at=now + fence.ttl)
    )
    return bool(db.execute(statement).rowcount)


def hold(db: Connection, fence: Fence | None, now: datetime) -> None:
    """In the caller's transaction: raise LeaseLost (rolling it back) unless the lease is still ours."""
    if fence is None:
        return
    if not extend(db, fence, now):
        raise LeaseLost(
            f"{fence.name}: our lease expired and another process took it over; nothing of this step was kept"
        )
