"""What one /metrics scrape costs with N runs in the store: `python -m bench.scrape [--sizes 10000 200000]`.

For each size, on SQLite (a temp file) and on PostgreSQL when LONESCALE_SYNC_BENCH_POSTGRES_URL names one (in
a schema of its own, dropped after): a store is built at revision 0007 with N finished runs (20 instances,
syncs and write-back passes in turn, their counts the shape the code writes), then upgraded to the head,
which times revision 0008's backfill of the run totals (and 0009's indexes on the jobs, still empty). One
collect of `StoreCollector` is then timed (median of `--repeat`) on the rollup and on the naive baseline kept
here only: the GROUP BY over every run that `Runs.totals`, `totals_by` and `last_succeeded` were before 0008.
Both must give the same samples. Then as many jobs as runs are added and `Jobs.ages` (read per scrape) and
`Jobs.contacts_sent_since` (per capped instance per scrape) are timed on that jobs table. Prints one JSON object; writes nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Float,
    FromClause,
    cast,
    create_engine,
    func,
    insert,
    select,
    text,
    true,
    update,
)

from connector.metrics import StoreCollector
from connector.store import Store, schema
from connector.store.database import aware
from connector.store.dialect import make_engine
from connector.store.runs import Runs
from connector.store.upgrade import upgrade

POSTGRES_ENV = "LONESCALE_SYNC_BENCH_POSTGRES_URL"
SIZES = (10_000, 200_000)
INSTANCES = 20
CHUNK = 5_000
T0 = datetime(2025, 1, 1, tzinfo=UTC)
Sample = tuple[str, tuple[tuple[str, str], ...], float]


# --------------------------------------------------------------------------------- the naive baseline
def _entries(dialect: str, column: ColumnElement[Any], key: str) -> tuple[FromClause, ColumnElement[Any],
                                                                      ColumnElement[Any]]:  # fmt: skip
    """The entries of the JSON object at column[key] as rows, as `dialect.json_entries` gave them."""
    if dialect == "sqlite":
        entries = func.json_each(column, f"$.{key}").table_valued("key", "value")
    else:
        entries = func.json_each_text(column[key]).table_valued("key", "value")
    return entries, entries.c.key, cast(entries.c.value, Float)


class NaiveRuns(Runs):
    """`Runs` reading the figures as it did before revision 0008: a GROUP BY over every run per figure."""

    def totals(self, kinds: Sequence[str], keys: Sequence[str]) -> dict[str, dict[str, float]]:
        runs = schema.runs
        sums = [func.coalesce(func.sum(runs.c.counts[key].as_float()), 0.0) for key in keys]
        query = select(runs.c.instance, *sums).where(runs.c.kind.in_(list(kinds))).group_by(runs.c.instance)
        with self._database.reading() as db:
            return {row[0]: dict(zip(keys, map(float, row[1:]), strict=True)) for row in db.execute(query)}

    def totals_by(self, kinds: Sequence[str], key: str) -> dict[tuple[str, str], float]:
        runs = schema.runs
        entries, name, value = _entries(self._database.engine.dialect.name, runs.c.counts, key)
        query = (
            select(runs.c.instance, name, func.sum(value, type_=Float))
            .select_from(runs)
            .join(entries, true())
            .where(runs.c.kind.in_(list(kinds)))
            .group_by(runs.c.instance, name)
        )
        with self._database.reading() as db:
            return {(row[0], str(row[1])): float(row[2] or 0) for row in db.execute(query)}

    def last_succeeded(self) -> dict[tuple[str, str], datetime]:
        runs = schema.runs
        query = (
            select(runs.c.instance, runs.c.kind, func.max(runs.c.finished_at))
            .where(runs.c.status == "succeeded")
            .group_by(runs.c.instance, runs.c.kind)
        )
        with self._database.reading() as db:
            return {(row[0], row[1]): aware(row[2]) for row in db.execute(query) if row[2] is not None}  # type: ignore[misc]


def naive(store: Store) -> Store:
    """The same store, its runs' figures read the old way."""
    store.runs = NaiveRuns(store.database)
    return store


# --------------------------------------------------------------------------------------- the history
def counts(i: int, kind: str) -> dict[str, Any]:
    if kind == "sync":
        return {"pulled": 500 + i % 7, "sent": 100, "jobs": 1, "by_types": {"email": 100},
                "skipped": {"nothing missing": 300, "cooling down": 100 + i % 3}, "dropped_values": {},
                "credits_at_start": 10_000, "projected_credits": 200.5, "clock_skew_seconds": None}  # fmt: skip
    return {"deliveries": 10, "results": 100, "duplicates": 0, "uncorrelated": 0, "not_found": 0,
            "records_written": 100, "fields_written": 300, "records_rejected": 1, "fields_refused": 2,
            "kept_by_policy": {"fill_empty: the field already has a value": 20 + i % 5},
            "rejected_by_code": {"INVALID_EMAIL_ADDRESS": 1}, "refused_by_code": {"STRING_TOO_LONG": 2}}  # fmt: skip


def history(n: int) -> Iterator[dict[str, Any]]:
    """N finished runs over 20 instances, a sync and a write-back pass in turn; one in 50 failed."""
    for i in range(n):
        kind = ("sync", "apply")[i % 2]
        yield {"instance": f"i{i // 2 % INSTANCES:02d}", "kind": kind, "status": "failed" if i % 50 == 49 else "succeeded",
               "started_at": T0 + timedelta(minutes=i), "finished_at": T0 + timedelta(minutes=i, seconds=30),
               "counts": counts(i, kind)}  # fmt: skip


def jobs(n: int, run_ids: Sequence[int], now: datetime) -> Iterator[dict[str, Any]]:
    """N jobs, most applied long ago, the latest ones this month and a few still out."""
    statuses = ("applied", "applied", "applied", "partly_applied", "expired", "failed")
    for i in range(n):
        created = now - timedelta(minutes=n - i)
        status = "sent" if i >= n - 20 else statuses[i % len(statuses)]
        yield {"id": str(uuid.UUID(int=i)), "instance": f"i{i % INSTANCES:02d}", "run_id": run_ids[i % len(run_ids)],
               "token_sha256": "ab" * 32, "status": status, "enrichment_types": ["email"], "contact_count": 100,
               "created_at": created, "polls": 0, "updated_at": created}  # fmt: skip


def _insert(engine: Engine, table: Any, rows: Iterator[dict[str, Any]]) -> None:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == CHUNK:
            with engine.begin() as db:
                db.execute(insert(table), batch)
            batch = []
    if batch:
        with engine.begin() as db:
            db.execute(insert(table), batch)


# ------------------------------------------------------------------------------------------- timing
def samples(store: Store) -> list[Sample]:
    """Every sample one collect gives, sorted: what the rollup and the baseline must agree on."""
    found = [
        (sample.name, tuple(sorted(sample.labels.items())), sample.value)
        for family in StoreCollector(store, [], now=lambda: T0).collect()
        for sample in family.samples
    ]
    return sorted(found)


def timed(work: Callable[[], object], repeat: int) -> float:
    """The median of `repeat` runs of `work`, in seconds."""
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def measure(url: str, n: int, repeat: int = 3) -> dict[str, Any]:
    """One size on one database (an empty one at `url`)."""
    engine = make_engine(url)  # the store as 0007 left it, its history loaded as rows (runs' table unchanged)
    upgrade(engine, "bench", to="0007")
    start = time.perf_counter()
    _insert(engine, schema.runs, history(n))
    load_seconds = time.perf_counter() - start
    engine.dispose()

    start = time.perf_counter()
    store = Store(url)  # revision 0008 runs: the backfill
    upgrade_seconds = time.perf_counter() - start
    baseline = naive(Store(url))
    rollup_samples, naive_samples = samples(store), samples(baseline)
    figures: dict[str, Any] = {
        "runs": n,
        "load_seconds": round(load_seconds, 2),
        "upgrade_seconds": round(upgrade_seconds, 3),
        "collect_seconds": round(timed(lambda: samples(store), repeat), 4),
        "naive_collect_seconds": round(timed(lambda: samples(baseline), repeat), 4),
        "same_samples": rollup_samples == naive_samples,
        "samples": len(rollup_samples),
    }
    figures["speedup"] = round(figures["naive_collect_seconds"] / max(figures["collect_seconds"], 1e-9), 1)
    with store.database.reading() as db:
        run_ids = list(db.execute(select(schema.runs.c.id).order_by(schema.runs.c.id)).scalars())
    moment = datetime.now(UTC)
    _insert(store.database.engine, schema.jobs, jobs(n, run_ids, moment))
    month = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    figures["jobs"] = n
    figures["jobs_ages_seconds"] = round(timed(store.jobs.ages, repeat), 4)
    figures["contacts_sent_since_seconds_for_20_instances"] = round(
        timed(lambda: [store.jobs.contacts_sent_since(f"i{k:02d}", month) for k in range(INSTANCES)], repeat),
        4,
    )
    figures["collect_with_jobs_seconds"] = round(timed(lambda: samples(store), repeat), 4)
    finish, before = _finish_ms(store)
    figures["finish_ms"], figures["finish_before_0008_ms"] = round(finish * 1000, 2), round(before * 1000, 2)
    store.close()
    baseline.close()
    return figures


def _finish_ms(store: Store, runs: int = 50) -> tuple[float, float]:
    """A run's finish as the product writes it now (its counts and the rollup in one transaction), and as it
    was before 0008 (the run's row only)."""
    ids = [store.runs.start("i00", "sync") for _ in range(2 * runs)]
    start = time.perf_counter()
    for i, run_id in enumerate(ids[:runs]):
        store.runs.finish(run_id, "succeeded", counts(i, "sync"))
    now = (time.perf_counter() - start) / runs
    table = schema.runs
    start = time.perf_counter()
    for i, run_id in enumerate(ids[runs:]):
        with store.database.writing() as db:
            db.execute(update(table).where(table.c.id == run_id).values(
                status="succeeded", finished_at=datetime.now(UTC), counts=counts(i, "sync"), error=None))  # fmt: skip
    return now, (time.perf_counter() - start) / runs


@contextmanager
def databases(postgres: str | None) -> Iterator[Iterator[tuple[str, str]]]:
    """(name, url) of an empty database per backend and size, each dropped after."""
    made: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-scrape-") as folder:

        def fresh() -> Iterator[tuple[str, str]]:
            count = 0
            while True:
                count += 1
                yield "sqlite", f"sqlite:///{Path(folder) / f'store-{count}.db'}"
                if postgres:
                    name = f"bench_scrape_{uuid.uuid4().hex[:10]}"
                    with create_engine(postgres).begin() as db:
                        db.execute(text(f"CREATE SCHEMA {name}"))
                    made.append(name)
                    separator = "&" if "?" in postgres else "?"
                    yield "postgresql", f"{postgres}{separator}options=-csearch_path%3D{name}"

        try:
            yield fresh()
        finally:
            if postgres and made:
                with create_engine(postgres).begin() as db:
                    for name in made:
                        db.execute(text(f"DROP SCHEMA {name} CASCADE"))


def run(sizes: Sequence[int], postgres: str | None, repeat: int = 3) -> dict[str, Any]:
    results: dict[str, Any] = {}
    backends = 2 if postgres else 1
    with databases(postgres) as fresh:
        for n in sizes:
            for _ in range(backends):
                backend, url = next(fresh)
                print(f"{backend}: {n:,} runs…", file=sys.stderr, flush=True)
                results.setdefault(backend, []).append(measure(url, n, repeat))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scrape", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="runs in the store")
    parser.add_argument("--repeat", type=int, default=3, help="collects timed per figure (the median)")
    parser.add_argument("--postgres", default=os.environ.get(POSTGRES_ENV), help=f"default ${POSTGRES_ENV}")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.sizes, args.postgres, args.repeat), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
