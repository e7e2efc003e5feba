"""Units of work and the dispatcher that runs them: the seam between the clock and the work.

A unit (sync one instance, …) reads what to do from the store and is safe to run twice, so a dispatcher only
has to keep two promises, the ones procrastinate's `lock` and `queueing_lock` keep for jobs
(docs/architecture.md#the-clock-and-the-dispatcher):
- units of one key never run at once (a key per CRM instance: its sync and its write-back are one key);
- at most one more waits behind a running one; a third is refused, since the waiting one will do its work.

`LocalDispatcher` keeps them in one process, on a thread pool; connector.cluster's `QueueDispatcher` across
processes, with procrastinate jobs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, Protocol

from connector.logs import in_context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unit:
    kind: Literal["sync", "apply"]
    instance: str

    @property
    def key(self) -> str:
        """What units must not overlap on: one CRM instance (procrastinate's `lock = "crm:<instance>"`)."""
        return f"crm:{self.instance}"

    def __str__(self) -> str:
        return f"{self.kind} {self.instance}"


class Dispatcher(Protocol):
    def dispatch(self, unit: Unit) -> bool:
        """Run `unit` now or after the running unit of its key; False when one already waits there."""
        ...


class LocalDispatcher:
    def __init__(self, perform: Callable[[Unit], object], workers: int):
        self._perform = perform
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="unit")
        self._lock = threading.Lock()
        self._running: dict[str, Unit] = {}
        self._waiting: dict[str, Unit] = {}
        self._closed = False

    def dispatch(self, unit: Unit) -> bool:
        """Start `unit`, or queue it behind the running unit of its key; False when one already waits there
        (or the dispatcher is closing): its work is done by the one waiting."""
        with self._lock:
            if self._closed or unit.key in self._waiting:
                return False
            if unit.key in self._running:
                self._waiting[unit.key] = unit
                return True
            self._start(unit)
            return True

    def _start(self, unit: Unit) -> None:  # under self._lock
        self._running[unit.key] = unit
        self._pool.submit(in_context(self._run), unit)

    def _run(self, unit: Unit) -> None:
        try:
            self._perform(unit)
        except Exception:  # `perform` says what failed; a unit's failure must not stop the units behind it
            log.exception("%s failed unexpectedly", unit)
        finally:  # on the unit's own thread, never under a caller's lock
            with self._lock:
                del self._running[unit.key]
                following = self._waiting.pop(unit.key, None)
                if following is not None and not self._closed:
                    self._start(following)

    def busy(self) -> list[Unit]:
        with self._lock:
            return [*self._running.values(), *self._waiting.values()]

    def close(self) -> None:
        """Start nothing more (a waiting unit is dropped: its work waits for the next start) and wait for the
        running units to finish."""
        with self._lock:
            self._closed = True
            dropped = list(self._waiting.values())
            self._waiting.clear()
        for unit in dropped:
            log.info("%s: not started, the daemon is stopping; the next start runs it", unit)
        self._pool.shutdown(wait=True)
