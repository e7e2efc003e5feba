"""Contact ↔ company links: the primary company held in `associatedcompanyid`, read through v3 and v4."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from connector.sandbox.hubspot.errors import HubSpotError, json_object, read_json
from connector.sandbox.hubspot.store import ObjectStore, Record
from connector.sandbox.hubspot.times import iso, wall_ms
from connector.sandbox.hubspot.views import input_id, inputs
from connector.sandbox.kit import json_response

ASSOCIATION_BATCH_LIMIT = 1000  # since 2025-02-10 (docs/hubspot.md#associations)
# typeId 1 is the primary label, 279 / 280 the unlabeled one (docs/hubspot.md#associations).
TYPE_IDS = {("contacts", "companies"): (1, 279), ("companies", "contacts"): (2, 280)}
SINGULAR = {"contacts": "contact", "companies": "company"}


class Associations:
    def __init__(self, contacts: ObjectStore, companies: ObjectStore):
        self.stores = {"contacts": contacts, "companies": companies}
        self._reverse: tuple[int, dict[int, list[int]]] = (-1, {})

    def targets(self, from_type: str, record: Record) -> list[int]:
        contacts, companies = self.stores["contacts"], self.stores["companies"]
        if from_type == "contacts":
            raw = record.properties.get("associatedcompanyid", "")
            return [int(raw)] if raw.isdigit() and int(raw) in companies.live else []
        if self._reverse[0] != contacts.version:  # rebuilt only after contacts change
            reverse: dict[int, list[int]] = {}
            for contact_id in contacts.ids:
                raw = contacts.live[contact_id].properties.get("associatedcompanyid", "")
                if raw.isdigit():
                    reverse.setdefault(int(raw), []).append(contact_id)
            self._reverse = (contacts.version, reverse)
        return self._reverse[1].get(record.id, [])

    def v3_block(self, from_type: str, record: Record, requested: list[str] | None) -> dict[str, Any]:
        """`associations=companies` on GET: the primary company appears once per label
        (docs/hubspot.md#objects-and-properties)."""
        block: dict[str, Any] = {}
        for to_type in requested or []:
            if (from_type, to_type) not in TYPE_IDS:
                continue
            name = f"{SINGULAR[from_type]}_to_{SINGULAR[to_type]}"
            results = [
                {"id": str(target), "type": kind}
                for target in self.targets(from_type, record)
                for kind in (name, f"{name}_unlabeled")
            ]
            if results:
                block[to_type] = {"results": results}
        return block

    async def v4_batch_read(self, request: Request) -> Response:
        started = wall_ms()
        from_type, to_type = request.path_params["fromObjectType"], request.path_params["toObjectType"]
        if (from_type, to_type) not in TYPE_IDS:
            raise HubSpotError(
                400, f"Unable to infer object type from: {from_type}/{to_type}", "VALIDATION_ERROR"
            )
        items = inputs(json_object(await read_json(request)), ASSOCIATION_BATCH_LIMIT)
        primary, unlabeled = TYPE_IDS[(from_type, to_type)]
        store = self.stores[from_type]
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for item in items:
            key = input_id(item)
            record = store.find(key)
            targets = self.targets(from_type, record) if record is not None else []
            if not targets:
                errors.append(
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                        "message": f"No {SINGULAR[to_type]} is associated with {SINGULAR[from_type]} {key}.",
                        "context": {"fromObjectId": [key]},
                    }
                )
                continue
            types = [
                {"category": "HUBSPOT_DEFINED", "typeId": primary, "label": "Primary"},
                {"category": "HUBSPOT_DEFINED", "typeId": unlabeled, "label": None},
            ]
            to = [{"toObjectId": target, "associationTypes": types} for target in targets]
            results.append({"from": {"id": key}, "to": to})
        body: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
        body["startedAt"], body["completedAt"] = iso(started), iso(wall_ms())
        return json_response(body, status=207 if errors else 200)
