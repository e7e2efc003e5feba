"""Posting a sync's triggers on a thread of their own, while the sync pulls and maps the next records.

Each trigger POST waits for LoneScale's answer; done in turn, the sync idles for every one of them. One thread
sends the batches in the order they were filled, through the same `Sender` (each job still stored before its
POST, connector.sender), with at most `depth` batches waiting for it, so memory stays bounded and the order of
jobs, caps and refusals is the one a sync sending in turn would see.

The first error the sender meets (a cap, a lost answer, an outage, a bug) stops it: nothing handed over after
it is stored or sent. The error is raised in the sync at its next hand-over or when it finishes, and handled
there as before (the cursor stays). The sync waits for the thread before it settles anything, so the report and
the sender's state are only ever touched by one thread at a time once the sends are over.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from types import TracebackType

from connector.batching import Batch
from connector.logs import in_context
from connector.models import EnrichmentType
from connector.sender import Sender

log = logging.getLogger(__name__)
DEPTH = 2  # batches filled and waiting for the sender: enough to cover a slow answer, few enough to hold


class SendAhead:
    """`send(types, batch)` hands the batch to the sending thread and returns; used as a context manager, whose
    exit waits for every batch handed over and raises the first error met (unless one is already on its way)."""

    def __init__(self, sender: Sender, *, depth: int = DEPTH, name: str = "send"):
        self.sender = sender
        self._queue: queue.Queue[tuple[Sequence[EnrichmentType], Batch] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._stopped = threading.Event()  # the sync left early: what waits is dropped, never sent
        # In the sync's log context (instance, run), so each job's lines name them.
        self._thread = threading.Thread(target=in_context(self._run), name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is not None or self._stopped.is_set():
                continue  # drained, not sent: nothing after an error or a stop reaches LoneScale
            try:
                self.sender.send(*item)
            except BaseException as exc:  # handed to the sync, which raises it where it can act
                self._error = exc

    def send(self, types: Sequence[EnrichmentType], batch: Batch) -> None:
        self._raise()
        self._queue.put((types, batch))  # waits while `depth` batches are waiting: the thread always drains

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self._stopped.set()
            raise error

    def __enter__(self) -> SendAhead:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if error is not None:
            self._stopped.set()  # the sync is failing: batches still waiting are not sent
        self._queue.put(None)
        # A POST in flight finishes (on its own timeout), so its job is settled as sent, refused or uncertain.
        self._thread.join()
        if error is None:
            self._raise()
        elif self._error is not None:  # both failed: the sync's error goes up, the sender's is said here
            log.warning("%s: the trigger sender also stopped: %s", self.sender.instance.name, self._error)
