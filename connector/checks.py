"""`lonescale-sync check`: a mapping against the live CRM schema, every problem at once, before any write."""

from __future__ import annotations

from dataclasses import dataclass

from connector.errors import ConnectorError
from connector.mapping import FieldMapping
from connector.models import FieldInfo
from connector.wiring import Instance

# What each result can land in, by the CRM's type names (Salesforce describe, HubSpot properties).
TEXT = {"string", "textarea", "text"}
FITS: dict[str, set[str]] = {
    "email": TEXT | {"email"},
    "email_status": TEXT | {"picklist", "enumeration"},
    "phone": TEXT | {"phone"},
    "phone_type": TEXT | {"picklist", "enumeration"},
    "linkedin_url": TEXT | {"url"},
    "company_linkedin_url": TEXT | {"url"},
    "company_employee_count": TEXT | {"int", "double", "number"},
}
STATUS_FITS = {
    "status": TEXT | {"picklist", "enumeration"},
    "enriched_at": {"datetime", "date", "string"},
    "job_change": {"boolean", "bool", "enumeration"},
    "job_change_at": {"datetime", "date", "string"},
}
# Shortest field that holds typical values: shorter ones get values rejected (STRING_TOO_LONG).
MIN_LENGTH = {"email": 80, "phone": 20, "linkedin_url": 100, "job_title": 60, "company_name": 80}
# The Setup data type each status field takes, for the hint that says how to create a missing one.
SETUP_TYPES = {"enriched_at": "Date/Time", "job_change": "Checkbox", "job_change_at": "Date/Time"}


@dataclass(frozen=True)
class Problem:
    where: str
    message: str
    blocks_writing: bool = False  # a target that cannot take a value at all: a run would pay for nothing

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def _fits(info: FieldInfo, allowed: set[str]) -> bool:
    return info.type.lower() in allowed


def _absent(mapping: FieldMapping, name: str, ours: bool, role: str | None = None) -> str:
    """That a field is missing, and what fixes it in this CRM (`role`: which status field it is)."""
    if mapping.crm == "hubspot":
        if ours:  # the connector's own status properties: an API call creates them
            return (
                f"property {name!r} does not exist: run `lonescale-sync check --create-missing` to create it"
            )
        return (
            f"property {name!r} does not exist: create it in HubSpot (Settings → Properties → Contact "
            "properties) or change the mapping"
        )
    # Custom fields are made in Setup (or the Metadata API); the REST API the connector uses cannot create
    # them: https://help.salesforce.com/s/articleView?id=sf.adding_fields.htm
    kind = f", {_setup_type(mapping, role)}" if role else ""
    return (
        f"field {name!r} does not exist on {mapping.object}: create it in Salesforce Setup (Object Manager → "
        f"{mapping.object} → Fields & Relationships → New{kind}, API name {name}) and give the integration "
        "user edit access, or change the mapping"
    )


def _read_only(mapping: FieldMapping, name: str) -> str:
    where = "field-level security in Setup" if mapping.crm == "salesforce" else "the property's settings"
    return f"field {name!r} is read-only for the connector: allow edits ({where}) or change the mapping"


def mapping_problems(mapping: FieldMapping, described: dict[str, FieldInfo]) -> list[Problem]:
    problems: list[Problem] = []
    for name in mapping.to_contact:
        for source in mapping.sources(name):
            if source.field not in described:
                problems.append(
                    Problem(f"to_contact.{name}", f"field {source.field!r} does not exist or is not readable")
                )
    for index, rule in enumerate(mapping.write_back):
        where = f"write_back[{index}] ({rule.result} -> {rule.field})"
        info = described.get(rule.field)
        if info is None:
            problems.append(
                Problem(where, _absent(mapping, rule.field, ours=False), rule.policy.value != "never")
            )
            continue
        if rule.policy.value == "never":
            continue
        if not info.writable:
            problems.append(Problem(where, _read_only(mapping, rule.field), blocks_writing=True))
        allowed = FITS.get(rule.result, TEXT | {"email", "phone", "url", "picklist", "enumeration"})
        if not _fits(info, allowed):
            problems.append(
                Problem(where, f"a {rule.result} value does not fit a field of type {info.type!r}", True)
            )
        minimum = MIN_LENGTH.get(rule.result)
        if minimum and info.length is not None and info.length < minimum:
            problems.append(
                Problem(where, f"field holds {info.length} characters; {rule.result} values need {minimum}")
            )
    status = mapping.status
    for role, allowed in STATUS_FITS.items():
        field_name = getattr(status, role)
        if not field_name:
            continue
        info = described.get(field_name)
        if info is None:
            problems.append(
                Problem(f"status.{role}", _absent(mapping, field_name, ours=True, role=role), True)
            )
        elif not info.writable:
            problems.append(Problem(f"status.{role}", _read_only(mapping, field_name), True))
        elif not _fits(info, allowed):
            problems.append(
                Problem(
                    f"status.{role}",
                    f"field {field_name!r} has type {info.type!r}, expected {sorted(allowed)}",
                    True,
                )
            )
    return problems


def _setup_type(mapping: FieldMapping, role: str) -> str:
    status = mapping.status
    values = f"Picklist with the values {status.enriched_value!r} and {status.not_found_value!r}"
    return SETUP_TYPES.get(role, values)


def check_instance(instance: Instance) -> list[Problem]:
    """Authenticate, then check every mapped field; connection or auth failures are problems too."""
    try:
        instance.adapter.check()
        names = [*instance.mapping.read_fields(), *instance.mapping.write_fields()]
        described = instance.adapter.describe(list(dict.fromkeys(names)))
    except ConnectorError as exc:
        return [Problem(instance.name, str(exc))]
    return [
        Problem(f"{instance.name} {p.where}", p.message, p.blocks_writing)
        for p in mapping_problems(instance.mapping, described)
    ]


class CannotWrite(ConnectorError):
    """The CRM cannot take what a run would buy (a target or status field missing or read-only)."""


def preflight(instance: Instance) -> None:
    """Before a run spends anything: every field it would write exists and takes a value. Raises
    CannotWrite naming each field that does not and what fixes it; one describe call, whatever the run's size.

    Why stop rather than write what exists: results bought for a field that is not there cannot be kept,
    and the connector's status fields are what keeps a record from being bought again."""
    described = instance.adapter.describe(instance.mapping.write_fields())
    problems = [p for p in mapping_problems(instance.mapping, described) if p.blocks_writing]
    if problems:
        listing = "; ".join(str(p) for p in problems)
        raise CannotWrite(f"nothing sent: the CRM cannot take what this run would buy: {listing}")


STATUS_KINDS = {
    "status": "text",
    "enriched_at": "datetime",
    "job_change": "bool",
    "job_change_at": "datetime",
}


def create_missing_status_fields(instance: Instance) -> list[str]:
    """Create the connector's own status fields where the CRM lets an API do it (HubSpot properties).

    Salesforce custom fields need Setup (or the Metadata API): they are reported, not created.
    """
    status = instance.mapping.status
    wanted = {getattr(status, role): kind for role, kind in STATUS_KINDS.items() if getattr(status, role)}
    existing = instance.adapter.describe(list(wanted))
    missing = {name: kind for name, kind in wanted.items() if name not in existing}
    create = getattr(instance.adapter, "create_property", None)
    if create is None:
        return [f"{instance.name}: create in Setup: {name} ({kind})" for name, kind in missing.items()]
    done = []
    for name, kind in missing.items():
        create(name, name.replace("_", " ").capitalize(), kind)
        done.append(f"{instance.name}: created property {name} ({kind})")
    return done
