"""CRM records of one object type, kept in id order and in a (last-modified ms, id) index for search."""

from __future__ import annotations

import bisect
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from connector.sandbox.hubspot.schema import PropertyDef
from connector.sandbox.hubspot.times import iso, wall_ms

OBJECT_TYPES = {"contacts": ("CONTACT", "0-1", "lastmodifieddate"), "companies": ("COMPANY", "0-2", "hs_lastmodifieddate"), "notes": ("NOTE", "0-46", "hs_lastmodifieddate")}  # fmt: skip
# Engagements such as notes name their creation date hs_createdate; contacts and companies say createdate.
CREATED_PROPERTY = {"notes": "hs_createdate"}


@dataclass(slots=True)
class Record:
    id: int
    properties: dict[str, str]  # set values only; createdate, the modified date and hs_object_id are derived
    created_ms: int
    updated_ms: int
    stamps: dict[str, int] = field(default_factory=dict)  # when each property was last written
    archived_ms: int | None = None


class ObjectStore:
    """Live and archived records plus a search view that may lag writes (HubSpot search is eventually
    consistent: docs/hubspot.md#search), indexed by (modified ms, id) so range queries bisect instead of
    scanning."""

    def __init__(self, object_type: str, schema: dict[str, PropertyDef], unique_property: str | None = None):
        # How often each (record, property) was written by the API since the portal was made: what a test
        # of "no field written twice" counts against the connector's journal.
        self.writes: Counter[tuple[int, str]] = Counter()
        self.object_type = object_type
        self.singular, self.type_id, self.modified_property = OBJECT_TYPES[object_type]
        self.created_property = CREATED_PROPERTY.get(object_type, "createdate")
        self.schema = schema
        self.unique_property = unique_property
        self.live: dict[int, Record] = {}
        self.archived: dict[int, Record] = {}
        self.ids: list[int] = []
        self.visible: dict[int, Record] = {}
        self.visible_ids: list[int] = []
        self.index: list[tuple[int, int]] = []
        self.version = 0
        self.delay_ms = 0
        self._pending: deque[tuple[int, int, Record | None]] = deque()
        self._unique: dict[str, int] = {}
        self._clock_ms = 0
        self.next_id = 1

    # -- reading ----------------------------------------------------------------------------------
    def value(self, record: Record, name: str) -> str | None:
        if name == "hs_object_id":
            return str(record.id)
        if name == self.created_property:
            return iso(record.created_ms)
        if name == self.modified_property:
            return iso(record.updated_ms)
        return record.properties.get(name)

    def find(self, key: str, id_property: str | None = None) -> Record | None:
        """A live record by id, or by a property value when `idProperty` is given."""
        if id_property in (None, "hs_object_id"):
            return self.live.get(int(key)) if key.isdigit() else None
        if id_property == self.unique_property:
            found = self._unique.get(key.lower())
            return None if found is None else self.live.get(found)
        for record in self.live.values():
            if record.properties.get(id_property or "") == key:
                return record
        return None

    def unique_owner(self, value: str | None) -> int | None:
        return None if value is None else self._unique.get(value.lower())

    # -- writing ----------------------------------------------------------------------------------
    def write_ms(self, records: Iterable[Record] = ()) -> int:
        """One millisecond for one write: wall time, never behind an earlier write, and always after each
        record's previous modification so `lastmodifieddate` moves on every write
        (docs/hubspot.md#contact-properties)."""
        self._clock_ms = max(self._clock_ms, wall_ms())
        return max([self._clock_ms, *(record.updated_ms + 1 for record in records)])

    def load(self, records: Iterable[Record]) -> None:
        """Replace everything with seeded records, visible to search at once."""
        self.live = {record.id: record for record in records}
        self.archived.clear()
        self._pending.clear()
        self.ids = sorted(self.live)
        self.visible = dict(self.live)
        self.visible_ids = list(self.ids)
        self.index = sorted((record.updated_ms, record.id) for record in self.live.values())
        self._unique = {}
        if self.unique_property:
            for record_id in self.ids:
                value = self.live[record_id].properties.get(self.unique_property)
                if value:
                    self._unique.setdefault(value.lower(), record_id)
        self.next_id = (self.ids[-1] + 1) if self.ids else self.next_id
        self.version += 1

    def put(self, record: Record) -> None:
        """Add or replace a record as a test seeds it: no validation, visible to search at once."""
        old = self.live.get(record.id) or self.archived.pop(record.id, None)
        if old is None:
            bisect.insort(self.ids, record.id)
        else:
            self._forget_unique(old)
        self.live[record.id] = record
        self._remember_unique(record)
        self.next_id = max(self.next_id, record.id + 1)
        self._show(record.id, record)

    def apply(self, record: Record, changes: Mapping[str, str | None], ms: int) -> Record:
        self.writes.update((record.id, name) for name in changes)
        properties = dict(record.properties)
        stamps = dict(record.stamps)
        for name, value in changes.items():
            if value is None:
                properties.pop(name, None)
            else:
                properties[name] = value
            stamps[name] = ms
        updated = replace(record, properties=properties, updated_ms=ms, stamps=stamps)
        self._forget_unique(record)
        self.live[record.id] = updated
        self._remember_unique(updated)
        self._publish(record.id, updated)
        return updated

    def create(self, changes: Mapping[str, str | None], ms: int) -> Record:
        properties = {name: value for name, value in changes.items() if value is not None}
        record = Record(self.next_id, properties, ms, ms, dict.fromkeys(properties, ms))
        self.next_id += 1
        self.live[record.id] = record
        bisect.insort(self.ids, record.id)
        self._remember_unique(record)
        self._publish(record.id, record)
        return record

    def archive(self, record: Record, ms: int) -> None:
        del self.live[record.id]
        del self.ids[bisect.bisect_left(self.ids, record.id)]
        self._forget_unique(record)
        self.archived[record.id] = replace(record, archived_ms=ms)
        self._publish(record.id, None)

    def _remember_unique(self, record: Record) -> None:
        value = record.properties.get(self.unique_property or "")
        if value:
            self._unique[value.lower()] = record.id

    def _forget_unique(self, record: Record) -> None:
        value = record.properties.get(self.unique_property or "")
        if value and self._unique.get(value.lower()) == record.id:
            del self._unique[value.lower()]

    # -- the search view --------------------------------------------------------------------------
    def _publish(self, record_id: int, record: Record | None) -> None:
        if self.delay_ms <= 0 and not self._pending:
            self._show(record_id, record)
        else:
            self._pending.append((wall_ms() + self.delay_ms, record_id, record))

    def refresh(self) -> None:
        """Let search see the writes whose visibility delay has passed."""
        now = wall_ms()
        while self._pending and (self._pending[0][0] <= now or self.delay_ms <= 0):
            _, record_id, record = self._pending.popleft()
            self._show(record_id, record)

    def _show(self, record_id: int, record: Record | None) -> None:
        old = self.visible.pop(record_id, None)
        if old is not None:
            del self.index[bisect.bisect_left(self.index, (old.updated_ms, record_id))]
        elif record is not None:
            bisect.insort(self.visible_ids, record_id)
        if record is None:
            if old is not None:
                del self.visible_ids[bisect.bisect_left(self.visible_ids, record_id)]
        else:
            self.visible[record_id] = record
            bisect.insort(self.index, (record.updated_ms, record_id))
        self.version += 1
