"""HubSpot's standard object types: their names (plural, singular, type id), the scopes that read their
properties, and the properties of the types the emulator keeps no records of.

Clients name an object type by its plural (`contacts`), its singular (`contact`) or its id (`0-1`) on the
objects, search, properties and associations routes (https://developers.hubspot.com/docs/guides/api/crm/understanding-the-crm,
"object type IDs"). Extractors list every standard type's properties; a token without the type's scope gets
403 MISSING_SCOPES, never a 400 (https://developers.hubspot.com/docs/api-reference/error-handling).
"""

from __future__ import annotations

from dataclasses import dataclass

from connector.sandbox.hubspot.schema import PropertyDef


@dataclass(frozen=True)
class ObjectType:
    name: str  # the plural API name
    singular: str
    type_id: str
    scopes: tuple[str, ...]  # any one of them reads the type's properties
    group: str  # the group its standard properties are in


def _crm(kind: str) -> tuple[str, ...]:
    return (f"crm.objects.{kind}.read", f"crm.schemas.{kind}.read")


# Engagements are read with the contacts scopes (the spec lists them for calls, emails, notes, …).
_ENGAGEMENT = _crm("contacts")
TYPES: tuple[ObjectType, ...] = (
    ObjectType("contacts", "contact", "0-1", _crm("contacts"), "contactinformation"),
    ObjectType("companies", "company", "0-2", _crm("companies"), "companyinformation"),
    ObjectType("deals", "deal", "0-3", _crm("deals"), "dealinformation"),
    ObjectType("tickets", "ticket", "0-5", ("tickets",), "ticketinformation"),
    ObjectType("products", "product", "0-7", ("e-commerce",), "productinformation"),
    ObjectType("line_items", "line_item", "0-8", ("e-commerce",), "lineiteminformation"),
    ObjectType("quotes", "quote", "0-14", _crm("quotes"), "quoteinformation"),
    ObjectType("communications", "communication", "0-18", _ENGAGEMENT, "engagement"),
    ObjectType("tasks", "task", "0-27", _ENGAGEMENT, "engagement"),
    ObjectType("notes", "note", "0-46", _ENGAGEMENT, "engagement"),
    ObjectType("meetings", "meeting", "0-47", _ENGAGEMENT, "engagement"),
    ObjectType("calls", "call", "0-48", _ENGAGEMENT, "engagement"),
    ObjectType("emails", "email", "0-49", _ENGAGEMENT, "engagement"),
    ObjectType("postal_mail", "postal_mail", "0-116", _ENGAGEMENT, "engagement"),
    ObjectType("leads", "lead", "0-136", _crm("leads"), "leadinformation"),
)
_BY_NAME = {alias.lower(): t for t in TYPES for alias in (t.name, t.singular, t.type_id)}


def object_type(raw: str) -> ObjectType | None:
    """The standard type a client names by plural, singular or type id, in any case."""
    return _BY_NAME.get(raw.lower())


def _common(group: str) -> list[PropertyDef]:
    def system(name: str, label: str, kind: str, field: str, calculated: bool = False) -> PropertyDef:
        return PropertyDef(
            name, label, kind, field, group, read_only=True, calculated=calculated, form_field=False
        )

    return [
        system("hs_createdate", "Create date", "datetime", "date"),
        system("hs_lastmodifieddate", "Last modified date", "datetime", "date"),
        system("hs_object_id", "Record ID", "number", "number", calculated=True),
        PropertyDef(
            "hubspot_owner_id",
            "Owner",
            "enumeration",
            "select",
            group,
            external_options=True,
            referenced_object_type="OWNER",
        ),
    ]


# (name, label, type, fieldType) of each type's own standard properties, as the properties API lists them.
_OWN: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "deals": (
        ("dealname", "Deal Name", "string", "text"),
        ("amount", "Amount", "number", "number"),
        ("dealstage", "Deal Stage", "enumeration", "radio"),
        ("pipeline", "Pipeline", "enumeration", "select"),
        ("closedate", "Close Date", "datetime", "date"),
    ),
    "tickets": (
        ("subject", "Ticket name", "string", "text"),
        ("content", "Ticket description", "string", "textarea"),
        ("hs_pipeline", "Pipeline", "enumeration", "select"),
        ("hs_pipeline_stage", "Ticket status", "enumeration", "select"),
        ("hs_ticket_priority", "Priority", "enumeration", "select"),
    ),
    "products": (
        ("name", "Name", "string", "text"),
        ("price", "Unit price", "number", "number"),
        ("description", "Description", "string", "textarea"),
        ("hs_sku", "SKU", "string", "text"),
    ),
    "line_items": (
        ("name", "Name", "string", "text"),
        ("quantity", "Quantity", "number", "number"),
        ("price", "Unit price", "number", "number"),
        ("hs_product_id", "Product ID", "number", "number"),
    ),
    "quotes": (
        ("hs_title", "Quote name", "string", "text"),
        ("hs_expiration_date", "Expiration date", "datetime", "date"),
        ("hs_status", "Quote approval status", "enumeration", "select"),
    ),
    "communications": (
        ("hs_communication_channel_type", "Channel type", "enumeration", "select"),
        ("hs_communication_body", "Body", "string", "textarea"),
        ("hs_timestamp", "Activity date", "datetime", "date"),
    ),
    "tasks": (
        ("hs_task_subject", "Task title", "string", "text"),
        ("hs_task_body", "Notes", "string", "html"),
        ("hs_task_status", "Task status", "enumeration", "select"),
        ("hs_timestamp", "Due date", "datetime", "date"),
    ),
    "meetings": (
        ("hs_meeting_title", "Meeting name", "string", "text"),
        ("hs_meeting_body", "Meeting description", "string", "html"),
        ("hs_meeting_start_time", "Start time", "datetime", "date"),
        ("hs_timestamp", "Activity date", "datetime", "date"),
    ),
    "calls": (
        ("hs_call_title", "Call title", "string", "text"),
        ("hs_call_body", "Call notes", "string", "html"),
        ("hs_call_duration", "Call duration", "number", "number"),
        ("hs_timestamp", "Activity date", "datetime", "date"),
    ),
    "emails": (
        ("hs_email_subject", "Email subject", "string", "text"),
        ("hs_email_text", "Email body", "string", "textarea"),
        ("hs_timestamp", "Activity date", "datetime", "date"),
    ),
    "postal_mail": (
        ("hs_postal_mail_body", "Body", "string", "textarea"),
        ("hs_timestamp", "Activity date", "datetime", "date"),
    ),
    "leads": (
        ("hs_lead_name", "Lead name", "string", "text"),
        ("hs_lead_type", "Lead type", "enumeration", "select"),
    ),
}


def unstored_properties(created_ms: int) -> dict[str, dict[str, PropertyDef]]:
    """The properties of each standard type the emulator keeps no records of, by type name."""
    schemas: dict[str, dict[str, PropertyDef]] = {}
    for kind in TYPES:
        if kind.name not in _OWN:
            continue
        own = [PropertyDef(name, label, t, field, kind.group) for name, label, t, field in _OWN[kind.name]]
        defs = _common(kind.group) + own
        for order, definition in enumerate(defs):
            definition.display_order = order
            definition.created_ms = definition.updated_ms = created_ms
        schemas[kind.name] = {definition.name: definition for definition in defs}
    return schemas
