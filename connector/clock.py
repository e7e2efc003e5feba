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
from connector.store.schedules import Schedules


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


class SharedSyncTimes:
    """The same question as `SyncTimes`, asked of times kept in the database, for a clock several replicas
    share: each due time is claimed by compare-and-set, so of replicas ticking at once one starts the sync; the
    next time comes from the same `schedules.next_time`. The schedules come from the config at start
    (`declare`); what is stored wins over a replica's drifting copy at each claim."""

    def __init__(self, schedules: Schedules):
        self._schedules = schedules

    def declare(self, schedules: Mapping[str, str], now: datetime) -> None:
        self._schedules.declare(schedules, now, next_time)

    def due(self, now: datetime) -> list[str]:
        claimed = []
        for name, schedule, when in self._schedules.due(now):
            if self._schedules.claim(name, when, next_time(schedule, now, anchor=when)):
                claimed.append(name)
        return claimed

    def next_at(self, name: str) -> datetime:
        return self._schedules.next_due()[name]
