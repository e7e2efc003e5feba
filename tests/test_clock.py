"""The daemon's clock and dispatcher: which syncs are due, and how units of work of one instance are run."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from connector.clock import SyncTimes
from connector.dispatch import LocalDispatcher, Unit
from connector.schedules import next_time

START = datetime(2026, 1, 1, 12, 0, 3, tzinfo=UTC)  # a Thursday


def test_every_instance_syncs_at_start_then_on_its_schedule() -> None:
    times = SyncTimes({"sf": "every 15m", "hs": "0 * * * *"}, first=START)
    assert sorted(times.due(START)) == ["hs", "sf"], "a fresh start syncs at once"
    assert times.due(START + timedelta(minutes=14)) == []
    assert times.next_at("sf") == START + timedelta(minutes=15)
    assert times.next_at("hs") == datetime(2026, 1, 1, 13, 0, tzinfo=UTC)
    assert times.due(START + timedelta(minutes=15, seconds=1)) == ["sf"]
    assert times.next_at("sf") == START + timedelta(minutes=30), "a late tick does not push the grid back"


def test_an_instance_that_missed_several_runs_while_stopped_runs_once() -> None:
    times = SyncTimes({"sf": "every 15m"}, first=START)
    times.due(START)
    later = START + timedelta(hours=5, minutes=1)  # twenty runs missed
    assert times.due(later) == ["sf"]
    assert times.due(later) == [], "once, not once per missed run"
    assert times.next_at("sf") == START + timedelta(hours=5, minutes=15)


def test_a_crontab_line_runs_when_crontab_says() -> None:
    assert next_time("0 9 * * 1-5", START) == datetime(2026, 1, 2, 9, 0, tzinfo=UTC), "Friday, not Saturday"
    assert next_time("0 9 * * 1-5", datetime(2026, 1, 2, 9, 0, tzinfo=UTC)) == datetime(
        2026, 1, 5, 9, 0, tzinfo=UTC
    ), "strictly after: the run at 09:00 Friday is not due again at 09:00 Friday"
    assert next_time("@hourly", START) == datetime(2026, 1, 1, 13, 0, tzinfo=UTC)


class Recorder:
    """A unit of work that holds until released, and records when each run began and ended."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.intervals: list[tuple[str, float, float]] = []
        self.release = threading.Event()
        self.started = threading.Semaphore(0)

    def __call__(self, unit: Unit) -> None:
        began = time.monotonic()
        self.started.release()
        self.release.wait(10)
        with self.lock:
            self.intervals.append((unit.instance, began, time.monotonic()))


def test_units_of_one_instance_never_overlap_and_at_most_one_more_waits() -> None:
    work = Recorder()
    dispatcher = LocalDispatcher(work, workers=4)
    assert dispatcher.dispatch(Unit("sync", "sf"))
    assert work.started.acquire(timeout=10), "the first unit runs at once"
    assert dispatcher.dispatch(Unit("sync", "sf")), "one more waits behind it"
    assert not dispatcher.dispatch(Unit("sync", "sf")), "a third is refused: the waiting one does its work"
    assert dispatcher.dispatch(Unit("sync", "hs")), "another instance is not held back"
    assert work.started.acquire(timeout=10)
    work.release.set()
    assert work.started.acquire(timeout=10), "the waiting unit starts when the first ends"
    while dispatcher.busy():
        time.sleep(0.01)
    dispatcher.close()

    runs = sorted((i for i in work.intervals if i[0] == "sf"), key=lambda i: i[1])
    assert len(runs) == 2 and runs[0][2] <= runs[1][1], "the waiting unit ran after the first ended"
    assert {i[0] for i in work.intervals} == {"sf", "hs"}


def test_closing_drops_the_waiting_units_and_waits_for_the_running_ones() -> None:
    work = Recorder()
    dispatcher = LocalDispatcher(work, workers=2)
    dispatcher.dispatch(Unit("sync", "sf"))
    assert work.started.acquire(timeout=10)
    dispatcher.dispatch(Unit("sync", "sf"))
    closing = threading.Thread(target=dispatcher.close)
    closing.start()
    closing.join(0.2)
    assert closing.is_alive(), "close waits for the running unit"
    work.release.set()
    closing.join(10)
    assert not closing.is_alive() and len(work.intervals) == 1, "the waiting unit was not started"
    assert not dispatcher.dispatch(Unit("sync", "hs")), "nothing starts once closed"


def test_a_unit_that_raises_does_not_stop_the_one_waiting_behind_it() -> None:
    ran: list[str] = []
    gate = threading.Event()

    def work(unit: Unit) -> None:
        gate.wait(10)
        ran.append(unit.instance)
        if len(ran) == 1:
            raise RuntimeError("a bug")

    dispatcher = LocalDispatcher(work, workers=1)
    dispatcher.dispatch(Unit("sync", "sf"))
    dispatcher.dispatch(Unit("sync", "sf"))
    gate.set()
    deadline = time.monotonic() + 10
    while len(ran) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    dispatcher.close()
    assert ran == ["sf", "sf"]
