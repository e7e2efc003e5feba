"""Reading a pull ahead of its use: the CRM answers the next page while the sync maps and sends this one.

A pull is a chain of requests that each wait for the last (a cursor, a `nextRecordsUrl`), and the sync
spends CPU on every record between them; done in turn, the CRM and the connector each idle while the other
works. A thread draining the pull a few chunks ahead overlaps the two while keeping memory bounded (at most
`depth` chunks wait) and the order as the CRM gave it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Generic, TypeVar

from connector.logs import in_context

T = TypeVar("T")
_POLL = 0.1  # how often a blocked producer checks whether the consumer has gone


class ReadAhead(Generic[T]):
    """Chunks of `source` of up to `size` items, produced on a thread up to `depth` chunks ahead. An error in
    the source is raised to the consumer after the chunks before it; leaving the loop early stops the
    producer after the item it is reading, and the source is closed on the thread that iterated it."""

    def __init__(self, source: Iterable[T], size: int, *, depth: int = 2, name: str = "read-ahead"):
        self._size = size
        self._queue: queue.Queue[tuple[str, list[T] | BaseException | None]] = queue.Queue(maxsize=depth)
        self._stopped = threading.Event()
        # In the starter's log context, so the pull's lines name their instance and run.
        producer = in_context(self._produce)
        self._thread = threading.Thread(target=producer, args=(iter(source),), name=name, daemon=True)
        self._thread.start()

    def _produce(self, iterator: Iterator[T]) -> None:
        try:
            while not self._stopped.is_set():
                chunk = list(islice(iterator, self._size))
                if not chunk:
                    break
                if not self._put("chunk", chunk):
                    return
            self._put("end", None)
        except BaseException as exc:  # handed to the consumer, which raises it where the sync can act
            self._put("error", exc)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def _put(self, kind: str, value: list[T] | BaseException | None) -> bool:
        while not self._stopped.is_set():
            try:
                self._queue.put((kind, value), timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[list[T]]:
        try:
            while True:
                kind, value = self._queue.get()
                if kind == "end":
                    return
                if isinstance(value, BaseException):
                    raise value
                assert value is not None
                yield value
        finally:
            self.close()

    def close(self) -> None:
        """Stop reading ahead (idempotent); a request in flight finishes on its own timeout."""
        self._stopped.set()
