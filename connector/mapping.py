"""Declarative mappings (`mappings/*.toml`): CRM record → LoneScale Contact, and result → CRM fields by policy.

No expressions: a Contact field names a CRM field (or a list to try in order), optionally through a named
transform from `connector.transforms`. Each write-back rule names a result field, a CRM field and a policy.
"""

from __future__ import annotations

import enum
import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from connector.errors import ConfigError
from connector.models import (
    Contact,
    ContactCustom,
    CrmRecord,
    EnrichmentResult,
    EnrichmentType,
    is_absolute_http_url,
    is_valid_email,
)
from connector.problems import pydantic_problems, validate_toml
from connector.transforms import TRANSFORMS
from connector.values import NO_PLACEHOLDERS, blank, same_value

ContactField = Literal[
    "firstname", "lastname", "email", "job_title", "linkedin_url", "domain", "company_name"
]
# Result fields as `connector.lonescale.parse_payload` names them, whichever casing LoneScale used.
ResultField = Literal[
    "email", "email_status", "phone", "phone_type", "phone_country_code", "linkedin_url", "first_name",
    "last_name", "full_name", "job_title", "company_name", "company_domain", "company_linkedin_url",
    "company_industry", "company_employee_count", "company_employee_range", "company_country", "company_city",
    "job_change_detected",
]  # fmt: skip


@functools.cache  # a handful of field names, asked for each value of each result applied
def result_type(result: str) -> EnrichmentType:
    """Which enrichment type pays for a result field (docs/lonescale.md#what-each-type-returns)."""
    if result.startswith("email"):
        return EnrichmentType.EMAIL
    if result.startswith("phone"):
        return EnrichmentType.PHONE
    return EnrichmentType.PROFILE


class WritePolicy(enum.StrEnum):
    FILL_EMPTY = "fill_empty"  # write only where the CRM field is empty at write time
    OVERWRITE = "overwrite"
    OVERWRITE_IF_UNCHANGED = (
        "overwrite_if_unchanged"  # replace an empty field or our own last value, nothing else
    )
    NEVER = "never"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _known_transform(value: str | None) -> str | None:
    if value is not None and value not in TRANSFORMS:
        raise ValueError(f"unknown transform {value!r}; known: {', '.join(sorted(TRANSFORMS))}")
    return value


class Source(_Strict):
    field: str = Field(min_length=1)
    transform: str | None = None

    _transform = field_validator("transform")(_known_transform)

    def read(self, record: CrmRecord) -> Any:
        value = record.get(self.field)
        return TRANSFORMS[self.transform](value) if self.transform else value


class WriteRule(_Strict):
    result: ResultField
    field: str = Field(min_length=1)
    policy: WritePolicy = WritePolicy.FILL_EMPTY
    transform: str | None = None
    only_if: dict[ResultField, list[str]] = Field(default_factory=dict)

    _transform = field_validator("transform")(_known_transform)


class StatusFields(_Strict):
    """Fields the connector owns on each record; always written, so people can filter on them in the CRM."""

    status: str | None = None
    enriched_at: str | None = None
    job_change: str | None = None
    job_change_at: str | None = None
    enriched_value: str = "enriched"  # what `status` says when LoneScale found something (a picklist label)
    not_found_value: str = "not_found"


class _Blanks(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


class JobChangeFollowUp(_Strict):
    """On a detected job change, a task for the record's owner: a Salesforce Task or a HubSpot note."""

    follow_up: bool = False
    owner_field: str | None = None  # OwnerId (Salesforce), hubspot_owner_id (HubSpot)
    subject: str = "{firstname} {lastname} changed jobs: now {job_title} at {company_name}"
    body: str = (
        "LoneScale detected a job change for {firstname} {lastname}: now {job_title} at {company_name} "
        "({company_domain}). Previously at {previous_company}."
    )
    due_in_days: int = Field(default=7, ge=0, le=365)

    def render(self, template: str, sent: Mapping[str, Any], values: Mapping[str, Any]) -> str:
        """`{name}` placeholders from what we sent and what LoneScale found; unknown ones read "?"."""
        known = _Blanks(
            {**sent, **values, "previous_company": sent.get("company_name") or sent.get("domain")}
        )
        return template.format_map(known)[:255]


# What each CRM's adapter can pull: the object, and the timestamp its windows run on. SystemModstamp changes
# on system updates too (automation, recalculations) and is indexed, so it misses nothing LastModifiedDate would
# (https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/system_fields.htm).
PULLABLE = {
    "salesforce": ({"Contact", "Lead"}, {"SystemModstamp", "LastModifiedDate"}),
    "hubspot": ({"contacts"}, {"lastmodifieddate", "hs_lastmodifieddate"}),
}


class FieldMapping(_Strict):
    schema_version: Literal[1]
    crm: Literal["salesforce", "hubspot"]
    object: str  # what the adapter pulls and writes
    changed_field: str  # the timestamp its windows and cursor run on
    # Placeholders people type where a field is required (Salesforce LastName): read as empty, never sent.
    blank_values: list[str] = Field(default_factory=list)
    to_contact: dict[ContactField, Source | list[Source]]
    write_back: list[WriteRule] = Field(default_factory=list)
    status: StatusFields = Field(default_factory=StatusFields)
    job_change: JobChangeFollowUp = Field(default_factory=JobChangeFollowUp)

    @field_validator("to_contact", mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        """`email = "Email"` is short for `email = { field = "Email" }`."""
        if not isinstance(value, dict):
            return value

        def expand(item: Any) -> Any:
            return {"field": item} if isinstance(item, str) else item

        return {k: [expand(i) for i in v] if isinstance(v, list) else expand(v) for k, v in value.items()}

    @field_validator("to_contact")
    @classmethod
    def _names_required(cls, value: dict[str, Any]) -> dict[str, Any]:
        missing = [name for name in ("firstname", "lastname") if name not in value]
        if missing:
            raise ValueError(f"LoneScale requires {' and '.join(missing)}: map them")
        return value

    @model_validator(mode="after")
    def _pullable(self) -> FieldMapping:
        objects, stamps = PULLABLE[self.crm]
        if self.object not in objects:
            raise ValueError(
                f"object {self.object!r} is not one the {self.crm} adapter pulls: {sorted(objects)}"
            )
        if self.changed_field not in stamps:
            raise ValueError(
                f"changed_field {self.changed_field!r} is not a {self.crm} timestamp the adapter pulls by: "
                f"{sorted(stamps)}"
            )
        return self

    def sources(self, name: ContactField) -> list[Source]:
        source = self.to_contact.get(name)
        return [] if source is None else source if isinstance(source, list) else [source]

    def read_fields(self) -> list[str]:
        """Every CRM field a pull must fetch: inputs, write-back targets (their values at pull time), status."""
        names = [s.field for name in self.to_contact for s in self.sources(name)]
        names += [rule.field for rule in self.write_back]
        names += [f for f in (self.status.status, self.status.enriched_at, self.status.job_change) if f]
        names += (
            [self.job_change.owner_field] if self.job_change.follow_up and self.job_change.owner_field else []
        )
        return list(dict.fromkeys(names))

    def write_fields(self) -> list[str]:
        names = [rule.field for rule in self.write_back if rule.policy is not WritePolicy.NEVER]
        status = self.status
        names += [
            f for f in (status.status, status.enriched_at, status.job_change, status.job_change_at) if f
        ]
        return list(dict.fromkeys(names))

    def targets(self, kind: EnrichmentType) -> list[str]:
        """The CRM fields a type's results are written to (rules with policy `never` excluded)."""
        return list(_targets_of(self.write_back)[kind])

    @property
    def placeholders(self) -> frozenset[str]:
        """`blank_values`, casefolded: what `connector.values.blank` reads as empty for this mapping."""
        return _blanks_of(self.blank_values)

    def is_blank(self, value: Any) -> bool:
        """The one test of "empty" for this mapping's records: selection, write planning and reviews use it."""
        return blank(value, _blanks_of(self.blank_values))


# Asked for every record pulled, so worked out once per list: keyed on the list object itself, since a
# `model_copy(update=...)` shares the lists it does not replace and brings new ones for those it does.
# (Pydantic private attributes would do, but reading one costs more than the work saved.) A handful of
# lists per process, each kept alive here so its id is never reused.
_TARGETS: dict[int, tuple[list[WriteRule], dict[EnrichmentType, list[str]]]] = {}
_BLANKS: dict[int, tuple[list[str], frozenset[str]]] = {}


def _targets_of(rules: list[WriteRule]) -> dict[EnrichmentType, list[str]]:
    known = _TARGETS.get(id(rules))
    if known is None or known[0] is not rules:
        by_kind = {
            kind: [
                r.field for r in rules if r.policy is not WritePolicy.NEVER and result_type(r.result) is kind
            ]
            for kind in EnrichmentType
        }
        known = _TARGETS[id(rules)] = (rules, by_kind)
    return known[1]


def _blanks_of(values: list[str]) -> frozenset[str]:
    known = _BLANKS.get(id(values))
    if known is None or known[0] is not values:
        known = _BLANKS[id(values)] = (values, frozenset(b.casefold() for b in values))
    return known[1]


def load_mapping(path: Path) -> FieldMapping:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        return validate_toml(FieldMapping, raw)
    except FileNotFoundError:
        raise ConfigError([f"file {path} does not exist"], source=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], source=str(path)) from None
    except ValidationError as exc:
        raise ConfigError(pydantic_problems(exc), source=str(path)) from None


# --------------------------------------------------------------------------- CRM record → Contact


@dataclass(frozen=True)
class Skip:
    """A record that cannot be sent, and why (counted per run, never silently dropped)."""

    reason: str


@dataclass(frozen=True)
class Mapped:
    contact: Contact
    dropped: tuple[str, ...] = ()  # fields left out because LoneScale's schema would reject their value


def to_contact(mapping: FieldMapping, record: CrmRecord) -> Mapped | Skip:
    values: dict[str, str] = {}
    for name in mapping.to_contact:
        for source in mapping.sources(name):
            if mapping.is_blank(record.get(source.field)):
                continue
            value = source.read(record)
            if not blank(value):
                values[name] = str(value).strip()
                break
    for name in ("firstname", "lastname"):
        if name not in values:
            return Skip(f"no {name}")
    dropped = []
    if "email" in values and not is_valid_email(values["email"]):
        dropped.append("email")
        del values["email"]
    if "linkedin_url" in values and not is_absolute_http_url(values["linkedin_url"]):
        dropped.append("linkedin_url")
        del values["linkedin_url"]
    if not any(k in values for k in ("email", "linkedin_url", "domain", "company_name")):
        return Skip("nothing to match on")
    contact = Contact(**values, custom=ContactCustom(contact_id=record.ref.id))
    return Mapped(contact, tuple(dropped))


# --------------------------------------------------------------------------- result → CRM writes


@dataclass(frozen=True)
class Decision:
    """One field's verdict for one record: written or not, and why. Dry runs print these as they are."""

    field: str
    current: Any
    proposed: Any
    write: bool
    reason: str


def decide(
    rule: WriteRule,
    result: EnrichmentResult,
    current: Any,
    ours: Any,
    placeholders: frozenset[str] = NO_PLACEHOLDERS,
) -> Decision:
    """Apply one rule. `current` is the CRM value read just before writing; `ours` the value the journal says we
    wrote to this field last (None if we never did, or a rollback restored what was there before us);
    `placeholders` the mapping's blank values, so a field holding "n/a" is as empty here as at selection."""
    proposed = result.values.get(rule.result)
    if rule.transform and not blank(proposed):
        proposed = TRANSFORMS[rule.transform](proposed)
    empty = blank(current, placeholders)

    def verdict(write: bool, reason: str) -> Decision:
        return Decision(rule.field, current, proposed, write, reason)

    if rule.policy is WritePolicy.NEVER:
        return verdict(False, "policy never")
    if blank(proposed):
        return verdict(False, "no value found")
    for key, allowed in rule.only_if.items():
        if str(result.values.get(key)) not in allowed:
            return verdict(False, f"{key} is {result.values.get(key)!r}, not one of {allowed}")
    if not empty and same_value(current, proposed):
        return verdict(False, "already equal")
    if rule.policy is WritePolicy.FILL_EMPTY and not empty:
        return verdict(False, "fill_empty: the field already has a value")
    if rule.policy is WritePolicy.OVERWRITE_IF_UNCHANGED and not (empty or same_value(current, ours)):
        # Only our own last value is ours to replace: a value nobody journaled was typed or imported by
        # someone else, however long it has sat unchanged.
        return verdict(False, "overwrite_if_unchanged: not the value we wrote")
    return verdict(True, "empty field filled" if empty else f"{rule.policy.value}")


def plan_writes(
    mapping: FieldMapping,
    result: EnrichmentResult,
    current: Mapping[str, Any],
    ours: Mapping[str, Any],
    now: datetime,
) -> list[Decision]:
    """Every field decision for one record, the connector's status fields included.

    Status fields are ours, but say something only when it is news: the status when it changes, the time
    whenever anything is written, the job-change flag when LoneScale reports a change not yet flagged.
    A replay or a duplicate that changes nothing writes nothing (and costs no API call). `ours`: field → the
    value we last wrote there (`overwrite_if_unchanged` replaces only that).
    """
    placeholders = mapping.placeholders
    decisions = [
        decide(rule, result, current.get(rule.field), ours.get(rule.field), placeholders)
        for rule in mapping.write_back
    ]
    status = mapping.status
    owned: list[tuple[str | None, Any, bool]] = []
    label = status.enriched_value if result.found else status.not_found_value
    owned.append((status.status, label, not same_value(current.get(status.status or ""), label)))
    # LoneScale's `false` means "same company OR not enough data" (docs/lonescale.md#job-change): it is never
    # written, so it cannot erase a change flagged earlier.
    news = bool(result.job_change_detected) and not same_value(current.get(status.job_change or ""), True)
    owned += [(status.job_change, True, news), (status.job_change_at, now, news)]
    touched = any(d.write for d in decisions) or any(write for name, _, write in owned if name)
    owned.append((status.enriched_at, now, touched))
    for name, value, write in owned:
        if name:
            reason = "status field" if write else "status unchanged"
            decisions.append(Decision(name, current.get(name), value, write and touched, reason))
    return decisions
