"""When each instance's sync is due: the clock's one evaluation of the schedules.

The daemon's tick asks `SyncTimes.due(now)` which syncs to start, rather than keeping a trigger per instance in
the scheduler: the same question, answered by the same code, is what a clock shared by several replicas asks
of times kept in the database (docs/architecture.md#the-clock-and-the-dispatcher).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime

from connector.schedules import next_time


class SyncTimes:
    """Each instance's next sync time, in memory: every instance is due at `first` (a fresh start syncs at
    once), then on its schedule. `due(now)` names the instances whose time has come and moves each to its first
    time after `now`, so after a long stop (a laptop asleep, a paused container) an instance that missed
    several runs runs once, not once per missed run — APScheduler's `coalesce`, kept."""

    def __init__(self, schedules: Mapping[str, str], first: datetime):
        self._schedules = dict(schedules)
        self._next = dict.fromkeys(self._schedules, first)
        self._lock = threading.Lock()

    def due(self, now: datetime) -> list[str]:
        with self._lock:
            names = [name for name, when in self._next.items() if when <= now]
            for name in names:
                self._next[name] = next_time(self._schedules[name], now, anchor=self._next[name])
            return names

    def next_at(self, name: str) -> datetime:
        with self._lock:
            return self._next[name]
