"""sObject Collections create: `POST composite/sobjects` with up to 200 new records of any emulated type.

Salesforce answers 200 with one SaveResult per record, in request order, even when records fail; a record must
carry `attributes.type` and no Id (docs/salesforce.md#sobject-collections; the Collections create guide: "set
the type attribute for each object, but don't set the id field"). Creating a child record locks its parent, so
the `lock_row_share` knob also fails creates with UNABLE_TO_LOCK_ROW, keyed on the parent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from connector.sandbox.kit import json_response
from connector.sandbox.salesforce import writes
from connector.sandbox.salesforce.errors import RecordError
from connector.sandbox.salesforce.rest import Context, collection_body
from connector.sandbox.salesforce.schema import SObjectSpec, sobject
from connector.sandbox.salesforce.store import INTEGRATION_USER_ID, Record, Store, full_name

if TYPE_CHECKING:
    from connector.sandbox.salesforce.app import SalesforceEmulator

# Salesforce's wording for an Id on an insert; the Collections guide only says not to set one.
ID_ON_INSERT = RecordError("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])


def parents(spec: SObjectSpec, record: Record) -> list[str]:
    """Ids of the emulated records this one looks up (not users): the rows a create locks."""
    return [
        record[field.name]
        for field in spec.fields
        if field.type == "reference"
        and field.createable
        and record.get(field.name)
        and any(sobject(name) for name in field.references if name != "User")
    ]


def create_collection(
    store: Store,
    records: list[dict[str, Any]],
    specs: list[SObjectSpec],
    all_or_none: bool,
    is_locked: Callable[[str], bool],
    stamp: datetime,
    user: str,
    rules: Sequence[writes.ValidationRule] = (),
) -> list[dict[str, Any]]:
    """Per-record SaveResults in request order; with allOrNone one failure rolls every record back."""
    planned: list[tuple[SObjectSpec, Record] | RecordError] = []
    for item, spec in zip(records, specs, strict=True):
        try:
            if any(key.lower() == "id" and value not in (None, "") for key, value in item.items()):
                raise ID_ON_INSERT
            record = writes.prepare(store, spec, item, stamp, user, rules)
            locked = next((parent for parent in parents(spec, record) if is_locked(parent)), None)
            if locked is not None:
                raise RecordError(
                    "UNABLE_TO_LOCK_ROW",
                    f"unable to obtain exclusive access to this record or 1 records: {locked}",
                )
            planned.append((spec, record))
        except RecordError as error:
            planned.append(error)
    failed = any(isinstance(entry, RecordError) for entry in planned)
    results: list[dict[str, Any]] = []
    for entry in planned:
        if isinstance(entry, RecordError):
            results.append({"success": False, "errors": [entry.as_save_error()]})
        elif all_or_none and failed:
            results.append({"success": False, "errors": [writes.ROLLED_BACK.as_save_error()]})
        else:
            spec, record = entry
            record["Id"] = store.new_id(spec)
            if spec.field("LastName") is not None:
                record["Name"] = full_name(record)
            store.table(spec).put(record)
            results.append({"id": record["Id"], "success": True, "errors": []})
    return results


class CollectionCreate:
    """The route handler, run inside the emulator's REST pipeline (auth, limits, faults)."""

    def __init__(self, emulator: SalesforceEmulator):
        self.emulator = emulator

    async def __call__(self, request: Request, context: Context) -> Response:
        records, specs, all_or_none = await collection_body(request, self.emulator.store)
        results = create_collection(
            self.emulator.store,
            records,
            specs,
            all_or_none,
            self.emulator.locked,
            self.emulator.stamp(),
            INTEGRATION_USER_ID,
            self.emulator.behaviour.validation_rules,
        )
        # 200 even when records failed, as for updates (docs/salesforce.md#sobject-collections).
        return json_response(results)
