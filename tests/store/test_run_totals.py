"""The run totals /metrics reads (connector/store/run_totals.py): kept as runs finish, they say what the GROUP BY
over every run said (bench/scrape.py keeps that GROUP BY as its baseline), for any history."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from bench.scrape import NaiveRuns
from connector.metrics import SENDS, SYNCS, WRITES
from connector.store import Store
from connector.store.database import aware

WRITE_KEYS = ["fields_written", "fields_refused", "records_written"]
MAPPINGS = ("skipped", "kept_by_policy", "rejected_by_code", "refused_by_code", "by_types")


def figures(runs: Any) -> dict[str, Any]:
    """Every figure /metrics asks the runs for, and a few more."""
    return {
        "pulled": runs.totals(SYNCS, ["pulled"]),
        "sent": runs.totals(SENDS, ["sent", "projected_credits"]),
        "written": runs.totals(WRITES, WRITE_KEYS),
        "every kind": runs.totals(["sync", "apply", "retry", "rollback", "resend"], ["pulled", "restored"]),
        **{f"{key} (syncs)": runs.totals_by(SYNCS, key) for key in MAPPINGS},
        **{f"{key} (writes)": runs.totals_by(WRITES, key) for key in MAPPINGS},
        "last succeeded": runs.last_succeeded(),
    }


def sync(store: Store, instance: str, status: str, pulled: int, skipped: dict[str, int], **more: Any) -> int:
    run = store.runs.start(instance, "sync")
    store.runs.finish(run, status, {"pulled": pulled, "sent": pulled // 2, "skipped": skipped,
                                    "projected_credits": pulled * 0.75, **more})  # fmt: skip
    return run


def write_pass(store: Store, instance: str, kind: str, written: int, codes: dict[str, int]) -> None:
    run = store.runs.start(instance, kind)
    store.runs.finish(run, "succeeded", {
        "records_written": written, "fields_written": 3 * written, "fields_refused": sum(codes.values()),
        "kept_by_policy": {"fill_empty: the field already has a value": written % 3},
        "rejected_by_code": dict(codes), "refused_by_code": {"STRING_TOO_LONG": 1} if codes else {},
    })  # fmt: skip


def varied_history(store: Store) -> None:
    """Three instances, every kind /metrics reads and one it does not, runs that failed, were interrupted, are
    running, a frozen one finished after it was interrupted, counts missing or null, a mapping entry at 0."""
    for number in range(6):
        sync(store, "acme", "succeeded" if number % 3 else "failed", 10 + number, {"cooling down": number,
             "nothing missing": 2})  # fmt: skip
        write_pass(
            store, "acme", ("apply", "retry", "replay")[number % 3], number, {"INVALID_EMAIL": number % 2}
        )
    sync(store, "other", "succeeded", 7, {"cooling down": 0, "over the cap": 3}, by_types={"email": 4})
    other = store.runs.start("other", "resend")
    store.runs.finish(other, "succeeded", {"sent": 5, "projected_credits": 2.5})
    write_pass(store, "other", "apply", 2, {})
    rollback = store.runs.start("acme", "rollback")
    store.runs.finish(rollback, "succeeded", {"restored": 4, "rejected": 0, "of_run": 1})
    missing = store.runs.start("other", "sync")
    store.runs.finish(missing, "failed", {"skipped": {}}, "the CRM was down")  # no `pulled`, no `sent`
    nulls = store.runs.start("other", "apply")
    store.runs.finish(nulls, "failed", {"fields_written": None, "kept_by_policy": {"x": None}})
    frozen = store.runs.start("third", "sync")  # its process froze; the instance's next holder settles it
    store.runs.start("third", "apply")
    assert store.runs.interrupt_unfinished("third") == (2, 0)
    store.runs.finish(frozen, "succeeded", {"pulled": 9, "sent": 1, "skipped": {"cooling down": 8}})
    store.runs.start("fourth", "sync")  # running, and the instance's only run: its figures are 0
    store.runs.start("acme", "sync")


def test_the_totals_are_the_sums_over_every_run_for_a_varied_history(store: Store) -> None:
    varied_history(store)

    kept = figures(store.runs)

    assert kept == figures(NaiveRuns(store.database)), "what the GROUP BY over every run says"
    assert kept["pulled"] == {"acme": {"pulled": 75.0}, "other": {"pulled": 7.0}, "third": {"pulled": 9.0},
                              "fourth": {"pulled": 0.0}}  # fmt: skip
    assert kept["sent"]["other"] == {"sent": 8.0, "projected_credits": 7.75}, "a sync and a re-send"
    assert kept["written"]["acme"] == {"fields_written": 45.0, "fields_refused": 3.0, "records_written": 15.0}
    assert kept["skipped (syncs)"][("acme", "cooling down")] == 15.0
    assert kept["skipped (syncs)"][("other", "cooling down")] == 0.0, "an entry at 0 is listed"
    assert kept["kept_by_policy (writes)"][("other", "x")] == 0.0
    assert ("third", "sync") in kept["last succeeded"] and ("third", "apply") not in kept["last succeeded"]
    assert ("fourth", "sync") not in kept["last succeeded"]


def test_a_running_run_counts_nothing_until_it_finishes(store: Store) -> None:
    run = store.runs.start("acme", "sync")
    assert store.runs.totals(SYNCS, ["pulled"]) == {"acme": {"pulled": 0.0}}
    assert store.runs.totals_by(SYNCS, "skipped") == {} and store.runs.last_succeeded() == {}

    store.runs.finish(run, "succeeded", {"pulled": 3, "skipped": {"cooling down": 2}})

    assert store.runs.totals(SYNCS, ["pulled"]) == {"acme": {"pulled": 3.0}}
    assert store.runs.totals_by(SYNCS, "skipped") == {("acme", "cooling down"): 2.0}
    finished = store.runs.get(run)
    assert finished is not None
    assert store.runs.last_succeeded() == {("acme", "sync"): aware(finished["finished_at"])}


def test_only_json_numbers_add_and_anything_else_adds_nothing(store: Store) -> None:
    run = store.runs.start("acme", "sync")
    store.runs.finish(run, "succeeded", {"pulled": True, "sent": "12", "jobs": [1, 2], "clock_skew_seconds": None,
                                         "skipped": {"a": False, "b": "3", "c": {"d": 1}, "e": 2.5}})  # fmt: skip

    assert store.runs.totals(SYNCS, ["pulled", "sent", "jobs", "clock_skew_seconds"]) == {
        "acme": {"pulled": 0.0, "sent": 0.0, "jobs": 0.0, "clock_skew_seconds": 0.0}
    }
    assert store.runs.totals_by(SYNCS, "skipped") == {("acme", "a"): 0.0, ("acme", "b"): 0.0, ("acme", "c"): 0.0,
                                                      ("acme", "e"): 2.5}  # fmt: skip


def test_a_run_finished_again_replaces_its_share_of_the_sums(store: Store) -> None:
    earlier = store.runs.start("acme", "sync")
    store.runs.finish(earlier, "succeeded", {"pulled": 1})
    run = store.runs.start("acme", "sync")
    store.runs.finish(run, "succeeded", {"pulled": 5, "skipped": {"cooling down": 2}})
    latest = store.runs.last_succeeded()[("acme", "sync")]

    store.runs.finish(run, "failed", {"pulled": 4, "skipped": {"cooling down": 1, "over the cap": 1}})

    assert store.runs.totals(SYNCS, ["pulled"]) == {"acme": {"pulled": 5.0}}
    assert store.runs.totals_by(SYNCS, "skipped") == {
        ("acme", "cooling down"): 1.0,
        ("acme", "over the cap"): 1.0,
    }
    first = store.runs.get(earlier)
    assert first is not None and store.runs.last_succeeded() == {
        ("acme", "sync"): aware(first["finished_at"])
    }
    assert aware(first["finished_at"]) < latest, (
        "the run's own success was undone: the one before it is the latest"
    )
    assert figures(store.runs) == figures(NaiveRuns(store.database))


def test_concurrent_finishes_on_postgresql_leave_exact_sums(store: Store) -> None:
    if store.database.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's workers finish runs at once; SQLite's writers take turns")
    threads, each = 8, 25
    runs = [[store.runs.start(f"i{n % 2}", "sync") for _ in range(each)] for n in range(threads)]
    start = threading.Barrier(threads)
    failed: list[BaseException] = []

    def finish(mine: list[int], n: int) -> None:
        start.wait()
        try:
            for k, run in enumerate(mine):  # entries shared by every thread, and some new to the table
                store.runs.finish(run, "succeeded", {"pulled": 1, "sent": k, "skipped": {
                    "cooling down": 1, "nothing missing": 2, f"reason {n}-{k % 3}": 1, f"new {k}": 1}})  # fmt: skip
        except BaseException as exc:
            failed.append(exc)

    workers = [threading.Thread(target=finish, args=(mine, n)) for n, mine in enumerate(runs)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)

    assert failed == [], "no deadlock, no lost update"
    per = threads // 2 * each
    assert store.runs.totals(SYNCS, ["pulled", "sent"]) == {
        f"i{n}": {"pulled": float(per), "sent": float(threads // 2 * sum(range(each)))} for n in range(2)
    }
    skipped = store.runs.totals_by(SYNCS, "skipped")
    assert skipped[("i0", "cooling down")] == per and skipped[("i1", "nothing missing")] == 2 * per
    assert skipped[("i0", "new 0")] == threads // 2
    assert figures(store.runs) == figures(NaiveRuns(store.database))
