"""The runs' counts summed as they finish (tables `run_totals` and `run_kinds`), for /metrics.

/metrics reads the store at every scrape (connector.metrics.StoreCollector). Summing every run's JSON counts
there (a GROUP BY over the whole `runs` table per figure) took 1.6 s at 200,000 runs on SQLite and grew
with the history, toward Prometheus's 10 s scrape timeout. Here the sums are kept instead, added to in the
transaction that writes a run's counts (connector.store.runs.Runs.finish, their only writer), so a scrape
reads a few rows per instance whatever the history, and a run's counts are in the sums exactly when they are
in the run. Revision 0008 built them from the runs already stored.

What adds: a count that is a JSON number (an int or a float, not a boolean). Anything else (null, a string, a
boolean, a list) adds 0, as do a mapping's entries that are not numbers; a missing key adds nothing. (The
GROUP BY read the same numbers the same way; for values our code never writes it disagreed with itself:
PostgreSQL refused a boolean or a string, SQLite read `true` as 1 and a string by its leading digits.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, select

from connector.store import schema
from connector.store.database import aware
from connector.store.dialect import insert_ignoring_duplicates, upsert

SCALAR = ""  # the `entry` of a count that is a number itself
SUCCEEDED = "succeeded"

Figure = tuple[str, str]  # (count name, entry)


def number(value: Any) -> float:
    """What a value adds to a sum: itself when it is a finite JSON number, else 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value) if math.isfinite(value) else 0.0


def figures(counts: Mapping[str, Any]) -> dict[Figure, float]:
    """A run's counts as the rows they add to: a number under (name, ''), a mapping's entries under
    (name, entry)."""
    found: dict[Figure, float] = {}
    for name, value in counts.items():
        if isinstance(value, Mapping):
            for entry, inner in value.items():
                found[(str(name), str(entry))] = number(inner)
        else:
            found[(str(name), SCALAR)] = number(value)
    return found


def started(db: Connection, instance: str, kind: str) -> None:
    """The instance has a run of this kind: its figures read 0 from now on, not nothing."""
    db.execute(insert_ignoring_duplicates(db.engine, schema.run_kinds), {"instance": instance, "kind": kind})


def finished(db: Connection, run: Mapping[str, Any], status: str, counts: Mapping[str, Any],
             at: datetime) -> None:  # fmt: skip
    """Run `run` (its row as it was before: instance, kind, status, counts) now ended `status` at `at` with
    `counts`: the sums move by the difference, which is the whole of `counts` for a run that was running
    (its counts were {}). A run finished again (a frozen process that came back after its run was
    interrupted) replaces its counts, and so its share of the sums."""
    instance, kind = run["instance"], run["kind"]
    before, after = figures(run["counts"] or {}), figures(counts)
    # Every figure of the new counts (a 0 too: an entry is then listed, as the GROUP BY listed it), and
    # those the old counts had that moved. Sorted: two finishes that meet on PostgreSQL take the rows in one
    # order, so they wait for each other instead of deadlocking.
    changes = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after.keys() | before.keys()}
    rows = [
        {"instance": instance, "kind": kind, "name": name, "entry": entry, "total": delta}
        for (name, entry), delta in sorted(changes.items())
        if delta != 0.0 or (name, entry) not in before
    ]
    if rows:
        table = schema.run_totals
        statement = upsert(db.dialect.name, table, ("instance", "kind", "name", "entry"), (), add=("total",))
        db.execute(statement, rows)
    if status == SUCCEEDED:
        statement = upsert(
            db.dialect.name, schema.run_kinds, ("instance", "kind"), (), latest=("last_succeeded_at",)
        )
        db.execute(statement, {"instance": instance, "kind": kind, "last_succeeded_at": at})
    else:  # listed, in case its start was not (an older lonescale-sync started it)
        started(db, instance, kind)
    if run["status"] == SUCCEEDED and status != SUCCEEDED:
        _recount_last_success(db, instance, kind)  # its success is undone: the latest may be an older one


def _recount_last_success(db: Connection, instance: str, kind: str) -> None:
    runs, kinds = schema.runs, schema.run_kinds
    latest = (
        select(func.max(runs.c.finished_at))
        .where(runs.c.instance == instance, runs.c.kind == kind, runs.c.status == SUCCEEDED)
        .scalar_subquery()
    )
    db.execute(
        kinds.update()
        .where(kinds.c.instance == instance, kinds.c.kind == kind)
        .values(last_succeeded_at=latest)
    )


def totals(db: Connection, kinds: Sequence[str], keys: Sequence[str]) -> dict[str, dict[str, float]]:
    """Instance → count → its sum over the instance's runs of these kinds, for every instance that has had
    such a run (a running one too: 0 until it finishes)."""
    present, sums = schema.run_kinds, schema.run_totals
    query = (
        select(present.c.instance, sums.c.name, func.sum(sums.c.total))
        .select_from(present)
        .outerjoin(
            sums,
            and_(
                sums.c.instance == present.c.instance,
                sums.c.kind == present.c.kind,
                sums.c.entry == SCALAR,
                sums.c.name.in_(list(keys)),
            ),
        )
        .where(present.c.kind.in_(list(kinds)))
        .group_by(present.c.instance, sums.c.name)
    )
    found: dict[str, dict[str, float]] = {}
    for instance, name, total in db.execute(query):
        mine = found.setdefault(instance, dict.fromkeys(keys, 0.0))
        if name is not None:
            mine[name] = float(total or 0)
    return found


def totals_by(db: Connection, kinds: Sequence[str], key: str) -> dict[tuple[str, str], float]:
    """(instance, entry) → the sum over runs of these kinds of one count that is a mapping."""
    sums = schema.run_totals
    query = (
        select(sums.c.instance, sums.c.entry, func.sum(sums.c.total))
        .where(sums.c.kind.in_(list(kinds)), sums.c.name == key, sums.c.entry != SCALAR)
        .group_by(sums.c.instance, sums.c.entry)
    )
    return {(instance, entry): float(total or 0) for instance, entry, total in db.execute(query)}


def last_succeeded(db: Connection) -> dict[tuple[str, str], datetime]:
    kinds = schema.run_kinds
    query = select(kinds.c.instance, kinds.c.kind, kinds.c.last_succeeded_at).where(
        kinds.c.last_succeeded_at.is_not(None)
    )
    return {(row[0], row[1]): aware(row[2]) for row in db.execute(query)}  # type: ignore[misc]
