"""How records look on the wire, and the query-string and body conventions every object route shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request

from connector.sandbox.hubspot.errors import (
    HubSpotError,
    bad_json,
    missing_attributes,
    not_found,
    too_many_inputs,
    validation,
)
from connector.sandbox.hubspot.store import ObjectStore, Record
from connector.sandbox.hubspot.times import iso

# GET and search return these without `properties` (docs/hubspot.md#objects-and-properties); the system three
# always come along.
DEFAULT_PROPERTIES = {
    "contacts": ("email", "firstname", "lastname"),
    "companies": ("domain", "name"),
    "notes": (),
}
BATCH_LIMIT = 100
HISTORY_BATCH_LIMIT = 50


def system_properties(store: ObjectStore) -> tuple[str, ...]:
    return (store.created_property, store.modified_property, "hs_object_id")


def record_json(
    store: ObjectStore,
    record: Record,
    names: Sequence[str] | None = None,
    *,
    everything: bool = False,
    history: Sequence[str] = (),
) -> dict[str, Any]:
    """`names` None → the defaults; `everything` (write responses) → every set value. Unknown names are
    left out and known-but-unset ones are null; values are strings, keys in alphabetical order."""
    if everything:
        wanted = {*record.properties, *system_properties(store)}
    else:
        asked = DEFAULT_PROPERTIES[store.object_type] if names is None else names
        wanted = {name for name in asked if name in store.schema} | set(system_properties(store))
    body: dict[str, Any] = {
        "id": str(record.id),
        "properties": {name: store.value(record, name) for name in sorted(wanted)},
        "createdAt": iso(record.created_ms),
        "updatedAt": iso(record.updated_ms),
        "archived": record.archived_ms is not None,
    }
    if record.archived_ms is not None:
        body["archivedAt"] = iso(record.archived_ms)
    if history:
        body["propertiesWithHistory"] = {
            name: _history(store, record, name) for name in history if name in store.schema
        }
    return body


def _history(store: ObjectStore, record: Record, name: str) -> list[dict[str, Any]]:
    # Only the current value is kept; that is the newest entry HubSpot would list.
    value = store.value(record, name)
    if value is None:
        return []
    stamp = record.stamps.get(name)
    source = "INTEGRATION" if stamp is not None else "IMPORT"
    return [{"sourceType": source, "value": value, "timestamp": iso(stamp or record.created_ms)}]


def listed(request: Request, key: str) -> list[str] | None:
    """Repeated keys and comma-separated values both work (`properties=a&properties=b,c`:
    docs/hubspot.md#what-the-sdk-sends)."""
    values = [part.strip() for raw in request.query_params.getlist(key) for part in raw.split(",")]
    values = [value for value in values if value]
    return values or None


def flag(request: Request, key: str, default: bool = False) -> bool:
    """Booleans in any case: the SDK sends `archived=False` (docs/hubspot.md#what-the-sdk-sends)."""
    raw = request.query_params.get(key)
    if raw is None or raw == "":
        return default
    if raw.lower() not in ("true", "false"):
        raise validation(f"Invalid value for {key}: {raw} is not a boolean")
    return raw.lower() == "true"


def number(request: Request, key: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(key)
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise validation(f"Invalid value for {key}: {raw} is not an integer")
    if int(raw) > maximum:
        raise validation(f"Invalid value for {key}: {raw} is greater than the maximum of {maximum}")
    return int(raw)


def inputs(body: dict[str, Any], limit: int = BATCH_LIMIT) -> list[dict[str, Any]]:
    items = body.get("inputs")
    if not isinstance(items, list):
        raise missing_attributes(["inputs"])
    if len(items) > limit:
        raise too_many_inputs(limit)
    if not all(isinstance(item, dict) for item in items):
        raise bad_json("each input must be an object")
    return items


def input_id(item: dict[str, Any]) -> str:
    raw = item.get("id")
    if raw is None or isinstance(raw, bool | dict | list):
        raise missing_attributes(["id"])
    return str(raw)


def lookup(store: ObjectStore, key: str, id_property: str | None) -> Record:
    if id_property not in (None, "hs_object_id") and id_property not in store.schema:
        raise validation(f"Property {id_property} does not exist")
    record = store.find(key, id_property)
    if record is not None:
        return record
    if id_property is None and not key.isdigit():
        raise HubSpotError(
            404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND", context={"id": [key]}
        )  # two spaces, as HubSpot sends it
    raise not_found()


def unique_conflicts(store: ObjectStore, writes: Sequence[tuple[int | None, dict[str, str | None]]]) -> None:
    """Email is unique per portal: taking another contact's email is a 409 (docs/hubspot.md#error-bodies)."""
    if store.unique_property is None:
        return
    claimed: dict[str, int | None] = {}
    for record_id, changes in writes:
        value = changes.get(store.unique_property)
        if not value:
            continue
        owner = store.unique_owner(value)
        if owner is not None and owner != record_id:
            raise HubSpotError(409, f"Contact already exists. Existing ID: {owner}", "CONFLICT")
        if value.lower() in claimed and claimed[value.lower()] != record_id:
            raise HubSpotError(409, f"Duplicate {store.unique_property} in batch input: {value}", "CONFLICT")
        claimed[value.lower()] = record_id
