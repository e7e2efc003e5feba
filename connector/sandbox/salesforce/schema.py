"""Describe metadata for Contact, Lead, Account and Task: the field types, lengths and flags every check reads."""

from __future__ import annotations

from connector.sandbox.salesforce.activities import TASK
from connector.sandbox.salesforce.fields import (
    ID_TYPES,
    SOAP_TYPES,
    STRING_TYPES,
    FieldSpec,
    SObjectSpec,
    address,
    lookup,
    picklist,
    readonly,
    system_fields,
    text,
    with_id_label,
)
from connector.sandbox.salesforce.standard import MINIMAL_OBJECTS, USER

__all__ = ["ID_TYPES", "SOAP_TYPES", "STRING_TYPES", "TASK", "FieldSpec", "SObjectSpec", "sobject"]

LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
SALUTATIONS = ("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.")
INDUSTRIES = ("Technology", "Finance", "Healthcare", "Manufacturing", "Retail", "Education", "Other")


def _org_fields() -> tuple[FieldSpec, ...]:
    """Custom fields the seeded org already has (its own, not the connector's): people's LinkedIn URLs. The
    connector's status fields are not here: an admin creates them in Setup (org.py, POST /__sandbox/fields)."""
    return (text("LinkedIn_URL__c", "LinkedIn URL", 255, "url", custom=True),)


def _person_fields(first_label: str = "First Name") -> tuple[FieldSpec, ...]:
    return (
        text("LastName", "Last Name", 80, nillable=False),
        text("FirstName", first_label, 40),
        picklist("Salutation", "Salutation", SALUTATIONS),
        readonly("Name", "Full Name", "string", length=121, calculated=False),
    )


ACCOUNT = SObjectSpec(
    "Account",
    "Account",
    "Accounts",
    "001",
    with_id_label(
        system_fields(
            (
                text("Name", "Account Name", 255, nillable=False),
                picklist("Type", "Account Type", ("Prospect", "Customer", "Partner", "Other")),
                lookup("ParentId", "Parent Account ID", "Account", "Parent"),
                *address("Billing", "Billing"),
                text("Phone", "Account Phone", 40, "phone"),
                text("Website", "Website", 255, "url"),
                picklist("Industry", "Industry", INDUSTRIES),
                FieldSpec("NumberOfEmployees", "Employees", "int", digits=8),
                FieldSpec("AnnualRevenue", "Annual Revenue", "currency", precision=18),
                text("Description", "Account Description", 32000, "textarea"),
            )
        ),
        "Account ID",
    ),
    required=("Name",),
)

CONTACT = SObjectSpec(
    "Contact",
    "Contact",
    "Contacts",
    "003",
    system_fields(
        (
            lookup("AccountId", "Account ID", "Account", "Account"),
            *_person_fields(),
            *address("Mailing", "Mailing"),
            text("Phone", "Business Phone", 40, "phone"),
            text("Fax", "Business Fax", 40, "phone"),
            text("MobilePhone", "Mobile Phone", 40, "phone"),
            text("HomePhone", "Home Phone", 40, "phone"),
            text("OtherPhone", "Other Phone", 40, "phone"),
            text("Email", "Email", 80, "email", id_lookup=True),
            text("Title", "Title", 128),
            text("Department", "Department", 80),
            picklist("LeadSource", "Lead Source", LEAD_SOURCES),
            FieldSpec("Birthdate", "Birthdate", "date"),
            text("Description", "Contact Description", 32000, "textarea"),
            FieldSpec("HasOptedOutOfEmail", "Email Opt Out", "boolean", nillable=False),
            FieldSpec("DoNotCall", "Do Not Call", "boolean", nillable=False),
            *_org_fields(),
        )
    ),
    required=("LastName",),
)

LEAD = SObjectSpec(
    "Lead",
    "Lead",
    "Leads",
    "00Q",
    with_id_label(
        system_fields(
            (
                *_person_fields(),
                text("Title", "Title", 128),
                text("Company", "Company", 255, nillable=False),
                *address("", ""),
                text("Phone", "Phone", 40, "phone"),
                text("MobilePhone", "Mobile Phone", 40, "phone"),
                text("Fax", "Fax", 40, "phone"),
                text("Email", "Email", 80, "email", id_lookup=True),
                text("Website", "Website", 255, "url"),
                text("Description", "Description", 32000, "textarea"),
                picklist("LeadSource", "Lead Source", LEAD_SOURCES),
                picklist(
                    "Status",
                    "Status",
                    (
                        "Open - Not Contacted",
                        "Working - Contacted",
                        "Closed - Converted",
                        "Closed - Not Converted",
                    ),
                    nillable=False,
                    defaulted_on_create=True,
                ),
                picklist("Industry", "Industry", INDUSTRIES),
                FieldSpec("NumberOfEmployees", "Employees", "int", digits=8),
                FieldSpec("HasOptedOutOfEmail", "Email Opt Out", "boolean", nillable=False),
                FieldSpec("DoNotCall", "Do Not Call", "boolean", nillable=False),
                readonly("IsConverted", "Converted", "boolean"),
                readonly("ConvertedDate", "Converted Date", "date", nillable=True),
                readonly(
                    "ConvertedAccountId",
                    "Converted Account ID",
                    "reference",
                    length=18,
                    nillable=True,
                    reference_to="Account",
                    relationship_name="ConvertedAccount",
                ),
                readonly(
                    "ConvertedContactId",
                    "Converted Contact ID",
                    "reference",
                    length=18,
                    nillable=True,
                    reference_to="Contact",
                    relationship_name="ConvertedContact",
                ),
                *_org_fields(),
            )
        ),
        "Lead ID",
    ),
    required=("LastName", "Company"),
)

# Every object the org has: the four the emulator fills, and the other standard objects a real org lists in
# its global describe, with minimal describes and no records but its users (standard.py).
SOBJECTS: dict[str, SObjectSpec] = {
    spec.name.lower(): spec for spec in (CONTACT, LEAD, ACCOUNT, TASK, USER, *MINIMAL_OBJECTS)
}
BY_PREFIX: dict[str, SObjectSpec] = {spec.key_prefix: spec for spec in SOBJECTS.values()}


def sobject(name: str) -> SObjectSpec | None:
    """A standard object as a new org has it; an org's own schema (org.py) adds the fields made in Setup."""
    return SOBJECTS.get(name.lower())
