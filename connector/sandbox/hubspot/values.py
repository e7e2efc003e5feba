"""HubSpot's per-value validation of writes: the problems it lists in "Property values were not valid"."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from connector.sandbox.hubspot.schema import PropertyDef
from connector.sandbox.hubspot.times import iso, iso_date, parse_ms

# A domain must end in a real TLD (docs/hubspot.md#error-bodies): every two-letter ccTLD shape, plus the
# common generics.
GENERIC_TLDS = frozenset(
    [
        "com",
        "net",
        "org",
        "edu",
        "gov",
        "mil",
        "int",
        "info",
        "biz",
        "name",
        "pro",
        "io",
        "ai",
        "app",
        "dev",
        "tech",
        "cloud",
        "online",
        "site",
        "shop",
        "store",
        "xyz",
        "co",
        "agency",
        "digital",
        "email",
        "group",
        "global",
        "solutions",
        "services",
        "consulting",
        "company",
        "finance",
        "media",
        "studio",
        "world",
        "network",
        "systems",
        "software",
        "capital",
        "partners",
        "ventures",
        "health",
        "legal",
        "marketing",
        "design",
        "life",
        "live",
        "news",
    ]
)
EMAIL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@"
                   r"([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+([A-Za-z]{2,})$")  # fmt: skip
MAX_VALUE_LENGTH = 65_536


def valid_email(value: str) -> bool:
    match = EMAIL.match(value)
    if not match:
        return False
    tld = match.group(4).lower()
    return len(tld) == 2 or tld in GENERIC_TLDS


def _options_text(definition: PropertyDef) -> str:
    # HubSpot prints the allowed options as Java protobuf text (observed in INVALID_OPTION messages).
    items = [
        f'label: "{option["label"]}"\nvalue: "{option["value"]}"\ndisplay_order: {option.get("displayOrder", 0)}'
        f"\nhidden: {str(option.get('hidden', False)).lower()}\nread_only: false\n"
        for option in definition.options
    ]
    return "[" + ", ".join(items) + "]"


def _check(definition: PropertyDef, text: str) -> tuple[str | None, str | None, str]:
    """(normalised value, error code, message) for one non-empty value of a writable property."""
    kind = definition.type
    if len(text) > MAX_VALUE_LENGTH:
        return None, "INVALID_LENGTH", f"{definition.name} exceeds the maximum length of {MAX_VALUE_LENGTH}"
    if definition.name == "email" and not valid_email(text):
        return None, "INVALID_EMAIL", f"Email address {text} is invalid"
    if kind == "number":
        try:
            float(text)
        except ValueError:
            return None, "INVALID_INTEGER", f"{text} was not a valid number."
        return text, None, ""
    if kind in ("datetime", "date"):
        ms = parse_ms(text)
        if ms is None:
            return None, "INVALID_LONG", f"{text} was not a valid long."
        if kind == "datetime":
            return iso(ms), None, ""
        if ms % 86_400_000:
            clock = ms % 86_400_000
            at = (
                f"{clock // 3_600_000}:{clock // 60_000 % 60:02d}:{clock // 1000 % 60:02d}.{clock % 1000:03d}"
            )
            return None, "INVALID_DATE", f"{text} is at {at} UTC, not midnight!"
        return iso_date(ms), None, ""
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            return None, "INVALID_BOOLEAN", f"{text} was not a valid boolean."
        return text.lower(), None, ""
    if kind == "enumeration":
        if definition.external_options:  # owners: any numeric id; the owner list is not emulated
            if not text.isdigit():
                return None, "INVALID_OPTION", f"{text} was not one of the allowed options: []"
            return text, None, ""
        allowed = {str(option["value"]) for option in definition.options}
        chosen = text.split(";") if definition.field_type == "checkbox" else [text]
        if not all(choice in allowed for choice in chosen):
            return (
                None,
                "INVALID_OPTION",
                f"{text} was not one of the allowed options: {_options_text(definition)}",
            )
    return text, None, ""


def as_text(value: object) -> str | None:
    """Values arrive as strings from the SDK, but raw JSON numbers and booleans are accepted and stringified."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise TypeError(f"unsupported property value {value!r}")


def validate_changes(
    schema: Mapping[str, PropertyDef], raw: Mapping[str, object], portal_id: int
) -> tuple[dict[str, str | None], list[dict[str, Any]]]:
    """Normalised changes (None clears a value) and the problems HubSpot would list, in request order."""
    changes: dict[str, str | None] = {}
    problems: list[dict[str, Any]] = []
    for name, value in raw.items():
        try:
            text = as_text(value)
        except TypeError:
            message = f"{value!r} is not a valid property value"
            problems.append(_problem(name, repr(value), "INVALID_VALUE", message, portal_id))
            continue
        definition = schema.get(name)
        if definition is None:
            message = f'Property "{name}" does not exist'
            problems.append(_problem(name, text, "PROPERTY_DOESNT_EXIST", message, portal_id))
            continue
        if definition.read_only:
            kind = "calculated" if definition.calculated else "read only"
            message = f'"{name}" is a {kind} property; its value cannot be set.'
            problems.append(_problem(name, text, "READ_ONLY_VALUE", message, portal_id))
            continue
        if text is None or text == "":  # clears the value (docs/hubspot.md#objects-and-properties)
            changes[name] = None
            continue
        normalised, code, message = _check(definition, text)
        if code is not None:
            problems.append(_problem(name, text, code, message, portal_id))
        else:
            changes[name] = normalised
    return changes, problems


def _problem(name: str, value: str | None, code: str, message: str, portal_id: int) -> dict[str, Any]:
    return {
        "isValid": False,
        "message": message,
        "error": code,
        "name": name,
        "localizedErrorMessage": message,
        "propertyValue": value,
        "portalId": portal_id,
    }
