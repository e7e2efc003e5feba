"""Property definitions of contacts and companies: the standard ones and the type/fieldType rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connector.sandbox.hubspot.times import iso

# Valid type → fieldType pairs (https://developers.hubspot.com/docs/api/crm/properties): the published types and
# field types (bool, date, datetime, enumeration, number, phone_number, string; booleancheckbox … textarea).
FIELD_TYPES: dict[str, frozenset[str]] = {
    "string": frozenset({"text", "textarea", "file", "html", "phonenumber"}),
    "number": frozenset({"number", "calculation_equation"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"date"}),
    "enumeration": frozenset({"booleancheckbox", "checkbox", "radio", "select", "calculation_equation"}),
    "bool": frozenset({"booleancheckbox", "calculation_equation"}),
    "phone_number": frozenset({"phonenumber"}),
}
GROUPS: dict[str, tuple[str, ...]] = {
    "contacts": (
        "contactinformation",
        "emailinformation",
        "conversioninformation",
        "sales_properties",
        "socialmediainformation",
        "analyticsinformation",
        "contact_activity",
    ),
    "companies": ("companyinformation", "company_activity", "socialmediainformation", "analyticsinformation"),
}
LIFECYCLE_STAGES = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)
LEAD_STATUSES = (
    "NEW",
    "OPEN",
    "IN_PROGRESS",
    "OPEN_DEAL",
    "UNQUALIFIED",
    "ATTEMPTED_TO_CONTACT",
    "CONNECTED",
)


@dataclass
class PropertyDef:
    name: str
    label: str
    type: str
    field_type: str
    group_name: str
    description: str = ""
    options: list[dict[str, Any]] = field(default_factory=list)
    read_only: bool = False
    calculated: bool = False
    hubspot_defined: bool = True
    external_options: bool = False
    referenced_object_type: str | None = None
    has_unique_value: bool = False
    hidden: bool = False
    form_field: bool = True
    display_order: int = -1
    created_ms: int = 0
    updated_ms: int = 0

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "updatedAt": iso(self.updated_ms),
            "createdAt": iso(self.created_ms),
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": [dict(option) for option in self.options],
            "displayOrder": self.display_order,
            "calculated": self.calculated,
            "externalOptions": self.external_options,
            "hasUniqueValue": self.has_unique_value,
            "hidden": self.hidden,
            "modificationMetadata": {
                "archivable": not self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only,
            },
            "formField": self.form_field,
            "archived": False,
            "dataSensitivity": "non_sensitive",
        }
        if self.hubspot_defined:
            body["hubspotDefined"] = True
        if self.referenced_object_type:
            body["referencedObjectType"] = self.referenced_object_type
        return body


def _options(values: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {"label": value.replace("_", " ").title(), "value": value, "displayOrder": order, "hidden": False}
        for order, value in enumerate(values)
    ]


def _text(name: str, label: str, group: str, field_type: str = "text") -> PropertyDef:
    return PropertyDef(name, label, "string", field_type, group)


def _system(name: str, label: str, group: str, type_: str, *, calculated: bool = False) -> PropertyDef:
    field_type = "number" if type_ == "number" else "date"
    return PropertyDef(
        name, label, type_, field_type, group, read_only=True, calculated=calculated, form_field=False
    )


def standard_properties(object_type: str, created_ms: int) -> dict[str, PropertyDef]:
    info = "contactinformation" if object_type == "contacts" else "companyinformation"
    modified = "lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"
    defs = [
        _system("createdate", "Create Date", info, "datetime"),
        _system(modified, "Last Modified Date", info, "datetime", calculated=object_type == "contacts"),
        _system("hs_object_id", "Record ID", info, "number", calculated=True),
        _text("city", "City", info),
        _text("country", "Country/Region", info),
        _text("website", "Website URL", info),
        PropertyDef(
            "hubspot_owner_id",
            "Contact owner" if object_type == "contacts" else "Company owner",
            "enumeration",
            "select",
            info,
            external_options=True,
            referenced_object_type="OWNER",
        ),
    ]
    if object_type == "contacts":
        defs += [
            _text("email", "Email", info),
            _text("firstname", "First Name", info),
            _text("lastname", "Last Name", info),
            _text("jobtitle", "Job Title", info),
            _text("phone", "Phone Number", info, "phonenumber"),
            _text("mobilephone", "Mobile Phone Number", info, "phonenumber"),
            _text("company", "Company Name", info),
            _text("address", "Street Address", info),
            _text("state", "State/Region", info),
            _text("zip", "Postal Code", info),
            _text("hs_linkedin_url", "LinkedIn URL", "socialmediainformation"),
            _text("linkedinbio", "LinkedIn Bio", "socialmediainformation", "textarea"),
            PropertyDef("associatedcompanyid", "Primary Associated Company ID", "number", "number", info),
            PropertyDef("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", info),
            PropertyDef("hs_lead_status", "Lead Status", "enumeration", "radio", "sales_properties"),
        ]
        defs[-2].options = _options(LIFECYCLE_STAGES)
        defs[-1].options = _options(LEAD_STATUSES)
    else:
        defs += [
            _text("name", "Company name", info),
            _text("domain", "Company Domain Name", info),
            _text("phone", "Phone Number", info, "phonenumber"),
            _text("industry", "Industry", info),
            _text("linkedin_company_page", "LinkedIn Company Page", "socialmediainformation"),
        ]
    for order, definition in enumerate(defs):
        definition.display_order = order
        definition.created_ms = definition.updated_ms = created_ms
    return {definition.name: definition for definition in defs}
