"""Cursors: where each instance's next pull starts, to the millisecond, in UTC."""

from __future__ import annotations

from datetime import timedelta

from connector.store import Cursor, Store
from tests.store.conftest import T0


def test_cursors_keep_milliseconds_and_time_zone(store: Store) -> None:
    assert store.cursors.get("acme") is None
    store.cursors.set("acme", Cursor(T0))
    store.cursors.set("acme", Cursor(T0 + timedelta(milliseconds=1)))
    assert store.cursors.get("acme") == Cursor(T0 + timedelta(milliseconds=1))
    assert store.cursors.get("other") is None
