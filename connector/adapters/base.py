"""The adapter seam: what the sync needs from any CRM, whatever its SDK."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, TypeVar

from connector.logs import in_context
from connector.models import CrmRecord, FieldInfo, FieldUpdate, FollowUp, WriteResult

B = TypeVar("B")
R = TypeVar("R")
# Batch calls in flight at once: the CRM works on one while the connector sends or reads the other. More
# would only queue behind the same org's or portal's limits (the HubSpot pacer still holds every call).
IN_FLIGHT = 2


def two_at_a_time(call: Callable[[B], R], batches: Sequence[B]) -> list[R]:
    """`call` over `batches`, IN_FLIGHT at a time, answers in order. On an error the batches not started are
    cancelled and the first error is raised once those running have answered; a batch that landed is then
    unreported, as after a crash: apply's journal-ahead rows confirm it against the CRM on the next pass."""
    if len(batches) <= 1:
        return [call(batch) for batch in batches]
    pool = ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix="crm-batch")
    try:
        futures = [pool.submit(in_context(call), batch) for batch in batches]  # lines name their run
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class ServerClock:
    """The CRM's own time, read from the HTTP `Date` header of its answers (RFC 9110 §6.6.1: second precision,
    the origin server's clock). A window's end comes from the daemon's clock; a cursor must not, or a daemon
    whose clock runs ahead of the CRM's moves its cursor past records the CRM has not stamped yet.

    `start(now)` forgets what was seen; afterwards `first` is the CRM time of the first answer received, with
    the time `now` (the caller's clock, the one its window came from) said on its arrival, so the caller can
    tell how far the two clocks are apart."""

    def __init__(self) -> None:
        self._now: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._lock = threading.Lock()
        self.first: tuple[datetime, datetime] | None = None  # (CRM time, local time on arrival)

    def start(self, now: Callable[[], datetime]) -> None:
        with self._lock:
            self.first, self._now = None, now

    def observe(self, header: str | None) -> None:
        if not header or self.first is not None:
            return
        try:
            stamp = parsedate_to_datetime(header)
        except (TypeError, ValueError):  # a proxy's malformed Date says nothing about the CRM's clock
            return
        stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
        with self._lock:
            if self.first is None:
                self.first = (stamp.astimezone(UTC), self._now())


@dataclass(frozen=True)
class Window:
    """Records changed in [start, end), in (changed_at, id) order."""

    start: datetime
    end: datetime


class CrmAdapter(Protocol):
    name: str  # the instance name, stamped on every RecordRef
    server_clock: ServerClock  # fed by every answer's Date header
    # A field the CRM keeps unique across its records, refusing a write of a value another record holds
    # (HubSpot: a contact's `email`, a 409 for the whole batch); None when there is none. The write-back
    # leaves such a value out when another record is known to hold it (connector/apply_unique.py).
    unique_field: str | None

    def check(self) -> None:
        """Authenticate and touch the object; raises AuthError or RequestRejected with a reason a person can use."""

    def describe(self, fields: Sequence[str]) -> dict[str, FieldInfo]:
        """What the CRM says of each field that exists; missing names are simply absent."""

    def pull_changed(self, window: Window, fields: Sequence[str]) -> Iterator[CrmRecord]:
        """Streams the records changed in the window, sorted by (changed_at, id)."""

    def read_current(self, ids: Sequence[str], fields: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        """Field values as they are now, for ids that exist (deleted or unknown ids are absent)."""

    def write_back(self, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        """Writes in full batches; one result per update; never raises for a single record's rejection."""

    def create_follow_ups(self, follow_ups: Sequence[FollowUp]) -> list[WriteResult]:
        """One owner task per follow-up (a Salesforce Task, a HubSpot note); never re-posted after a timeout."""

    def close(self) -> None: ...
