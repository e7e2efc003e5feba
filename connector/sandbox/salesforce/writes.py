"""Record writes: value checks driven by describe (lengths, types, emails), and sObject Collections saves."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, field_validator

from connector.sandbox.salesforce import ids
from connector.sandbox.salesforce.errors import NOT_FOUND_MESSAGE, RecordError, SalesforceError
from connector.sandbox.salesforce.org import OrgSchema
from connector.sandbox.salesforce.schema import FieldSpec, SObjectSpec
from connector.sandbox.salesforce.store import Record, Store, full_name, to_second

T = TypeVar("T")
Commit = Callable[[SObjectSpec, str, dict[str, Any]], None]  # writes one record's checked changes
MAX_COLLECTION_RECORDS = 200
_EMAIL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}")
ROLLED_BACK = RecordError(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using AllOrNone header",
)


class ValidationRule(BaseModel):
    """An org's validation rule, as an admin writes one in Setup: a save whose `field`, once changed, matches
    `value_pattern` is refused with FIELD_CUSTOM_VALIDATION_EXCEPTION and the admin's `message`. Rules run on
    every save of the record, whichever fields the save changes (unless the formula says ISCHANGED). Where the
    error shows is the admin's choice: "Top of Page" (Setup's default) answers `fields: []`, "Field" names the
    field (https://help.salesforce.com/s/articleView?id=sf.fields_defining_field_validation_rules.htm)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sobject: str = "Contact"
    field: str
    value_pattern: str  # searched (re.search) in the field's value as text, "" when it is empty
    message: str
    on_field: bool = False

    @field_validator("value_pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        re.compile(pattern)
        return pattern


def enforce_rules(
    rules: Sequence[ValidationRule], spec: SObjectSpec, record: Mapping[str, Any], changes: Mapping[str, Any]
) -> None:
    """Raise the first rule the record breaks once `changes` are applied to it."""
    for rule in rules:
        field = spec.field(rule.field)
        if rule.sobject.lower() != spec.name.lower() or field is None:
            continue
        value = changes[field.name] if field.name in changes else record.get(field.name)
        if re.search(rule.value_pattern, "" if value is None else str(value)):
            fields = [field.name] if rule.on_field else []
            raise RecordError("FIELD_CUSTOM_VALIDATION_EXCEPTION", rule.message, fields)


def check_values(
    spec: SObjectSpec, values: Mapping[str, Any], store: Store, *, creating: bool
) -> dict[str, Any]:
    """Validated changes by canonical field name; the first problem found raises a RecordError."""
    resolved: list[tuple[FieldSpec, Any]] = []
    for key, value in values.items():
        if key == "attributes" or (key.lower() == "id" and not creating):
            continue
        field = spec.field(key)
        if field is None:
            raise RecordError(
                "INVALID_FIELD", f"No such column '{key}' on sobject of type {spec.name}", [key]
            )
        resolved.append((field, value))
    locked = [field.name for field, _ in resolved if not (field.createable if creating else field.updateable)]
    if locked:
        raise RecordError(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            f"Unable to create/update fields: {', '.join(locked)}. Please check the security settings of this "
            "field and verify that it is read/write for your profile or permission set.",
            locked,
        )
    return {field.name: convert(field, value, store) for field, value in resolved}


def convert(field: FieldSpec, value: Any, store: Store) -> Any:
    if field.is_text and value == "":
        value = None  # Salesforce stores an empty text value as null
    if value is None:
        if field.type == "boolean":
            return False
        if not field.nillable:
            raise RecordError(
                "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{field.name}]", [field.name]
            )
        return None
    if field.is_text:
        return _text(field, value)
    if field.type in ("reference", "id"):
        return _reference(field, value, store)
    converted = _SCALARS[field.type](value)
    if converted is None:
        raise RecordError(
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            f"{field.label}: value not of required type: {value}",
            [field.name],
        )
    return converted


def _text(field: FieldSpec, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RecordError(
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            f"{field.label}: value not of required type: {value}",
            [field.name],
        )
    text = str(value)
    if len(text) > field.length:
        raise RecordError(
            "STRING_TOO_LONG",
            f"{field.label}: data value too large: {text} (max length={field.length})",
            [field.name],
        )
    if field.type == "email" and not _EMAIL.fullmatch(text):
        raise RecordError(
            "INVALID_EMAIL_ADDRESS", f"{field.label}: invalid email address: {text}", [field.name]
        )
    if field.restricted and text not in field.picklist:
        raise RecordError(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"{field.label}: bad value for restricted picklist field: {text}",
            [field.name],
        )
    return text


def _reference(field: FieldSpec, value: Any, store: Store) -> str:
    normal = ids.normalize(value)
    # A polymorphic lookup (Task.WhoId) takes an id of any of its targets; the key prefix says which.
    targets = [spec for name in field.references if (spec := store.schema.sobject(name)) is not None]
    target = next((spec for spec in targets if normal and normal.startswith(spec.key_prefix)), None)
    prefixes = [spec.key_prefix for spec in targets] or ["005"]  # User is not emulated: only its prefix
    if normal is None or not normal.startswith(tuple(prefixes)):
        raise RecordError("MALFORMED_ID", f"{field.label}: id value of incorrect type: {value}", [field.name])
    if target is not None:
        found = store.table(target).get(normal)
        if found is None or found.get("IsDeleted"):
            raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [field.name])
    return normal


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def parse_datetime(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return to_second(parsed.astimezone(UTC))  # stored to the second, as Salesforce stores datetimes


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _integer(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or float(value) != int(value):
        return None
    return int(value)


def _number(value: Any) -> float | None:
    return None if isinstance(value, bool) or not isinstance(value, int | float) else float(value)


_SCALARS: dict[str, Callable[[Any], Any]] = {
    "boolean": _boolean,
    "datetime": parse_datetime,
    "date": _date,
    "int": _integer,
    "currency": _number,
    "double": _number,
}


def apply(
    store: Store, spec: SObjectSpec, record_id: str, changes: dict[str, Any], stamp: datetime, user: str
) -> None:
    """Write validated changes; every write moves SystemModstamp and LastModifiedDate
    (docs/salesforce.md#timestamps)."""
    table = store.table(spec)
    record = table.records[record_id]
    store.writes.update((record_id, name) for name in changes)
    merged = {**changes, "SystemModstamp": stamp, "LastModifiedDate": stamp, "LastModifiedById": user}
    if "FirstName" in changes or "LastName" in changes:
        merged["Name"] = full_name({**record, **changes})
    table.change(record_id, merged)


def target_record(spec: SObjectSpec, raw_id: Any, store: Store) -> str:
    """The 18-character id of an updatable record, or the per-record error Salesforce gives."""
    if raw_id is None or raw_id == "":
        raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call")
    record_id = ids.normalize(raw_id)
    if record_id is None or not record_id.startswith(spec.key_prefix):
        raise RecordError("MALFORMED_ID", f"{spec.label} ID: id value of incorrect type: {raw_id}", ["Id"])
    record = store.table(spec).get(record_id)
    if record is None:
        raise RecordError("NOT_FOUND", NOT_FOUND_MESSAGE)
    if record.get("IsDeleted"):
        raise RecordError("ENTITY_IS_DELETED", "entity is deleted")
    return record_id


@dataclass(frozen=True)
class Collection:
    """An sObject Collections body past the request-level checks: its records, the object each one names
    (`attributes.type`), and `allOrNone`."""

    records: list[dict[str, Any]]
    specs: list[SObjectSpec]
    all_or_none: bool


def collection(body: Any, schema: OrgSchema) -> Collection:
    """Request-level checks of a collections body (create or update): a bad body fails the whole call with 400."""
    if not isinstance(body, dict):
        raise SalesforceError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
    all_or_none = body.get("allOrNone", False)
    if not isinstance(all_or_none, bool):
        raise SalesforceError(400, "JSON_PARSER_ERROR", "allOrNone must be a boolean")
    records = body.get("records")
    if not isinstance(records, list) or not records:
        raise SalesforceError(400, "INVALID_FIELD", "records must be a non-empty array")
    if len(records) > MAX_COLLECTION_RECORDS:
        raise SalesforceError(
            400,
            "EXCEEDED_ID_LIMIT",
            f"record limit reached. cannot submit more than {MAX_COLLECTION_RECORDS} records into this call",
        )
    specs = []
    for item in records:
        kind = item.get("attributes", {}).get("type") if isinstance(item, dict) else None
        if not isinstance(kind, str):
            raise SalesforceError(400, "INVALID_TYPE", "Must send a concrete entity type.")
        spec = schema.sobject(kind)
        if spec is None:
            raise SalesforceError(400, "INVALID_TYPE", f"sObject type '{kind}' is not supported.")
        specs.append(spec)
    return Collection(records, specs, all_or_none)  # every record is a dict: its type was read above


def locked_row(record_id: str) -> RecordError:
    """UNABLE_TO_LOCK_ROW, worded as Salesforce words it for one row."""
    return RecordError(
        "UNABLE_TO_LOCK_ROW", f"unable to obtain exclusive access to this record or 1 records: {record_id}"
    )


def save_collection(
    collection: Collection, check: Callable[[SObjectSpec, dict[str, Any]], T], save: Callable[[T], str]
) -> list[dict[str, Any]]:
    """Per-record SaveResults in request order. Every record is checked before any is saved: one `check`
    refuses answers its RecordError, and with allOrNone one refusal rolls every record back (none is saved).
    `save` stores a checked record and gives its Id."""
    planned: list[T | RecordError] = []
    for item, spec in zip(collection.records, collection.specs, strict=True):
        try:
            planned.append(check(spec, item))
        except RecordError as error:
            planned.append(error)
    failed = any(isinstance(entry, RecordError) for entry in planned)
    results: list[dict[str, Any]] = []
    for entry in planned:
        if isinstance(entry, RecordError):
            results.append({"success": False, "errors": [entry.as_save_error()]})
        elif collection.all_or_none and failed:
            results.append({"success": False, "errors": [ROLLED_BACK.as_save_error()]})
        else:
            results.append({"id": save(entry), "success": True, "errors": []})
    return results


def checked_update(
    store: Store,
    spec: SObjectSpec,
    record_id: str,
    values: Mapping[str, Any],
    rules: Sequence[ValidationRule],
    is_locked: Callable[[str], bool],
) -> dict[str, Any]:
    """An update's changes to an existing record, checked in Salesforce's order: values, validation rules,
    then the row lock."""
    changes = check_values(spec, values, store, creating=False)
    enforce_rules(rules, spec, store.table(spec).records[record_id], changes)
    if is_locked(record_id):
        raise locked_row(record_id)
    return changes


def update_collection(
    store: Store,
    collection: Collection,
    is_locked: Callable[[str], bool],
    commit: Commit,
    rules: Sequence[ValidationRule] = (),
) -> list[dict[str, Any]]:
    """`save_collection` of updates. `commit` writes one record's validated changes (`apply` with the call's
    stamp, or later)."""

    def check(spec: SObjectSpec, item: dict[str, Any]) -> tuple[SObjectSpec, str, dict[str, Any]]:
        record_id = target_record(spec, item.get("id", item.get("Id")), store)
        values = {k: v for k, v in item.items() if k.lower() != "id"}
        return spec, record_id, checked_update(store, spec, record_id, values, rules, is_locked)

    def save(planned: tuple[SObjectSpec, str, dict[str, Any]]) -> str:
        spec, record_id, changes = planned
        commit(spec, record_id, changes)
        return record_id

    return save_collection(collection, check, save)


def insert(store: Store, spec: SObjectSpec, record: Record) -> Record:
    """Store a record `prepare` made: it gets its Id, and its Name when the object has person names."""
    record["Id"] = store.new_id(spec)
    if spec.field("LastName") is not None:
        record["Name"] = full_name(record)
    store.table(spec).put(record)
    return record


def prepare(
    store: Store,
    spec: SObjectSpec,
    values: Mapping[str, Any],
    stamp: datetime,
    user: str,
    rules: Sequence[ValidationRule] = (),
) -> Record:
    """A new record, checked and defaulted but without an Id and not stored yet."""
    changes = check_values(spec, values, store, creating=True)
    record = store.blank(spec, stamp, user)
    record.update(changes)
    missing = [name for name in spec.required if record.get(name) is None]
    if missing:
        raise RecordError(
            "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
        )
    enforce_rules(rules, spec, record, {})
    return record
