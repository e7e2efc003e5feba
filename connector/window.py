"""A sync's window over the CRM's changes: where it starts and ends, which records it has already seen or
taken, and where the next one may start.

Nothing is missed: the next window starts `lookback` before the cursor, and the cursor never passes what
the CRM's own clock says has happened (records stamped late, with an earlier time, are still read).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from connector.adapters.base import Window
from connector.models import CrmRecord
from connector.store import Cursors
from connector.wiring import Instance, durations

log = logging.getLogger(__name__)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_for(instance: Instance, cursors: Cursors, now: datetime) -> Window:
    lookback, settle = durations(instance.settings)
    cursor = cursors.get(instance.name)
    if cursor is None:
        start = instance.settings.start_date or EPOCH
    else:
        start = cursor.changed_at - timedelta(seconds=lookback)
    return Window(start, now - timedelta(seconds=settle))


class FirstSight:
    """Whether a pulled record is new to this run. Pulls come in changed_at order and a page boundary can
    only repeat records of one timestamp, so only the latest timestamp's ids are kept: memory stays flat
    however many records a run reads. (A record read again at a later timestamp changed meanwhile: that
    is a new sight, which `Claims` keeps out of a second job.)"""

    def __init__(self) -> None:
        self._at, self._ids = EPOCH, set[str]()

    def first(self, record: CrmRecord) -> bool:
        if record.changed_at != self._at:
            self._at, self._ids = record.changed_at, set()
        elif record.ref.id in self._ids:
            return False
        self._ids.add(record.ref.id)
        return True


class Claims:
    """Records this run has already taken: in a batch still filling, or put in a job since the current chunk's
    cooldowns were read (later chunks read those from the store). A record is read twice when it changes
    during the pull (a person's edit, our own write-back): it moves later in the window, where the CRM
    yields it again, and must not go into a second job. Only these few ids are kept, so memory stays flat
    however many records a run reads."""

    def __init__(self, waiting: Callable[[], Iterable[str]]):
        self._waiting, self._taken = waiting, set[str]()  # waiting: ids in batches not sent yet

    def new_chunk(self) -> None:
        self._taken = set(self._waiting())

    def take(self, record_id: str) -> bool:
        """False if the run already took it."""
        if record_id in self._taken:
            return False
        self._taken.add(record_id)
        return True


# Seconds of apparent skew that are only the measurement: the `Date` header is whole seconds (up to 1 s
# behind), servers stamp it from a clock they refresh once a second (uvicorn, nginx: up to 1 s more), and the
# answer takes its time to come back. Beyond this, the machine's clock is off and a person should hear of it.
SKEW_WORTH_SAYING = 5.0


def cursor_end(instance: Instance, window: Window) -> tuple[datetime, float | None]:
    """Where the next window may start: the window's end, unless the CRM's clock says that moment has not
    come there yet. The window's end is the daemon's "now" less the settle margin; a daemon clock running
    ahead of the CRM's by more than that margin would put the cursor past records the CRM stamps later with
    an earlier time, and they would never be read. So the cursor stops at the CRM's own time (the `Date` of
    its first answer in this pull, whole seconds) less the settle margin. Also returns how many seconds the
    daemon's clock is ahead of the CRM's (None when no answer carried a Date)."""
    first = instance.adapter.server_clock.first
    if first is None:  # no Date header came back: nothing to compare with
        return window.end, None
    crm_time, local_time = first
    skew = round((local_time - crm_time).total_seconds(), 1)
    _, settle = durations(instance.settings)
    crm_end = crm_time - timedelta(seconds=settle)
    if crm_end < window.end:
        if skew > SKEW_WORTH_SAYING:
            log.warning(
                "%s: this machine's clock is %.0f s ahead of the CRM's; the cursor stops at the CRM's time "
                "less the settle margin (%s) so no record is skipped: fix the clock (NTP)",
                instance.name, skew, crm_end.isoformat(timespec="seconds"),
            )  # fmt: skip
        return crm_end, skew
    return window.end, skew
