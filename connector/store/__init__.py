"""Durable state: what was pulled, sent, received and written. SQLite by default, any SQLAlchemy URL works.

One module per aggregate, all sharing one Database (connector.store.database) and the dialect module:
runs, cursors, jobs (with their contacts), inbox, ledger (cooldowns), journal, leases, emails. A write spanning two
of them is one transaction, kept with the aggregate whose decision it is (its module says which). Callers
take the piece they need: `store.jobs.get(...)`, `store.inbox.keep(...)`, or the Jobs or Inbox alone."""

from __future__ import annotations

from datetime import timedelta

from connector.store.cursors import Cursors
from connector.store.database import Database
from connector.store.emails import Emails
from connector.store.fences import Fence
from connector.store.inbox import Inbox, sha256
from connector.store.jobs import Jobs
from connector.store.journal import Journal
from connector.store.leases import DEFAULT_TTL, Lease, Leases, instance_lease
from connector.store.ledger import Ledger
from connector.store.records import Arrival, Cursor, Delivery, Job, JobContact, JournalEntry
from connector.store.runs import Runs
from connector.store.schedules import Schedules
from connector.store.wakeups import Wakeups


class Store:
    """The whole store, opened (and migrated) once: its database and one object per aggregate."""

    def __init__(self, url: str, lease_ttl: timedelta = DEFAULT_TTL):
        self.database = Database(url)
        self.runs = Runs(self.database)
        self.cursors = Cursors(self.database)
        self.jobs = Jobs(self.database)
        self.inbox = Inbox(self.database)
        self.ledger = Ledger(self.database)
        self.journal = Journal(self.database)
        self.leases = Leases(self.database, ttl=lease_ttl)
        self.schedules = Schedules(self.database)
        self.emails = Emails(self.database)  # which contact holds each email: HubSpot's are unique
        self.wakeups = Wakeups(self.database)  # cluster mode only: procrastinate's tables on PostgreSQL

    def close(self) -> None:
        self.database.close()


__all__ = ["Arrival", "Cursor", "Cursors", "Database", "Delivery", "Emails", "Fence", "Inbox", "Job", "JobContact", "Jobs",
           "Journal", "JournalEntry", "Lease", "Leases", "Ledger", "Runs", "Schedules", "Store", "Wakeups",
           "instance_lease", "sha256"]  # fmt: skip
