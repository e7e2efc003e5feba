"""The adapter seam: what the sync needs from any CRM, whatever its SDK."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from connector.models import CrmRecord, FieldInfo, FieldUpdate, FollowUp, WriteResult


@dataclass(frozen=True)
class Window:
    """Records changed in [start, end), in (changed_at, id) order."""

    start: datetime
    end: datetime


class CrmAdapter(Protocol):
    name: str  # the instance name, stamped on every RecordRef

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
