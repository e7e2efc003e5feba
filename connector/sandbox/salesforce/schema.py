"""Describe metadata for Contact, Lead and Account: the field types, lengths and flags every check reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STRING_TYPES = frozenset({"string", "email", "phone", "url", "picklist", "textarea", "combobox"})
ID_TYPES = frozenset({"id", "reference"})
SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "datetime": "xsd:dateTime",
    "date": "xsd:date",
    "int": "xsd:int",
    "currency": "xsd:double",
    "double": "xsd:double",
}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    type: str
    length: int = 0
    updateable: bool = True
    createable: bool = True
    nillable: bool = True
    custom: bool = False
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    reference_to: str | None = None
    relationship_name: str | None = None
    digits: int = 0
    precision: int = 0
    scale: int = 0
    defaulted_on_create: bool = False
    id_lookup: bool = False
    calculated: bool = False

    @property
    def is_text(self) -> bool:
        return self.type in STRING_TYPES

    def describe(self) -> dict[str, Any]:
        filterable = self.type != "textarea" or self.length <= 255
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "soapType": SOAP_TYPES.get(self.type, "xsd:string"),
            "length": self.length,
            "byteLength": self.length * 3,
            "digits": self.digits,
            "precision": self.precision,
            "scale": self.scale,
            "updateable": self.updateable,
            "createable": self.createable,
            "nillable": self.nillable,
            "custom": self.custom,
            "calculated": self.calculated,
            "defaultedOnCreate": self.defaulted_on_create,
            "defaultValue": None,
            "externalId": False,
            "unique": False,
            "caseSensitive": False,
            "idLookup": self.id_lookup,
            "filterable": filterable,
            "sortable": filterable,
            "groupable": filterable and self.type not in ("datetime", "currency", "double"),
            "restrictedPicklist": self.restricted,
            "picklistValues": [
                {"active": True, "defaultValue": False, "label": value, "validFor": None, "value": value}
                for value in self.picklist
            ],
            "referenceTo": [self.reference_to] if self.reference_to else [],
            "relationshipName": self.relationship_name,
        }


@dataclass(frozen=True)
class SObjectSpec:
    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: tuple[FieldSpec, ...]
    required: tuple[str, ...]
    by_lower: dict[str, FieldSpec] = field(init=False, repr=False, compare=False)
    relationships: dict[str, FieldSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_lower", {spec.name.lower(): spec for spec in self.fields})
        object.__setattr__(
            self,
            "relationships",
            {spec.relationship_name.lower(): spec for spec in self.fields if spec.relationship_name},
        )

    def field(self, name: str) -> FieldSpec | None:
        return self.by_lower.get(name.lower())

    def describe(self, version: str) -> dict[str, Any]:
        return {
            **self.summary(version),
            "fields": [spec.describe() for spec in self.fields],
            "childRelationships": [],
            "recordTypeInfos": [],
        }

    def summary(self, version: str) -> dict[str, Any]:
        base = f"/services/data/{version}/sobjects/{self.name}"
        return {
            "name": self.name,
            "label": self.label,
            "labelPlural": self.label_plural,
            "keyPrefix": self.key_prefix,
            "custom": False,
            "createable": True,
            "updateable": True,
            "deletable": True,
            "queryable": True,
            "retrieveable": True,
            "searchable": True,
            "urls": {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"},
        }


def _text(name: str, label: str, length: int, kind: str = "string", **flags: Any) -> FieldSpec:
    return FieldSpec(name, label, kind, length, **flags)


def _picklist(name: str, label: str, values: tuple[str, ...], **flags: Any) -> FieldSpec:
    return FieldSpec(name, label, "picklist", 255, picklist=values, **flags)


def _readonly(name: str, label: str, kind: str, **flags: Any) -> FieldSpec:
    flags.setdefault("nillable", False)
    return FieldSpec(name, label, kind, updateable=False, createable=False, defaulted_on_create=True, **flags)


def _user(name: str, label: str, relationship: str, *, writable: bool = False) -> FieldSpec:
    return FieldSpec(
        name,
        label,
        "reference",
        18,
        updateable=writable,
        createable=writable,
        nillable=False,
        reference_to="User",
        relationship_name=relationship,
        defaulted_on_create=True,
    )


def _system_fields(prefix_fields: tuple[FieldSpec, ...]) -> tuple[FieldSpec, ...]:
    return (
        _readonly("Id", "Contact ID", "id", length=18, id_lookup=True),
        _readonly("IsDeleted", "Deleted", "boolean"),
        *prefix_fields,
        _user("OwnerId", "Owner ID", "Owner", writable=True),
        _readonly("CreatedDate", "Created Date", "datetime"),
        _user("CreatedById", "Created By ID", "CreatedBy"),
        _readonly("LastModifiedDate", "Last Modified Date", "datetime"),
        _user("LastModifiedById", "Last Modified By ID", "LastModifiedBy"),
        _readonly("SystemModstamp", "System Modstamp", "datetime"),
    )


LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
SALUTATIONS = ("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.")
ENRICHMENT_STATUSES = ("Pending", "Enriched", "Not Found", "Failed", "Skipped")
INDUSTRIES = ("Technology", "Finance", "Healthcare", "Manufacturing", "Retail", "Education", "Other")


def _enrichment_fields() -> tuple[FieldSpec, ...]:
    """Custom fields an enrichment sync writes; real orgs add them by hand, so their names are org-specific."""
    return (
        _text("LinkedIn_URL__c", "LinkedIn URL", 255, "url", custom=True),
        _picklist(
            "Enrichment_Status__c", "Enrichment Status", ENRICHMENT_STATUSES, custom=True, restricted=True
        ),
        FieldSpec("Last_Enriched__c", "Last Enriched", "datetime", custom=True),
        FieldSpec("Job_Change_Detected__c", "Job Change Detected", "boolean", custom=True, nillable=False),
        _text("Enrichment_Source__c", "Enrichment Source", 80, custom=True),
    )


def _person_fields(first_label: str = "First Name") -> tuple[FieldSpec, ...]:
    return (
        _text("LastName", "Last Name", 80, nillable=False),
        _text("FirstName", first_label, 40),
        _picklist("Salutation", "Salutation", SALUTATIONS),
        _readonly("Name", "Full Name", "string", length=121, calculated=False),
    )


def _with_id_label(fields: tuple[FieldSpec, ...], label: str) -> tuple[FieldSpec, ...]:
    first = fields[0]
    return (FieldSpec(**{**first.__dict__, "label": label}), *fields[1:])


ACCOUNT = SObjectSpec(
    "Account",
    "Account",
    "Accounts",
    "001",
    _with_id_label(
        _system_fields(
            (
                _text("Name", "Account Name", 255, nillable=False),
                _picklist("Type", "Account Type", ("Prospect", "Customer", "Partner", "Other")),
                FieldSpec(
                    "ParentId",
                    "Parent Account ID",
                    "reference",
                    18,
                    reference_to="Account",
                    relationship_name="Parent",
                ),
                _text("BillingStreet", "Billing Street", 255, "textarea"),
                _text("BillingCity", "Billing City", 40),
                _text("BillingState", "Billing State/Province", 80),
                _text("BillingPostalCode", "Billing Zip/Postal Code", 20),
                _text("BillingCountry", "Billing Country", 80),
                _text("Phone", "Account Phone", 40, "phone"),
                _text("Website", "Website", 255, "url"),
                _picklist("Industry", "Industry", INDUSTRIES),
                FieldSpec("NumberOfEmployees", "Employees", "int", digits=8),
                FieldSpec("AnnualRevenue", "Annual Revenue", "currency", precision=18),
                _text("Description", "Account Description", 32000, "textarea"),
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
    _system_fields(
        (
            FieldSpec(
                "AccountId",
                "Account ID",
                "reference",
                18,
                reference_to="Account",
                relationship_name="Account",
            ),
            *_person_fields(),
            _text("MailingStreet", "Mailing Street", 255, "textarea"),
            _text("MailingCity", "Mailing City", 40),
            _text("MailingState", "Mailing State/Province", 80),
            _text("MailingPostalCode", "Mailing Zip/Postal Code", 20),
            _text("MailingCountry", "Mailing Country", 80),
            _text("Phone", "Business Phone", 40, "phone"),
            _text("Fax", "Business Fax", 40, "phone"),
            _text("MobilePhone", "Mobile Phone", 40, "phone"),
            _text("HomePhone", "Home Phone", 40, "phone"),
            _text("OtherPhone", "Other Phone", 40, "phone"),
            _text("Email", "Email", 80, "email", id_lookup=True),
            _text("Title", "Title", 128),
            _text("Department", "Department", 80),
            _picklist("LeadSource", "Lead Source", LEAD_SOURCES),
            FieldSpec("Birthdate", "Birthdate", "date"),
            _text("Description", "Contact Description", 32000, "textarea"),
            FieldSpec("HasOptedOutOfEmail", "Email Opt Out", "boolean", nillable=False),
            FieldSpec("DoNotCall", "Do Not Call", "boolean", nillable=False),
            *_enrichment_fields(),
        )
    ),
    required=("LastName",),
)

LEAD = SObjectSpec(
    "Lead",
    "Lead",
    "Leads",
    "00Q",
    _with_id_label(
        _system_fields(
            (
                *_person_fields(),
                _text("Title", "Title", 128),
                _text("Company", "Company", 255, nillable=False),
                _text("Street", "Street", 255, "textarea"),
                _text("City", "City", 40),
                _text("State", "State/Province", 80),
                _text("PostalCode", "Zip/Postal Code", 20),
                _text("Country", "Country", 80),
                _text("Phone", "Phone", 40, "phone"),
                _text("MobilePhone", "Mobile Phone", 40, "phone"),
                _text("Fax", "Fax", 40, "phone"),
                _text("Email", "Email", 80, "email", id_lookup=True),
                _text("Website", "Website", 255, "url"),
                _text("Description", "Description", 32000, "textarea"),
                _picklist("LeadSource", "Lead Source", LEAD_SOURCES),
                _picklist(
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
                _picklist("Industry", "Industry", INDUSTRIES),
                FieldSpec("NumberOfEmployees", "Employees", "int", digits=8),
                FieldSpec("HasOptedOutOfEmail", "Email Opt Out", "boolean", nillable=False),
                FieldSpec("DoNotCall", "Do Not Call", "boolean", nillable=False),
                _readonly("IsConverted", "Converted", "boolean"),
                _readonly("ConvertedDate", "Converted Date", "date", nillable=True),
                _readonly(
                    "ConvertedAccountId",
                    "Converted Account ID",
                    "reference",
                    length=18,
                    nillable=True,
                    reference_to="Account",
                    relationship_name="ConvertedAccount",
                ),
                _readonly(
                    "ConvertedContactId",
                    "Converted Contact ID",
                    "reference",
                    length=18,
                    nillable=True,
                    reference_to="Contact",
                    relationship_name="ConvertedContact",
                ),
                *_enrichment_fields(),
            )
        ),
        "Lead ID",
    ),
    required=("LastName", "Company"),
)

SOBJECTS: dict[str, SObjectSpec] = {spec.name.lower(): spec for spec in (CONTACT, LEAD, ACCOUNT)}
BY_PREFIX: dict[str, SObjectSpec] = {spec.key_prefix: spec for spec in SOBJECTS.values()}


def sobject(name: str) -> SObjectSpec | None:
    return SOBJECTS.get(name.lower())
