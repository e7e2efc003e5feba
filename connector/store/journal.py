"""The write journal: every field we wrote to a CRM (or were about to), with the value before and after.

`settle` is the write-back's one commit after the CRM answered: the journal's outcomes, the cooldown
ledger's found/not found (connector.store.ledger.found) and the job contacts' states, in one transaction.
It lives here because the CRM's answer, which is what it records, is the journal's; a crash before it
leaves `pending` rows only, resolved on the next pass. The readers join the jobs and runs tables to say
which sync run bought each value and whether a rollback undid it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, func, or_, select, update

from connector.store import ledger, schema
from connector.store.database import Database, aware, now
from connector.store.dialect import slices
from connector.store.fences import Fence, hold
from connector.store.records import JournalEntry


class Journal:
    def __init__(self, database: Database):
        self._database = database

    def add(self, entries: Sequence[JournalEntry], fence: Fence | None = None) -> list[int]:
        """Add entries; their ids, in order (to settle `pending` ones once the CRM has answered). Under
        `fence`, only while that lease is still ours (connector.store.fences)."""
        if not entries:
            return []
        table, stamp = schema.write_journal, now()  # one clock read for the batch, not one per row
        rows = [
            {"run_id": e.run_id, "job_id": e.job_id, "instance": e.instance, "record_id": e.record_id,
             "field": e.field, "old_value": e.old_value, "new_value": e.new_value, "outcome": e.outcome,
             "reason": e.reason, "written_at": e.written_at or stamp}
            for e in entries
        ]  # fmt: skip
        with self._database.writing() as db:
            hold(db, fence, now())
            if db.dialect.name == "sqlite":
                return _insert_in_order(db, table, rows)
            result = db.execute(table.insert().returning(table.c.id, sort_by_parameter_order=True), rows)
            return [int(row.id) for row in result]

    def settle(
        self,
        instance: str,
        outcomes: Mapping[int, tuple[str, str | None]],
        found: Mapping[str, Mapping[str, bool]],
        marks: Mapping[tuple[str, str, str | None], Sequence[str]],
        drop: Sequence[int] = (),
        fence: Fence | None = None,
    ) -> None:
        """After the CRM answered: journal outcomes, what was found, and each contact's state, all at once,
        so a crash leaves either the `pending` journal (resolved on the next pass) or everything. Under
        `fence`, nothing is kept once the lease is another's: its holder resolves the pending rows."""
        journal, contacts = schema.write_journal, schema.job_contacts
        grouped: dict[tuple[str, str | None], list[int]] = {}
        for entry_id, verdict in outcomes.items():
            grouped.setdefault(verdict, []).append(entry_id)
        with self._database.writing() as db:
            hold(db, fence, now())
            for (outcome, reason), ids in grouped.items():
                for some in slices(ids):
                    db.execute(
                        update(journal).where(journal.c.id.in_(some)).values(outcome=outcome, reason=reason)
                    )
            for some in slices(drop):
                db.execute(journal.delete().where(journal.c.id.in_(some)))
            if found:
                ledger.found(db, instance, found)
            for (job_id, status, reason), record_ids in marks.items():
                for some_records in slices(record_ids):
                    db.execute(
                        update(contacts)
                        .where(contacts.c.job_id == job_id, contacts.c.record_id.in_(some_records))
                        .values(status=status, reason=reason)
                    )

    # -- reading ------------------------------------------------------------------------------------------
    def pending(self, instance: str) -> list[JournalEntry]:
        """Writes journaled as about to happen whose answer never came (the daemon stopped mid-write)."""
        table = schema.write_journal
        return self._entries(table.c.instance == instance, table.c.outcome == "pending")

    def for_record(self, instance: str, record_id: str) -> list[JournalEntry]:
        table = schema.write_journal
        return self._entries(table.c.instance == instance, table.c.record_id == record_id)

    def for_run(self, run_id: int) -> list[JournalEntry]:
        """What run `run_id` wrote: as a sync run, everything written from its jobs' results, by whichever
        write-back passes (a `sync --wait` is one run to the person who ran it); otherwise its own rows."""
        return self._entries(or_(schema.write_journal.c.run_id == run_id, schema.jobs.c.run_id == run_id))

    def last_written(
        self, instance: str, record_ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """Record → field → the value we last wrote there, where that write is still ours: a rollback that
        came after it restored what was there before us, so the field then holds no value of ours."""
        table, runs = schema.write_journal, schema.runs
        latest: dict[tuple[str, str], tuple[int, Any, str]] = {}
        with self._database.reading() as db:
            for some in slices(record_ids):
                query = (
                    select(table.c.id, table.c.record_id, table.c.field, table.c.new_value, runs.c.kind)
                    .join(runs, runs.c.id == table.c.run_id)
                    .where(table.c.instance == instance, table.c.record_id.in_(some),
                           table.c.field.in_(list(fields)), table.c.outcome == "written")
                )  # fmt: skip
                for row in db.execute(query):
                    key = (row.record_id, row.field)
                    if key not in latest or latest[key][0] < row.id:
                        latest[key] = (row.id, row.new_value, row.kind)
        ours: dict[str, dict[str, Any]] = {}
        for (record_id, name), (_, value, kind) in latest.items():
            if kind != "rollback":
                ours.setdefault(record_id, {})[name] = value
        return ours

    def counts(self, instance: str) -> dict[str, int]:
        """Fields written and fields the CRM rejected, over the instance's whole history."""
        table = schema.write_journal
        query = (
            select(table.c.outcome, func.count())
            .where(table.c.instance == instance)
            .group_by(table.c.outcome)
        )
        with self._database.reading() as db:
            return {outcome: int(count) for outcome, count in db.execute(query)}

    def written_by_cycle(self, instance: str, cycles: Sequence[int]) -> dict[tuple[int, str], int]:
        """(sync run, CRM field) → fields written from that run's jobs' results, by whichever write-back
        passes wrote them: the numerator of a field's fill rate (connector.status_series)."""
        table, jobs = schema.write_journal, schema.jobs
        found: dict[tuple[int, str], int] = {}
        with self._database.reading() as db:
            for some in slices(cycles):
                query = (
                    select(jobs.c.run_id, table.c.field, func.count())
                    .join(jobs, jobs.c.id == table.c.job_id)
                    .where(
                        table.c.instance == instance, table.c.outcome == "written", jobs.c.run_id.in_(some)
                    )
                    .group_by(jobs.c.run_id, table.c.field)
                )
                found.update({(int(run), name): int(n) for run, name, n in db.execute(query)})
        return found

    def _entries(self, *conditions: Any) -> list[JournalEntry]:
        """Journal rows, oldest first, each with the sync run whose job it wrote (`cycle`)."""
        table, jobs = schema.write_journal, schema.jobs
        query = (
            select(table, jobs.c.run_id.label("cycle"))
            .select_from(table.outerjoin(jobs, jobs.c.id == table.c.job_id))
            .where(*conditions)
            .order_by(table.c.id)
        )
        with self._database.reading() as db:
            return [
                JournalEntry(r.run_id, r.job_id, r.instance, r.record_id, r.field, r.old_value, r.new_value,
                             r.outcome, r.reason, aware(r.written_at), r.id, r.cycle)
                for r in db.execute(query)
            ]  # fmt: skip


def _insert_in_order(db: Connection, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    """SQLite: insert `rows`, their ids in order, at a fraction of the cost of SQLAlchemy's way.

    SQLAlchemy cannot batch an INSERT ... RETURNING that must follow the parameters' order on SQLite (its log
    says "ordered; batch not supported"): one statement per row, and its per-row parameter processing on top,
    a quarter of a write-back pass's CPU (bench/webhook_path.py). Here the rows go to the driver's
    `executemany` as tuples, each value through the column type's own bind processor (the bytes stored are
    SQLAlchemy's), and their ids are read after: in this transaction we hold SQLite's one write lock, and an
    INTEGER PRIMARY KEY row without an id takes the largest rowid plus one (https://www.sqlite.org/autoinc.html),
    so ours are the newest len(rows) ids, in the order inserted."""
    columns = list(rows[0])
    processors = [table.c[name].type.bind_processor(db.dialect) for name in columns]
    statement = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    values = [
        tuple(value if process is None else process(value)
              for process, value in zip(processors, (row[name] for name in columns), strict=True))
        for row in rows
    ]  # fmt: skip
    db.exec_driver_sql(statement, values)
    last = int(db.execute(select(func.max(table.c.id))).scalar_one())
    return list(range(last - len(rows) + 1, last + 1))
