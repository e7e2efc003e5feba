"""Schedules kept in the database: several replicas share one clock, and each due sync starts once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from connector.clock import SharedSyncTimes
from connector.store import Store

START = datetime(2026, 1, 1, 12, 0, 3, tzinfo=UTC)
CONFIG = {f"i{n:02}": "every 15m" for n in range(20)}


def test_replicas_ticking_at_once_start_each_due_sync_exactly_once(store_url: str) -> None:
    replicas = [Store(store_url) for _ in range(3)]
    try:
        for store in replicas:  # each replica writes the config's schedules at start: idempotent
            SharedSyncTimes(store.schedules).declare(CONFIG, START)
        claimed: list[list[str]] = [[] for _ in replicas]
        go = threading.Barrier(len(replicas))

        def tick(index: int, now: datetime) -> None:
            go.wait()
            claimed[index] += SharedSyncTimes(replicas[index].schedules).due(now)

        for now in (START, START + timedelta(minutes=15, seconds=2), START + timedelta(hours=3)):
            threads = [threading.Thread(target=tick, args=(i, now)) for i in range(len(replicas))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        every = sorted(name for names in claimed for name in names)
        assert every == sorted(list(CONFIG) * 3), "each instance once per due time, whoever ticked"
        shared = SharedSyncTimes(replicas[0].schedules)
        assert shared.next_at("i00") == START + timedelta(hours=3, minutes=15), (
            "missed runs coalesce, on grid"
        )
    finally:
        for store in replicas:
            store.close()


def test_a_drifting_config_cannot_add_runs_and_a_changed_schedule_takes_effect(store_url: str) -> None:
    store = Store(store_url)
    try:
        times = SharedSyncTimes(store.schedules)
        times.declare({"sf": "every 1h"}, START)
        assert times.due(START) == ["sf"]
        times.declare({"sf": "every 1h"}, START + timedelta(minutes=5))  # a replica starting again
        assert times.due(START + timedelta(minutes=5)) == [], "declaring again makes nothing due"
        times.declare({"sf": "*/15 * * * *"}, START + timedelta(minutes=6))  # the schedule changed
        assert times.next_at("sf") == datetime(2026, 1, 1, 12, 15, tzinfo=UTC), "the sooner of old and new"
        assert times.due(datetime(2026, 1, 1, 12, 15, 1, tzinfo=UTC)) == ["sf"]
        assert times.next_at("sf") == datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
    finally:
        store.close()
