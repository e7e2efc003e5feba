"""Millisecond timestamps as HubSpot writes and reads them (Java `Instant` strings, epoch-millisecond strings)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def iso(ms: int) -> str:
    """HubSpot serialises with Java's `Instant.toString()`: milliseconds only when they are not zero."""
    moment = EPOCH + timedelta(milliseconds=ms)
    fraction = f".{ms % 1000:03d}" if ms % 1000 else ""
    return f"{moment:%Y-%m-%dT%H:%M:%S}{fraction}Z"


def iso_date(ms: int) -> str:
    return f"{EPOCH + timedelta(milliseconds=ms):%Y-%m-%d}"


def to_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(milliseconds=1)


def parse_ms(value: object) -> int | None:
    """Epoch milliseconds (number or digit string), an ISO-8601 instant, or a `YYYY-MM-DD` date (UTC midnight).

    HubSpot's filters and datetime properties accept both forms (docs/hubspot.md#timestamps: the SDK README
    filters with epoch-millisecond strings, HubSpot's CLI with dates).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        return to_ms(datetime.fromisoformat(text))
    except ValueError:
        return None
