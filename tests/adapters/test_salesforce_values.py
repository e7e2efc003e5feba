"""What a described Salesforce field can take: each value judged as it would be sent, never cut."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from connector.adapters.salesforce_values import DescribedField, sendable


def field(name: str, kind: str, length: int | None = None, **flags: Any) -> DescribedField:
    return DescribedField(
        name=name,
        label=flags.pop("label", name),
        type=kind,
        length=length,
        updateable=flags.pop("updateable", True),
        nillable=flags.pop("nillable", True),
        restricted_values=flags.pop("restricted", None),
        relationship=None,
        references=None,
    )


FIELDS = {
    f.name.lower(): f
    for f in [
        field("Title", "string", 128),
        field("Opted_In__c", "boolean", nillable=False),
        field("Last_Enriched__c", "datetime"),
        field("Enriched_Text__c", "string", 40),
        field("Employees__c", "int"),
        field("LastName", "string", 80, label="Last Name", nillable=False),
        field("Tier__c", "multipicklist", 255, restricted=frozenset({"Gold", "Silver"})),
    ]
}
MOMENT = datetime(2026, 5, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Opted_In__c", True),
        ("Opted_In__c", "FALSE"),
        ("Opted_In__c", None),  # a cleared checkbox is false
        ("Last_Enriched__c", MOMENT),
        ("Last_Enriched__c", "2026-05-01T10:00:00.000+0000"),
        ("Enriched_Text__c", MOMENT),  # sent as its ISO text, which fits
        ("Employees__c", 250),
        ("Employees__c", 250.0),
        ("Employees__c", "250"),
        ("Tier__c", "Gold;Silver"),
        ("title", "x" * 128),  # field names ignore case
    ],
)
def test_values_that_fit_are_sent_as_they_are(name: str, value: Any) -> None:
    assert sendable({name: value}, FIELDS, "Contact") == ({name: value}, {})


@pytest.mark.parametrize(
    ("name", "value", "code"),
    [
        ("Opted_In__c", "yes", "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("Last_Enriched__c", "tomorrow", "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("Employees__c", 250.5, "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("Employees__c", True, "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("Title", "\U0001f600" * 65, "STRING_TOO_LONG"),  # 65 emoji: 130 UTF-16 units
        ("Title", ["a list"], "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("LastName", "", "REQUIRED_FIELD_MISSING"),
        ("Tier__c", "Gold;Bronze", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
    ],
)
def test_values_that_cannot_fit_are_kept_back_with_salesforce_s_code(
    name: str, value: Any, code: str
) -> None:
    fit, refused = sendable({name: value, "Enriched_Text__c": "kept"}, FIELDS, "Contact")
    assert fit == {"Enriched_Text__c": "kept"}
    assert refused[name].startswith(f"{code}: ") and refused[name].endswith("; not sent")
