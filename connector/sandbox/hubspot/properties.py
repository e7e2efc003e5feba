"""The properties API: list, read, create, update and archive property definitions of the standard object
types, and the legacy v2 lists older scripts still call."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from connector.sandbox.hubspot.catalog import ObjectType, object_type
from connector.sandbox.hubspot.errors import (
    HubSpotError,
    json_object,
    missing_attributes,
    missing_scopes,
    read_json,
    validation,
)
from connector.sandbox.hubspot.schema import FIELD_TYPES, GROUPS, PropertyDef
from connector.sandbox.hubspot.times import wall_ms
from connector.sandbox.hubspot.views import listed
from connector.sandbox.kit import json_response

NAME = re.compile(r"^[a-z][a-z0-9_]*$")
Schema = dict[str, PropertyDef]


class PropertyRoutes:
    """`schemas` holds each standard type's definitions by type name; `scopes` gives the token's scopes."""

    def __init__(self, schemas: Mapping[str, Schema], scopes: Callable[[], Sequence[str]]):
        self.schemas = schemas
        self.scopes = scopes

    def _type(
        self, request: Request, *, write: bool = False, raw: str | None = None
    ) -> tuple[ObjectType, Schema]:
        """The type the path names (or `raw`) and its definitions, if the token may read (or change) them."""
        raw = raw or request.path_params["objectType"]
        kind = object_type(raw)
        if kind is None or kind.name not in self.schemas:
            raise HubSpotError(400, f"Unable to infer object type from: {raw}", "VALIDATION_ERROR")
        needed = (f"crm.schemas.{kind.name}.write",) if write else kind.scopes
        if not set(self.scopes()) & set(needed):
            raise missing_scopes(needed)
        return kind, self.schemas[kind.name]

    def _definition(self, request: Request, *, write: bool = False) -> tuple[ObjectType, Schema, PropertyDef]:
        kind, schema = self._type(request, write=write)
        name = request.path_params["propertyName"]
        definition = schema.get(name)
        if definition is None:
            raise HubSpotError(404, f"Unable to find property {name}", "OBJECT_NOT_FOUND")
        return kind, schema, definition

    async def get_all(self, request: Request) -> Response:
        _, schema = self._type(request)
        wanted = listed(request, "properties")
        found = [d.as_json() for d in schema.values() if wanted is None or d.name in wanted]
        return json_response({"results": found})

    async def get_by_name(self, request: Request) -> Response:
        return json_response(self._definition(request)[2].as_json())

    async def create(self, request: Request) -> Response:
        kind_of, schema = self._type(request, write=True)
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
        if group not in groups_of(kind_of):
            raise validation(f"Property group {group} does not exist")
        if name in schema:
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
        schema[name] = definition
        return json_response(definition.as_json(), status=201)

    async def update(self, request: Request) -> Response:
        body = json_object(await read_json(request))
        kind, _, definition = self._definition(request, write=True)
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
        if "groupName" in body and definition.group_name not in groups_of(kind):
            raise validation(f"Property group {definition.group_name} does not exist")
        if "options" in body:
            definition.options = _options(body["options"], definition.type)
        definition.updated_ms = wall_ms()
        return json_response(definition.as_json())

    async def archive(self, request: Request) -> Response:
        _, schema, definition = self._definition(request, write=True)
        if definition.hubspot_defined:
            raise validation(f"Property {definition.name} is HubSpot-defined and cannot be archived")
        del schema[definition.name]
        return Response(status_code=204)

    # -- the legacy v2 lists: a bare JSON array, timestamps in epoch milliseconds ----------------------
    async def legacy_list(self, request: Request) -> Response:
        """`GET /properties/v2/{contact|company|…}/properties`
        (https://legacydocs.hubspot.com/docs/methods/contacts/v2/get_contacts_properties)."""
        _, schema = self._type(request)
        return json_response([_legacy(definition) for definition in schema.values()])

    async def legacy_companies(self, request: Request) -> Response:
        """`GET /companies/v2/properties`, the legacy Companies API's own list."""
        _, schema = self._type(request, raw="companies")
        return json_response([_legacy(definition) for definition in schema.values()])


def groups_of(kind: ObjectType) -> tuple[str, ...]:
    return GROUPS.get(kind.name, (kind.group,))


def _legacy(definition: PropertyDef) -> dict[str, Any]:
    """A property as the v1/v2 properties APIs show it: flags flat, not under modificationMetadata."""
    return {
        "name": definition.name,
        "label": definition.label,
        "description": definition.description,
        "groupName": definition.group_name,
        "type": definition.type,
        "fieldType": definition.field_type,
        "options": [
            {**option, "readOnly": definition.hubspot_defined, "description": option.get("description", "")}
            for option in definition.options
        ],
        "displayOrder": definition.display_order,
        "calculated": definition.calculated,
        "externalOptions": definition.external_options,
        "hasUniqueValue": definition.has_unique_value,
        "hidden": definition.hidden,
        "hubspotDefined": definition.hubspot_defined,
        "formField": definition.form_field,
        "readOnlyValue": definition.read_only,
        "readOnlyDefinition": definition.hubspot_defined,
        "mutableDefinitionNotDeletable": definition.hubspot_defined,
        "favorited": False,
        "favoritedOrder": -1,
        "deleted": False,
        "createdAt": definition.created_ms,
        "updatedAt": definition.updated_ms,
    }


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
