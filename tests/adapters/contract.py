"""The contract every CRM adapter passes, against its emulator, through its real SDK over real sockets.

A subclass provides the fixtures: `adapter`, `refused_adapter` (wrong credentials), `crm` (the emulator's
`Served`), and the field names of its CRM (`email_field`, `title_field`, `readonly_field`).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from connector.adapters.base import CrmAdapter, Window
from connector.errors import AuthError
from connector.models import FieldUpdate, RecordRef, WriteOutcome

EVERYTHING = Window(datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(days=1))


class AdapterContract:
    email_field: str
    title_field: str
    readonly_field: str
    total_records: int

    def ref(self, adapter: CrmAdapter, record_id: str) -> RecordRef:
        raise NotImplementedError

    def test_pull_yields_every_changed_record_once_in_changed_order(self, adapter: CrmAdapter) -> None:
        records = list(adapter.pull_changed(EVERYTHING, [self.email_field, self.title_field]))
        ids = [r.ref.id for r in records]
        assert len(ids) == len(set(ids)) == self.total_records
        stamps = [r.changed_at for r in records]
        assert stamps == sorted(stamps)
        assert all(r.changed_at.tzinfo is not None for r in records)
        assert any(r.get(self.email_field) for r in records)

    def test_pull_keeps_to_its_window(self, adapter: CrmAdapter) -> None:
        stamps = sorted(r.changed_at for r in adapter.pull_changed(EVERYTHING, [self.email_field]))
        start, end = stamps[len(stamps) // 4], stamps[len(stamps) // 2]
        inside = list(adapter.pull_changed(Window(start, end), [self.email_field]))
        assert inside and all(start <= r.changed_at < end for r in inside)
        assert len(inside) == sum(1 for s in stamps if start <= s < end)

    def test_read_current_gives_values_now_and_omits_unknown_ids(self, adapter: CrmAdapter) -> None:
        some = [r.ref.id for r in adapter.pull_changed(EVERYTHING, [self.email_field])][:3]
        current = adapter.read_current([*some, self.unknown_id], [self.email_field, self.title_field])
        assert set(current) == set(some)
        assert all(self.title_field in values for values in current.values())

    def test_written_values_are_read_back_and_move_the_record_forward(self, adapter: CrmAdapter) -> None:
        first = next(iter(adapter.pull_changed(EVERYTHING, [self.title_field])))
        (result,) = adapter.write_back(
            [FieldUpdate(first.ref, {self.title_field: "Chief Enrichment Officer"})]
        )
        assert result.outcome is WriteOutcome.WRITTEN
        assert adapter.read_current([first.ref.id], [self.title_field])[first.ref.id][self.title_field] == (
            "Chief Enrichment Officer"
        )
        deadline = time.monotonic() + 20  # HubSpot's search lags writes: read again until it shows it
        while True:
            latest = {r.ref.id: r.changed_at for r in adapter.pull_changed(EVERYTHING, [self.title_field])}
            if latest[first.ref.id] > first.changed_at or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        assert latest[first.ref.id] > first.changed_at, "our own write bumps the modified stamp"

    def test_a_rejected_record_does_not_block_its_batch(self, adapter: CrmAdapter) -> None:
        ids = [r.ref.id for r in adapter.pull_changed(EVERYTHING, [self.title_field])][:150]
        updates = [
            FieldUpdate(self.ref(adapter, i), {self.title_field: f"Title {n}"}) for n, i in enumerate(ids)
        ]
        updates[7] = FieldUpdate(updates[7].ref, {self.email_field: "not an email"})
        updates.append(FieldUpdate(self.ref(adapter, self.unknown_id), {self.title_field: "Ghost"}))
        results = adapter.write_back(updates)
        assert [r.ref for r in results] == [u.ref for u in updates]
        rejected = {r.ref.id: r for r in results if r.outcome is WriteOutcome.REJECTED}
        assert set(rejected) == {ids[7], self.unknown_id}
        assert rejected[ids[7]].reason and "email" in rejected[ids[7]].reason.lower()
        current = adapter.read_current(ids, [self.title_field])
        assert all(current[i][self.title_field] == f"Title {n}" for n, i in enumerate(ids) if n != 7)

    def test_describe_says_what_exists_and_what_is_writable(self, adapter: CrmAdapter) -> None:
        described = adapter.describe([self.email_field, self.readonly_field, "No_Such_Field__zz"])
        assert set(described) == {self.email_field, self.readonly_field}
        assert described[self.email_field].writable and not described[self.readonly_field].writable

    def test_refused_credentials_raise_an_auth_error(self, refused_adapter: CrmAdapter) -> None:
        with pytest.raises(AuthError):
            refused_adapter.check()

    unknown_id: str
