"""Describe metadata building blocks: field and sObject specs, and the field shapes every object repeats."""

from __future__ import annotations

from collections.abc import Mapping
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
    "address": "urn:address",
}
# A compound address and its components: Mailing + Street/City/… (Contact), plain Street/City/… (Lead). The
# compound is read-only and answers an object keyed by these names, null when every part is empty
# (https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/compound_fields_address.htm).
ADDRESS_PARTS = (
    ("city", "City"),
    ("country", "Country"),
    ("geocodeAccuracy", "GeocodeAccuracy"),
    ("latitude", "Latitude"),
    ("longitude", "Longitude"),
    ("postalCode", "PostalCode"),
    ("state", "State"),
    ("street", "Street"),
)


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
    more_references: tuple[str, ...] = ()  # further targets of a polymorphic lookup (Task.WhoId: Lead)
    polymorphic: bool = False
    default_value: str | None = None  # the picklist value a create gets when none is sent
    digits: int = 0
    precision: int = 0
    scale: int = 0
    defaulted_on_create: bool = False
    id_lookup: bool = False
    calculated: bool = False
    compound: str | None = None  # the compound field this one is a part of (MailingCity: MailingAddress)

    @property
    def is_text(self) -> bool:
        return self.type in STRING_TYPES

    @property
    def filterable(self) -> bool:
        # Long text areas and compound fields cannot be filtered or sorted on (the SOQL guide).
        return self.type != "address" and (self.type != "textarea" or self.length <= 255)

    def value(self, record: Mapping[str, Any]) -> Any:
        """The field's value in a record: stored, or put together from its parts for a compound address."""
        if self.type != "address":
            return record.get(self.name)
        prefix = self.name.removesuffix("Address")
        parts = {key: record.get(prefix + suffix) for key, suffix in ADDRESS_PARTS}
        return parts if any(value is not None for value in parts.values()) else None

    @property
    def references(self) -> tuple[str, ...]:
        return (self.reference_to, *self.more_references) if self.reference_to else ()

    def describe(self) -> dict[str, Any]:
        filterable = self.filterable
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
                {
                    "active": True,
                    "defaultValue": value == self.default_value,
                    "label": value,
                    "validFor": None,
                    "value": value,
                }
                for value in self.picklist
            ],
            "referenceTo": list(self.references),
            "relationshipName": self.relationship_name,
            "polymorphicForeignKey": self.polymorphic,
            "compoundFieldName": self.compound,
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


def text(name: str, label: str, length: int, kind: str = "string", **flags: Any) -> FieldSpec:
    return FieldSpec(name, label, kind, length, **flags)


def picklist(name: str, label: str, values: tuple[str, ...], **flags: Any) -> FieldSpec:
    return FieldSpec(name, label, "picklist", 255, picklist=values, **flags)


def readonly(name: str, label: str, kind: str, **flags: Any) -> FieldSpec:
    flags.setdefault("nillable", False)
    return FieldSpec(name, label, kind, updateable=False, createable=False, defaulted_on_create=True, **flags)


def lookup(name: str, label: str, target: str, relationship: str | None = None, **flags: Any) -> FieldSpec:
    """A lookup (reference) field: an 18-character Id of a `target` record, reached in SOQL as `relationship`."""
    return FieldSpec(
        name, label, "reference", 18, reference_to=target, relationship_name=relationship, **flags
    )


def user_ref(name: str, label: str, relationship: str, *, writable: bool = False) -> FieldSpec:
    return lookup(
        name,
        label,
        "User",
        relationship,
        updateable=writable,
        createable=writable,
        nillable=False,
        defaulted_on_create=True,
    )


def system_fields(prefix_fields: tuple[FieldSpec, ...]) -> tuple[FieldSpec, ...]:
    return (
        readonly("Id", "Contact ID", "id", length=18, id_lookup=True),
        readonly("IsDeleted", "Deleted", "boolean"),
        *prefix_fields,
        user_ref("OwnerId", "Owner ID", "Owner", writable=True),
        readonly("CreatedDate", "Created Date", "datetime"),
        user_ref("CreatedById", "Created By ID", "CreatedBy"),
        readonly("LastModifiedDate", "Last Modified Date", "datetime"),
        user_ref("LastModifiedById", "Last Modified By ID", "LastModifiedBy"),
        readonly("SystemModstamp", "System Modstamp", "datetime"),
    )


def with_id_label(fields: tuple[FieldSpec, ...], label: str) -> tuple[FieldSpec, ...]:
    first = fields[0]
    return (FieldSpec(**{**first.__dict__, "label": label}), *fields[1:])


def address(prefix: str, label: str, *, street_label: str = "Street") -> tuple[FieldSpec, ...]:
    """A compound address and its parts as describe lists them: `{prefix}Street` … `{prefix}Address`."""
    compound = f"{prefix}Address"
    space = f"{label} " if label else ""
    return (
        text(f"{prefix}Street", f"{space}{street_label}", 255, "textarea", compound=compound),
        text(f"{prefix}City", f"{space}City", 40, compound=compound),
        text(f"{prefix}State", f"{space}State/Province", 80, compound=compound),
        text(f"{prefix}PostalCode", f"{space}Zip/Postal Code", 20, compound=compound),
        text(f"{prefix}Country", f"{space}Country", 80, compound=compound),
        FieldSpec(
            f"{prefix}Latitude", f"{space}Latitude", "double", precision=18, scale=15, compound=compound
        ),
        FieldSpec(
            f"{prefix}Longitude", f"{space}Longitude", "double", precision=18, scale=15, compound=compound
        ),
        picklist(
            f"{prefix}GeocodeAccuracy", f"{space}Geocode Accuracy", GEOCODE_ACCURACIES, compound=compound
        ),
        FieldSpec(
            compound, f"{space}Address".strip() or "Address", "address", updateable=False, createable=False
        ),
    )


GEOCODE_ACCURACIES = (
    "Address", "NearAddress", "Block", "Street", "ExtendedZip", "Zip", "Neighborhood", "City", "County", "State",
    "Unknown",
)  # fmt: skip
