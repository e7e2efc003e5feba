"""What two domain words mean, once for the whole connector: a *blank* value and two values that are the *same*.

Selection (which types a record still needs), write planning (fill_empty, "already equal"), rollback, the
confirmation of writes left pending by a crash and the dry runs all ask these questions; when they answered
them differently, the selection bought a phone for a field holding "n/a" that the write planning then
called "already has a value": paid for, never written, and bought again after every cooldown.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

NO_PLACEHOLDERS: frozenset[str] = frozenset()


def blank(value: Any, placeholders: Collection[str] = NO_PLACEHOLDERS) -> bool:
    """Nothing there: None, an empty or all-space string, an empty list or object, or one of the mapping's
    placeholders (`blank_values`, compared without case or surrounding spaces; pass them casefolded)."""
    if value is None:
        return True
    if isinstance(value, str):
        text = value.strip()
        return not text or (bool(placeholders) and text.casefold() in placeholders)
    return isinstance(value, list | tuple | dict) and not value


def _moment(value: Any) -> datetime | None:
    """A timestamp, however a CRM writes it ('…T12:00:00.000+0000', '…Z', a datetime), to the second: Salesforce
    stores datetimes without their milliseconds and answers `.000` (salesforce.stackexchange.com/questions/
    234824), so a value written as 12:00:00.482 reads back as 12:00:00.000 and is the same value."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and len(value) >= 19 and value[10:11] == "T":
        text = value.strip().replace("Z", "+00:00")
        if (
            text[-5:-4] in "+-"
            and text[-3:-2] != ":"
            and text[-5:].replace("+", "").replace("-", "").isdigit()
        ):
            text = f"{text[:-2]}:{text[-2:]}"  # Salesforce's +0000
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


def same_value(left: Any, right: Any, placeholders: Collection[str] = NO_PLACEHOLDERS) -> bool:
    """Equal as a CRM would store them: two blanks are the same (None, "" and a placeholder alike), a blank
    and a value are not; otherwise case and surrounding spaces aside, and timestamps to the second."""
    left_blank, right_blank = blank(left, placeholders), blank(right, placeholders)
    if left_blank or right_blank:
        return left_blank and right_blank
    moments = _moment(left), _moment(right)
    if None not in moments:
        return moments[0] == moments[1]
    return str(left).strip().casefold() == str(right).strip().casefold()
