"""The properties API: list, read, create, update and archive property definitions of contacts and companies."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from connector.sandbox.hubspot.errors import (
    HubSpotError,
    json_object,
    missing_attributes,
    read_json,
    validation,
)
from connector.sandbox.hubspot.schema import FIELD_TYPES, GROUPS, PropertyDef
from connector.sandbox.hubspot.store import ObjectStore
from connector.sandbox.hubspot.times import wall_ms
from connector.sandbox.hubspot.views import listed
from connector.sandbox.kit import json_response

OBJECT_ALIASES = {"contacts": "contacts", "contact": "contacts", "0-1": "contacts"} | {
    "companies": "companies",
    "company": "companies",
    "0-2": "companies",
}
NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class PropertyRoutes:
    def __init__(self, stores: dict[str, ObjectStore]):
        self.stores = stores

    def _store(self, request: Request) -> ObjectStore:
        raw = request.path_params["objectType"]
        object_type = OBJECT_ALIASES.get(raw.lower())
        if object_type is None:
            raise HubSpotError(400, f"Unable to infer object type from: {raw}", "VALIDATION_ERROR")
        return self.stores[object_type]

    def _definition(self, request: Request) -> tuple[ObjectStore, PropertyDef]:
        store = self._store(request)
        name = request.path_params["propertyName"]
        definition = store.schema.get(name)
        if definition is None:
            raise HubSpotError(404, f"Unable to find property {name}", "OBJECT_NOT_FOUND")
        return store, definition

    async def get_all(self, request: Request) -> Response:
        store = self._store(request)
        wanted = listed(request, "properties")
        found = [d.as_json() for d in store.schema.values() if wanted is None or d.name in wanted]
        return json_response({"results": found})

    async def get_by_name(self, request: Request) -> Response:
        return json_response(self._definition(request)[1].as_json())

    async def create(self, request: Request) -> Response:
        store = self._store(request)
        body = json_object(await read_json(request))
        missing = [key for key in ("name", "label", "type", "fieldType", "groupName") if not body.get(key)]
        if missing:
            raise missing_attributes(missing)
        name, kind, field_type, group = body["name"], body["type"], body["fieldType"], body["groupName"]
        if not isinstance(name, str) or not NAME.match(name):
            raise validation(f"Property name {name!r} must be lowercase letters, digits and underscores")
        if kind not in FIELD_TYPES:
            raise validation(f"Invalid property type {kind}; expected one of {sorted(FIELD_TYPES)}")
        if field_type not in FIELD_TYPES[kind]:
            raise validation(
                f"Invalid fieldType {field_type} for a property of type {kind}; "
                f"expected one of {sorted(FIELD_TYPES[kind])}"
            )
        if group not in GROUPS[store.object_type]:
            raise validation(f"Property group {group} does not exist")
        if name in store.schema:
            raise HubSpotError(409, f"Property named '{name}' already exists.", "OBJECT_ALREADY_EXISTS")
        now = wall_ms()
        definition = PropertyDef(
            name,
            str(body["label"]),
            kind,
            field_type,
            group,
            description=str(body.get("description") or ""),
            options=_options(body.get("options"), kind),
            hubspot_defined=False,
            has_unique_value=bool(body.get("hasUniqueValue", False)),
            hidden=bool(body.get("hidden", False)),
            form_field=bool(body.get("formField", False)),
            display_order=int(body.get("displayOrder", -1)),
            created_ms=now,
            updated_ms=now,
        )
        store.schema[name] = definition
        return json_response(definition.as_json(), status=201)

    async def update(self, request: Request) -> Response:
        body = json_object(await read_json(request))
        store, definition = self._definition(request)
        if definition.hubspot_defined:
            raise validation(
                f"Property {definition.name} is HubSpot-defined; its definition cannot be changed"
            )
        for key, attribute in (
            ("label", "label"),
            ("description", "description"),
            ("groupName", "group_name"),
        ):
            if key in body:
                setattr(definition, attribute, str(body[key]))
        if "groupName" in body and definition.group_name not in GROUPS[store.object_type]:
            raise validation(f"Property group {definition.group_name} does not exist")
        if "options" in body:
            definition.options = _options(body["options"], definition.type)
        definition.updated_ms = wall_ms()
        return json_response(definition.as_json())

    async def archive(self, request: Request) -> Response:
        store, definition = self._definition(request)
        if definition.hubspot_defined:
            raise validation(f"Property {definition.name} is HubSpot-defined and cannot be archived")
        del store.schema[definition.name]
        return Response(status_code=204)


def _options(raw: object, kind: str) -> list[dict[str, Any]]:
    if raw is None:
        raw = []
    if not isinstance(raw, list) or not all(isinstance(item, dict) and "value" in item for item in raw):
        raise validation("options must be a list of {label, value, displayOrder, hidden}")
    if raw and kind not in ("enumeration", "bool"):
        raise validation(f"Properties of type {kind} cannot have options")
    return [
        {
            "label": str(item.get("label", item["value"])),
            "value": str(item["value"]),
            "description": str(item.get("description") or ""),
            "displayOrder": int(item.get("displayOrder", order)),
            "hidden": bool(item.get("hidden", False)),
        }
        for order, item in enumerate(raw)
    ]
