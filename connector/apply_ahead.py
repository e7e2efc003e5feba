"""Reading the next write-back pass ahead: its deliveries collected and its records' current values read on a
thread while this pass writes, so the CRM's read for the next pass no longer waits for this one's writes.

Done in turn, each pass read (Salesforce: one retrieve of 2,000 ids; HubSpot: twenty batch reads of 100),
then wrote, and the next pass waited for both. What keeps the overlap safe (docs/architecture.md#the-write-side):

- Only records this pass does not hold are read ahead. A record this pass writes, or may write, is read by the
  next pass itself after this one's writes, so `fill_empty` and `overwrite_if_unchanged` judge the value we
  last wrote. The others cannot change through us meanwhile: a pass writes its own records only.
- Every read passes its instance's fence (the lease, renewed first: connector/fencing.py), on a thread in a
  copy of the caller's context (connector.logs.in_context). The run of passes holds its leases from the first
  pass to the last, and the writes planned on a read ahead pass the same lease's fence: had another holder
  taken it in between, its epoch grew, and the fence stops the write (nothing planned on values read under
  our lease is written after someone else's).
- Nothing is marked here: the deliveries read ahead stay `new` until their own pass has written them, so a
  crash at any point loses nothing. A read that fails (a CRM outage, the lease lost) is raised in the pass
  that needed it, which fails as it would have failed reading itself; its deliveries wait for a later pass.
- One pass ahead at most: the next is started while this one writes and joined before it is planned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from connector.apply_plan import Known, read_known
from connector.fencing import fenced
from connector.inbox import Drain, Pending
from connector.logs import in_context, log_context
from connector.store import Lease
from connector.wiring import Instance


@dataclass
class Collected:
    """One pass's deliveries, read and correlated, by instance."""

    drain: Drain
    by_instance: dict[str, list[Pending]]
    delivered: dict[str, list[int]]
    last: int  # the last delivery id read: the next pass reads after it

    def record_ids(self) -> set[str]:
        return {item.contact.record_id for items in self.by_instance.values() for item in items}

    def job_ids(self) -> set[str]:
        return {item.job.id for items in self.by_instance.values() for item in items}


Read = Known | BaseException  # an instance's values read ahead, or why they could not be


class Ahead:
    """The next pass, collected by `collect` and its records' current values read (but for `held`, this
    pass's records) on a thread started by `start()`; `result()` joins it. `lease_of` names each instance's
    lease, taken by the collection if it was not held yet."""

    def __init__(self, collect: Callable[[], Collected], instances: Mapping[str, Instance],
                 lease_of: Callable[[str], Lease | None], held: Collection[str]):  # fmt: skip
        self._collect, self._instances, self._lease_of, self._held = collect, instances, lease_of, held
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        # The caller's context as it is now, outside any one instance's pass: the reads set their own
        # instance and fence, and no line says the run of the pass that started them.
        self._work = in_context(self._run)
        self._collected: Collected | None = None
        self._error: BaseException | None = None
        self._read: dict[str, Read] = {}

    def start(self) -> None:
        """Start reading (once; again does nothing)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="apply-ahead", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            collected = self._collect()
        except BaseException as exc:  # the store failing: raised to the caller, at the next pass
            self._error = exc
            return
        self._collected = collected
        for name, items in collected.by_instance.items():
            if self._stopped.is_set():
                return
            ids = [rid for rid in dict.fromkeys(i.contact.record_id for i in items) if rid not in self._held]
            if not ids:
                continue
            lease = self._lease_of(name)
            try:
                with log_context(instance=name), fenced(lease.check if lease is not None else None):
                    self._read[name] = read_known(self._instances[name], ids)
            except BaseException as exc:  # surfaces in the pass that needs these values
                self._read[name] = exc

    def result(self) -> tuple[Collected, dict[str, Read]]:
        """The next pass and what was read of it (an instance absent: nothing read ahead for it)."""
        self.start()  # not started by a write (this pass wrote nothing): collected and read now
        assert self._thread is not None
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._collected is not None
        return self._collected, self._read

    def stop(self) -> None:
        """No read starts after this (one in flight ends on its own); returns once the thread has ended."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
