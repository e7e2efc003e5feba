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
from connector.sandbox.salesforce.store import INTEGRATION_USER_ID, Record, Store

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
    collection: writes.Collection,
    is_locked: Callable[[str], bool],
    stamp: datetime,
    user: str,
    rules: Sequence[writes.ValidationRule] = (),
) -> list[dict[str, Any]]:
    """`save_collection` of new records: each gets its Id only once every record passed its checks."""

    def check(spec: SObjectSpec, item: dict[str, Any]) -> tuple[SObjectSpec, Record]:
        if any(key.lower() == "id" and value not in (None, "") for key, value in item.items()):
            raise ID_ON_INSERT
        record = writes.prepare(store, spec, item, stamp, user, rules)
        locked = next((parent for parent in parents(spec, record) if is_locked(parent)), None)
        if locked is not None:
            raise writes.locked_row(locked)
        return spec, record

    def save(planned: tuple[SObjectSpec, Record]) -> str:
        spec, record = planned
        return str(writes.insert(store, spec, record)["Id"])

    return writes.save_collection(collection, check, save)


class CollectionCreate:
    """The route handler, run inside the emulator's REST pipeline (auth, limits, faults)."""

    def __init__(self, emulator: SalesforceEmulator):
        self.emulator = emulator

    async def __call__(self, request: Request, context: Context) -> Response:
        collection = await collection_body(request, self.emulator.store)
        results = create_collection(
            self.emulator.store,
            collection,
            self.emulator.locked,
            self.emulator.stamp(),
            INTEGRATION_USER_ID,
            self.emulator.behaviour.validation_rules,
        )
        # 200 even when records failed, as for updates (docs/salesforce.md#sobject-collections).
        return json_response(results)
