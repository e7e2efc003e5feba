"""What a Salesforce field can hold, from its describe: values that cannot fit are kept back, with a reason.

Salesforce refuses a record as a whole when one of its values does not fit (sObject Collections answer one
SaveResult per record: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_update.htm),
so a 200-character title would take the phone and the status down with it. Each value is checked here against
the field's described type, length and picklist before it is sent; one that cannot fit is not sent, never cut,
and its reason reads like Salesforce's own refusal. What this misses, Salesforce still refuses, naming the field
(salesforce_writes.py handles that).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from connector.models import FieldInfo, is_valid_email

# Types whose values are text, limited by `length` (https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/field_types.htm).
TEXT_TYPES = frozenset(
    {
        "string",
        "textarea",
        "phone",
        "url",
        "email",
        "picklist",
        "multipicklist",
        "combobox",
        "encryptedstring",
    }
)
NOT_SENT = "; not sent"


def soql_datetime(moment: datetime) -> str:
    """SOQL datetime literals take no quotes; keep milliseconds, which `format_soql` would drop
    (docs/salesforce.md#query-and-paging)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_salesforce_value(value: Any) -> Any:
    """A value as it goes on the wire: datetimes as ISO-8601 in UTC, the rest as JSON has them."""
    if isinstance(value, datetime):
        return soql_datetime(value)
    return value


@dataclass(frozen=True)
class DescribedField:
    """One field of a describe answer (`sobjects/{object}/describe`, `fields[]`)."""

    name: str
    label: str
    type: str
    length: int | None
    updateable: bool
    nillable: bool
    restricted_values: frozenset[str] | None  # a restricted picklist's active values; None: any value
    relationship: str | None  # `Account` for AccountId: the dotted prefix of its parent's fields
    references: str | None  # the object a lookup points at

    @classmethod
    def from_describe(cls, raw: Mapping[str, Any]) -> DescribedField:
        restricted = bool(raw.get("restrictedPicklist"))
        values = frozenset(
            str(item["value"]) for item in raw.get("picklistValues") or [] if item.get("active", True)
        )
        return cls(
            name=str(raw["name"]),
            label=str(raw.get("label") or raw["name"]),
            type=str(raw["type"]),
            length=int(raw["length"]) if raw.get("length") else None,
            updateable=bool(raw["updateable"]),
            nillable=bool(raw["nillable"]),
            restricted_values=values if restricted else None,
            relationship=raw.get("relationshipName"),
            references=(raw.get("referenceTo") or [None])[0],
        )

    def info(self) -> FieldInfo:
        return FieldInfo(self.name, self.type, self.updateable, self.length, self.nillable)


def sendable(
    values: Mapping[str, Any], fields: Mapping[str, DescribedField], object_name: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """The values that fit their fields, and the others by name with the reason each is not sent; each is
    judged as it would be sent. `fields` is keyed by lower-case name (Salesforce's names ignore case)."""
    fit: dict[str, Any] = {}
    refused: dict[str, str] = {}
    for name, value in values.items():
        reason = refusal(fields.get(name.lower()), name, to_salesforce_value(value), object_name)
        if reason is None:
            fit[name] = value
        else:
            refused[name] = reason
    return fit, refused


def refusal(field: DescribedField | None, name: str, value: Any, object_name: str) -> str | None:
    """Why Salesforce would refuse `value` in this field, worded as it would say it, or None if it fits."""
    if field is None:
        return f"INVALID_FIELD: No such column '{name}' on sobject of type {object_name}{NOT_SENT}"
    if not field.updateable:
        return f"INVALID_FIELD_FOR_INSERT_UPDATE: Unable to create/update fields: {field.name}{NOT_SENT}"
    if value is None or (value == "" and field.type in TEXT_TYPES):  # clears the field
        if field.nillable or field.type == "boolean":  # a cleared checkbox is false
            return None
        return f"REQUIRED_FIELD_MISSING: Required fields are missing: [{field.name}]{NOT_SENT}"
    if field.type in TEXT_TYPES:
        return _text_refusal(field, value)
    fits = _SCALARS.get(field.type)
    return _wrong_type(field, value) if fits is not None and not fits(value) else None


def _wrong_type(field: DescribedField, value: Any) -> str:
    return (
        f"INVALID_TYPE_ON_FIELD_IN_RECORD: {field.label}: value not of required type: {value!r:.80}{NOT_SENT}"
    )


def _text_refusal(field: DescribedField, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return _wrong_type(field, value)
    text = str(value)
    length = salesforce_length(text)
    if field.length is not None and length > field.length:
        return (
            f"STRING_TOO_LONG: {field.label}: data value too large: {length} characters "
            f"(max length={field.length}){NOT_SENT}"
        )
    if field.type == "email" and not is_valid_email(text):
        return f"INVALID_EMAIL_ADDRESS: {field.label}: invalid email address: {text:.100}{NOT_SENT}"
    if field.restricted_values is not None:
        chosen = text.split(";") if field.type == "multipicklist" else [text]
        if any(choice not in field.restricted_values for choice in chosen):
            return (
                f"INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST: {field.label}: bad value for restricted picklist "
                f"field: {text:.100}{NOT_SENT}"
            )
    return None


def salesforce_length(text: str) -> int:
    """Length as Salesforce counts it: in UTF-16 code units, as Java does, so an emoji counts two."""
    return len(text.encode("utf-16-le")) // 2


def _is_boolean(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, str) and value.lower() in ("true", "false"))


def _is_datetime(value: Any) -> bool:
    return isinstance(value, datetime) or (isinstance(value, str) and _parses(value, datetime.fromisoformat))


def _is_date(value: Any) -> bool:
    return isinstance(value, date) or (isinstance(value, str) and _parses(value, date.fromisoformat))


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int | float) or (isinstance(value, str) and _parses(value, float))


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int) or (isinstance(value, str) and _parses(value, int))


def _parses(text: str, parse: Callable[[str], Any]) -> bool:
    try:
        parse(text)
    except ValueError:
        return False
    return True


_SCALARS: dict[str, Callable[[Any], bool]] = {
    "boolean": _is_boolean,
    "datetime": _is_datetime,
    "date": _is_date,
    "int": _is_integer,
    "double": _is_number,
    "currency": _is_number,
    "percent": _is_number,
}
