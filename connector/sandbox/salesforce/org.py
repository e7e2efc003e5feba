"""One org's schema: the standard objects, plus the custom fields an admin has created in Setup.

A new org has none of the connector's status fields (Enrichment_Status__c and the others): an admin creates
them in Setup, Object Manager → Contact → Fields & Relationships → New
(https://help.salesforce.com/s/articleView?id=sf.adding_fields.htm). The emulator's org starts without them;
`POST /__sandbox/fields` is that Setup step, and nothing else creates fields (the data API cannot).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connector.sandbox.salesforce.fields import FieldSpec, SObjectSpec
from connector.sandbox.salesforce.schema import SOBJECTS

# Setup's rule for an API name: letters, digits and single underscores, starting with a letter, then `__c`.
_API_NAME = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|_(?!_))*(?<!_)__c")
# Setup's data types, by the describe type each becomes.
_TYPES = {
    "text": "string",
    "string": "string",
    "picklist": "picklist",
    "checkbox": "boolean",
    "boolean": "boolean",
    "datetime": "datetime",
    "date": "date",
    "url": "url",
    "email": "email",
    "phone": "phone",
    "number": "double",
    "double": "double",
    "textarea": "textarea",
}
_DEFAULT_LENGTHS = {"string": 255, "url": 255, "email": 80, "phone": 40, "textarea": 255, "picklist": 255}


class CustomField(BaseModel):
    """A field as Setup's New Custom Field wizard asks for it. Picklists restrict their values to the
    defined set unless told otherwise, as Setup's checkbox does by default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    label: str | None = None
    type: Literal[
        "text", "string", "picklist", "checkbox", "boolean", "datetime", "date", "url", "email", "phone",
        "number", "double", "textarea",
    ]  # fmt: skip
    length: int | None = Field(default=None, ge=1, le=131_072)
    values: list[str] = Field(default_factory=list)
    restricted: bool = True

    @field_validator("name")
    @classmethod
    def _api_name(cls, name: str) -> str:
        if not _API_NAME.fullmatch(name):
            raise ValueError(
                f"{name!r} is not a custom field API name: letters, digits and single underscores, starting "
                "with a letter and ending in __c"
            )
        return name

    @model_validator(mode="after")
    def _picklist_values(self) -> CustomField:
        if (self.type == "picklist") != bool(self.values):
            raise ValueError("a picklist needs its values, and only a picklist takes values")
        if self.type in ("text", "string") and (self.length or 255) > 255:
            raise ValueError("a text field holds at most 255 characters (a text area holds more)")
        return self

    def spec(self) -> FieldSpec:
        kind = _TYPES[self.type]
        label = self.label or self.name.removesuffix("__c").replace("_", " ")
        length = self.length or _DEFAULT_LENGTHS.get(kind, 0)
        return FieldSpec(
            self.name,
            label,
            kind,
            length,
            custom=True,
            nillable=kind != "boolean",  # a checkbox is never null: false until checked
            picklist=tuple(self.values),
            restricted=self.restricted and kind == "picklist",
            precision=18 if kind == "double" else 0,
            defaulted_on_create=kind == "boolean",
        )


# The connector's status fields as its mappings name them and as the README tells an admin to create them:
# what the tests, the demo and the benchmarks create through the admin route, on Contact and on Lead.
CONNECTOR_STATUS_FIELDS: tuple[dict[str, Any], ...] = (
    {
        "name": "Enrichment_Status__c",
        "label": "Enrichment Status",
        "type": "picklist",
        "values": ["Pending", "Enriched", "Not Found", "Failed", "Skipped"],
    },
    {"name": "Last_Enriched__c", "label": "Last Enriched", "type": "datetime"},
    {"name": "Job_Change_Detected__c", "label": "Job Change Detected", "type": "checkbox"},
)


class OrgSchema:
    """The org's objects by lower-case name; adding fields replaces an object's spec with a wider one."""

    def __init__(self) -> None:
        self._specs: dict[str, SObjectSpec] = dict(SOBJECTS)

    def sobject(self, name: str) -> SObjectSpec | None:
        return self._specs.get(name.lower())

    def listed(self) -> list[SObjectSpec]:
        return sorted(self._specs.values(), key=lambda spec: spec.name)

    def add_fields(self, name: str, fields: Sequence[CustomField]) -> tuple[SObjectSpec, list[FieldSpec]]:
        """The object with `fields` added (Setup refuses a name the object already has), and the new specs."""
        spec = self.sobject(name)
        if spec is None:
            raise ValueError(f"no sObject {name!r} in this org")
        added = [field.spec() for field in fields]
        names = [field.name.lower() for field in added]
        taken = sorted({n for n in names if spec.field(n) is not None or names.count(n) > 1})
        if taken:
            raise ValueError(f"{spec.name} already has a field named {', '.join(taken)}")
        wider = dataclasses.replace(spec, fields=(*spec.fields, *added))
        self._specs[spec.name.lower()] = wider
        return wider, added


def custom_fields(raw: Iterable[Any]) -> list[CustomField]:
    return [CustomField.model_validate(item) for item in raw]
