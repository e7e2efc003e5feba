"""Notes (object 0-46): created with associations to contacts, read back, and listed from a contact (v4).

The object routes are the generic ones (`ObjectRoutes`) plus `associations` on create: each input may carry
`[{"to": {"id": contactId}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]}]`
(202 = note_to_contact, 201 = contact_to_note). A batch naming a contact that does not exist is refused whole
with a 400 and nothing is created: HubSpot answers batch create with a 207 only "when you've enabled
multi-status error handling" (docs/hubspot.md#notes), which the emulator does not model.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from connector.sandbox.hubspot.associations import Associations
from connector.sandbox.hubspot.errors import (
    HubSpotError,
    json_object,
    missing_attributes,
    read_json,
    validation,
)
from connector.sandbox.hubspot.objects import Endpoint, ObjectRoutes
from connector.sandbox.hubspot.schema import PropertyDef
from connector.sandbox.hubspot.store import ObjectStore, Record
from connector.sandbox.hubspot.times import wall_ms
from connector.sandbox.hubspot.views import inputs, listed, number, record_json
from connector.sandbox.kit import json_response

NOTE_TO_CONTACT, CONTACT_TO_NOTE = 202, 201
NOTE_ID_START = 50_000_000_001  # note ids are large numbers, far from contact ids
ASSOCIATION_PAGE = 500  # the v4 list's default and maximum page
OBJECT_ALIASES = {
    **dict.fromkeys(("contacts", "contact", "0-1"), "contacts"),
    **dict.fromkeys(("companies", "company", "0-2"), "companies"),
    **dict.fromkeys(("notes", "note", "0-46"), "notes"),
}


def note_properties(created_ms: int) -> dict[str, PropertyDef]:
    """The note properties a connector writes (`hs_note_body` is HTML) and the system ones."""
    group = "engagement"
    defs = [
        PropertyDef("hs_createdate", "Create date", "datetime", "date", group, read_only=True),
        PropertyDef("hs_lastmodifieddate", "Last modified date", "datetime", "date", group, read_only=True),
        PropertyDef("hs_object_id", "Record ID", "number", "number", group, read_only=True, calculated=True),
        PropertyDef("hs_timestamp", "Activity date", "datetime", "date", group),
        PropertyDef("hs_note_body", "Note body", "string", "html", group),
        PropertyDef(
            "hubspot_owner_id",
            "Activity assigned to",
            "enumeration",
            "select",
            group,
            external_options=True,
            referenced_object_type="OWNER",
        ),
    ]
    for order, definition in enumerate(defs):
        definition.display_order = order
        definition.created_ms = definition.updated_ms = created_ms
    return {definition.name: definition for definition in defs}


class NoteLinks:
    """Note ↔ contact associations, both directions, in the order they were made."""

    def __init__(self) -> None:
        self.contacts_of: dict[int, list[int]] = {}
        self.notes_of: dict[int, list[int]] = {}

    def clear(self) -> None:
        self.contacts_of.clear()
        self.notes_of.clear()

    def link(self, note_id: int, contact_id: int) -> None:
        if contact_id not in self.contacts_of.setdefault(note_id, []):
            self.contacts_of[note_id].append(contact_id)
            self.notes_of.setdefault(contact_id, []).append(note_id)


class NoteRoutes(ObjectRoutes):
    def __init__(
        self,
        notes: ObjectStore,
        contacts: ObjectStore,
        links: NoteLinks,
        associations: Associations,
        portal_id: int,
    ):
        super().__init__(notes, associations, portal_id)
        self.id_param = "noteId"
        self.contacts = contacts
        self.links = links

    def handlers(self) -> list[tuple[str, str, Endpoint, bool]]:
        v4 = "/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}"
        return [*super().handlers(), ("GET", v4, self.v4_list, False)]

    # -- create with associations -----------------------------------------------------------------
    def _contacts(self, raw: object) -> tuple[list[int], list[str]]:
        """(contact ids to link, ids that name no live contact) of one input's `associations`."""
        if raw is None:
            return [], []
        if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
            raise validation("Invalid input JSON: associations must be a list of objects")
        found: list[int] = []
        missing: list[str] = []
        for item in raw:
            target = item.get("to")
            types = item.get("types")
            if not isinstance(target, dict) or target.get("id") in (None, ""):
                raise missing_attributes(["to.id"])
            if not isinstance(types, list) or not types:
                raise missing_attributes(["types"])
            for spec in types:
                kind = (spec.get("associationCategory"), spec.get("associationTypeId"))
                if kind != ("HUBSPOT_DEFINED", NOTE_TO_CONTACT):
                    raise validation(
                        f"{kind[0]} association type {kind[1]} is not a valid type from note to contact; "
                        f"the emulator links notes to contacts with HUBSPOT_DEFINED {NOTE_TO_CONTACT}"
                    )
            key = str(target["id"])
            contact = self.contacts.find(key)
            if contact is None:
                missing.append(key)
            else:
                found.append(contact.id)
        return found, missing

    def _planned(self, items: list[dict[str, Any]]) -> list[tuple[dict[str, str | None], list[int]]]:
        planned, missing = [], []
        for item in items:
            changes = self._validated(item.get("properties"))
            contacts, unknown = self._contacts(item.get("associations"))
            planned.append((changes, contacts))
            missing += unknown
        if missing:  # the whole request fails, nothing is created (module docstring)
            raise HubSpotError(
                400,
                f"Invalid associations: contact {', '.join(missing)} does not exist",
                "VALIDATION_ERROR",
                context={"ids": missing},
            )
        return planned

    def _create(self, changes: dict[str, str | None], contacts: list[int], ms: int) -> Record:
        record = self.store.create(changes, ms)
        for contact_id in contacts:
            self.links.link(record.id, contact_id)
        return record

    async def create(self, request: Request) -> Response:
        [(changes, contacts)] = self._planned([json_object(await read_json(request))])
        record = self._create(changes, contacts, self.store.write_ms())
        return json_response(record_json(self.store, record, everything=True), status=201)

    async def batch_create(self, request: Request) -> Response:
        started = wall_ms()
        planned = self._planned(inputs(json_object(await read_json(request))))
        ms = self.store.write_ms()
        results = [
            record_json(self.store, self._create(changes, contacts, ms), everything=True)
            for changes, contacts in planned
        ]
        return self._batch(results, [], started, "create", status=201)

    # -- reading associations ---------------------------------------------------------------------
    def _view(self, request: Request, record: Record, names: list[str] | None) -> dict[str, Any]:
        body = record_json(self.store, record, names, history=listed(request, "propertiesWithHistory") or ())
        if "contacts" in (listed(request, "associations") or []):
            linked = [c for c in self.links.contacts_of.get(record.id, []) if c in self.contacts.live]
            if linked:
                results = [{"id": str(c), "type": "note_to_contact"} for c in linked]
                body["associations"] = {"contacts": {"results": results}}
        return body

    def _targets(self, from_type: str, to_type: str, object_id: str) -> list[tuple[int, int, str | None]]:
        """(target id, typeId, label) of one record's associations to `to_type`."""
        if (from_type, to_type) == ("contacts", "notes"):
            contact = self.contacts.find(object_id)
            notes = self.links.notes_of.get(contact.id, []) if contact else []
            return [(n, CONTACT_TO_NOTE, None) for n in notes if n in self.store.live]
        if (from_type, to_type) == ("notes", "contacts"):
            note = self.store.find(object_id)
            contacts = self.links.contacts_of.get(note.id, []) if note else []
            return [(c, NOTE_TO_CONTACT, None) for c in contacts if c in self.contacts.live]
        primary_unlabeled = {("contacts", "companies"): (1, 279), ("companies", "contacts"): (2, 280)}
        if (from_type, to_type) in primary_unlabeled:
            primary, unlabeled = primary_unlabeled[(from_type, to_type)]
            record = self.associations.stores[from_type].find(object_id)
            found = self.associations.targets(from_type, record) if record else []
            return [
                (t, kind, label) for t in found for kind, label in ((primary, "Primary"), (unlabeled, None))
            ]
        raise HubSpotError(
            400, f"Unable to infer object type from: {from_type}/{to_type}", "VALIDATION_ERROR"
        )

    async def v4_list(self, request: Request) -> Response:
        """GET /crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}: one entry per target, its
        types listed together (docs/hubspot.md#associations); `after` is an opaque offset."""
        params = request.path_params
        from_type = OBJECT_ALIASES.get(params["objectType"].lower(), params["objectType"])
        to_type = OBJECT_ALIASES.get(params["toObjectType"].lower(), params["toObjectType"])
        grouped: dict[int, list[dict[str, Any]]] = {}
        for target, type_id, label in self._targets(from_type, to_type, params["objectId"]):
            grouped.setdefault(target, []).append(
                {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": label}
            )
        limit = number(request, "limit", ASSOCIATION_PAGE, ASSOCIATION_PAGE)
        after = request.query_params.get("after") or "0"
        if not after.isdigit():
            raise validation(f"Invalid value for after: {after} is not a valid paging cursor")
        start = int(after)
        items = list(grouped.items())
        body: dict[str, Any] = {
            "results": [
                {"toObjectId": target, "associationTypes": types}
                for target, types in items[start : start + limit]
            ]
        }
        if start + limit < len(items):
            body["paging"] = {"next": {"after": str(start + limit)}}
        return json_response(body)
