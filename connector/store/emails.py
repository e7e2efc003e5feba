"""Which contact of an instance holds each email (the crm_emails table): HubSpot keeps a contact's email
unique per portal, so the write-back checks a found email here before sending it (connector/apply_unique.py).

Fed from what the connector sees anyway: every pulled record's email (connector/sync.py, one bulk write per
pull chunk), the current values read before each write-back, and our own successful writes. It is a hint,
never the truth: a person can change a contact in the CRM between two pulls, so a holder is confirmed
against the CRM before a write is refused, and an email the index missed still meets the CRM's own 409.

Emails are kept as the SHA-256 of their stripped, casefolded text (`key`): HubSpot compares them without
case, and the table then holds no second copy of anyone's address."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import delete, select

from connector.store import schema
from connector.store.database import Database, now
from connector.store.dialect import slices, upsert


def key(email: Any) -> str | None:
    """The index's key for an email; None for no email (None, blank)."""
    text = str(email).strip().casefold() if email is not None else ""
    return hashlib.sha256(text.encode()).hexdigest() if text else None


class Emails:
    def __init__(self, database: Database):
        self._database = database

    def seen(self, instance: str, emails: Mapping[str, Any]) -> None:
        """Record id → its email as just seen (None or blank: it has none). A record's earlier row goes when its
        email changed, and its email is taken from whichever record held it before: one holder per email, as
        in the CRM, the latest sight winning. One transaction: a read of the records' rows, then writes for
        those that changed only, so pulling records already known (most of an incremental sync) writes none."""
        if not emails:
            return
        table, stamp = schema.crm_emails, now()
        wanted = {record_id: key(email) for record_id, email in emails.items()}
        with self._database.writing() as db:
            held: dict[str, str] = {}
            for some in slices(list(wanted)):
                query = select(table.c.record_id, table.c.email_sha256).where(
                    table.c.instance == instance, table.c.record_id.in_(some)
                )
                held.update((row.record_id, row.email_sha256) for row in db.execute(query))
            changed = [rid for rid, hashed in wanted.items() if held.get(rid) != hashed]
            for some in slices([rid for rid in changed if rid in held]):
                db.execute(delete(table).where(table.c.instance == instance, table.c.record_id.in_(some)))
            rows: dict[str, dict[str, Any]] = {}
            for record_id in changed:  # two records of one chunk with one email: the later sight wins
                hashed = wanted[record_id]
                if hashed is not None:
                    rows[hashed] = {"instance": instance, "email_sha256": hashed, "record_id": record_id,
                                    "seen_at": stamp}  # fmt: skip
            if rows:
                statement = upsert(
                    db.dialect.name, table, ("instance", "email_sha256"), ("record_id", "seen_at")
                )
                db.execute(statement, list(rows.values()))

    def holders(self, instance: str, emails: Iterable[Any]) -> dict[str, str]:
        """Email key → the record id last seen holding it, for the emails the index knows."""
        table = schema.crm_emails
        keys = sorted({k for k in map(key, emails) if k is not None})
        found: dict[str, str] = {}
        with self._database.reading() as db:
            for some in slices(keys):
                query = select(table.c.email_sha256, table.c.record_id).where(
                    table.c.instance == instance, table.c.email_sha256.in_(some)
                )
                found.update((row.email_sha256, row.record_id) for row in db.execute(query))
        return found

    def count(self, instance: str) -> int:
        """Emails indexed for the instance (status, tests)."""
        table = schema.crm_emails
        with self._database.reading() as db:
            return len(db.execute(select(table.c.email_sha256).where(table.c.instance == instance)).all())
