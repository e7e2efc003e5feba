"""The other standard objects a new org lists in its global describe, with minimal describes, and User.

Extractors and scripts start from `GET /sobjects` and describe what they find; a real org lists far more than
the objects a sync touches (https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_list.htm).
These have their Id, name field, owner and system fields only, and no records; User holds the org's users, so
`SELECT Id, Name FROM User` and `Owner.Name` answer as they would.
"""

from __future__ import annotations

from connector.sandbox.salesforce.fields import (
    FieldSpec,
    SObjectSpec,
    lookup,
    picklist,
    readonly,
    system_fields,
    text,
    with_id_label,
)


def _minimal(
    name: str,
    prefix: str,
    name_field: FieldSpec,
    *more: FieldSpec,
    plural: str | None = None,
    owned: bool = True,
    label: str | None = None,
) -> SObjectSpec:
    label = label or name
    fields = system_fields((name_field, *more))
    if not owned:
        fields = tuple(field for field in fields if field.name != "OwnerId")
    required = (name_field.name,) if name_field.createable and not name_field.nillable else ()
    return SObjectSpec(
        name, label, plural or f"{label}s", prefix, with_id_label(fields, f"{label} ID"), required=required
    )


def _name(label: str = "Name", length: int = 255, field: str = "Name") -> FieldSpec:
    return text(field, label, length, nillable=False)


def _number(field: str, label: str) -> FieldSpec:
    return readonly(field, label, "string", length=30)  # an auto-number: set by Salesforce on create


USER = SObjectSpec(
    "User",
    "User",
    "Users",
    "005",
    with_id_label(
        tuple(
            field
            for field in system_fields(
                (
                    text("Username", "Username", 80, nillable=False),
                    text("LastName", "Last Name", 80, nillable=False),
                    text("FirstName", "First Name", 40),
                    readonly("Name", "Full Name", "string", length=121),
                    text("Email", "Email", 128, "email", nillable=False),
                    text("Alias", "Alias", 8, nillable=False),
                    FieldSpec("IsActive", "Active", "boolean", nillable=False),
                    picklist(
                        "UserType", "User Type", ("Standard", "PowerPartner", "CsnOnly"), updateable=False
                    ),
                )
            )
            if field.name not in ("OwnerId", "IsDeleted")  # users are deactivated, never deleted or owned
        ),
        "User ID",
    ),
    required=("Username", "LastName", "Email", "Alias"),
)

MINIMAL_OBJECTS: tuple[SObjectSpec, ...] = (
    _minimal(
        "Opportunity",
        "006",
        _name(label="Opportunity Name", length=120),
        lookup("AccountId", "Account ID", "Account", "Account"),
        picklist(
            "StageName",
            "Stage",
            ("Prospecting", "Qualification", "Closed Won", "Closed Lost"),
            nillable=False,
        ),
        FieldSpec("CloseDate", "Close Date", "date", nillable=False),
        FieldSpec("Amount", "Amount", "currency", precision=18, scale=2),
        plural="Opportunities",
    ),
    _minimal(
        "Case",
        "500",
        _number("CaseNumber", "Case Number"),
        text("Subject", "Subject", 255),
        lookup("ContactId", "Contact ID", "Contact", "Contact"),
        lookup("AccountId", "Account ID", "Account", "Account"),
        picklist("Status", "Status", ("New", "Working", "Escalated", "Closed")),
    ),
    _minimal("Campaign", "701", _name(label="Campaign Name", length=80)),
    _minimal(
        "CampaignMember",
        "00v",
        lookup("CampaignId", "Campaign ID", "Campaign", nillable=False),
        lookup("ContactId", "Contact ID", "Contact", "Contact"),
        lookup("LeadId", "Lead ID", "Lead", "Lead"),
        picklist("Status", "Status", ("Sent", "Responded")),
        owned=False,
        label="Campaign Member",
    ),
    _minimal("Event", "00U", text("Subject", "Subject", 255, "combobox")),
    _minimal("Note", "002", _name(label="Title", length=80, field="Title")),
    _minimal("Attachment", "00P", _name(label="File Name")),
    _minimal("ContentDocument", "069", _name(label="Title", field="Title"), label="Content Document"),
    _minimal("Product2", "01t", _name(label="Product Name"), label="Product"),
    _minimal("Pricebook2", "01s", _name(label="Price Book Name"), label="Price Book", owned=False),
    _minimal("Order", "801", _number("OrderNumber", "Order Number")),
    _minimal("Contract", "800", _number("ContractNumber", "Contract Number")),
    _minimal("Asset", "02i", _name(label="Asset Name")),
    _minimal("Group", "00G", _name(label="Name", length=40)),
    _minimal("Profile", "00e", _name(), owned=False),
    _minimal("UserRole", "00E", _name(length=80), owned=False, label="Role"),
    _minimal("RecordType", "012", _name(length=80), owned=False, label="Record Type"),
    _minimal("Report", "00O", _name(length=40)),
    _minimal("Dashboard", "01Z", _name(label="Title", length=80, field="Title")),
)
