"""The typed values that cross every boundary: CRM records, LoneScale contacts and results, writes."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The schema's `format: email` / `format: uri` (docs/lonescale.md#the-request-schema). One invalid value gets
# the whole request a 400, so we only send values that pass a check at least as strict as a JSON-Schema
# validator.
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$"
)


_WHITESPACE = re.compile(r"\s")


def is_valid_email(value: str) -> bool:
    return bool(_EMAIL.match(value)) and ".." not in value and len(value) <= 254


def is_absolute_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    # RFC 3986: ASCII only, no whitespace (an IRI with 'é' is not a `format: uri`).
    return (
        parts.scheme in ("http", "https")
        and bool(parts.netloc)
        and value.isascii()
        and _WHITESPACE.search(value) is None
    )


class EnrichmentType(enum.StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    PROFILE = "profile"


class ContactCustom(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    contact_id: str


class Contact(BaseModel):
    """A LoneScale `Contact` exactly as its published schema allows (docs/lonescale.md#the-request-schema)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    firstname: str = Field(min_length=1)
    lastname: str = Field(min_length=1)
    email: str | None = None
    job_title: str | None = None
    linkedin_url: str | None = None
    domain: str | None = None
    company_name: str | None = None
    custom: ContactCustom

    @field_validator("email")
    @classmethod
    def _email_format(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_email(value):
            raise ValueError("not an email address LoneScale would accept")
        return value

    @field_validator("linkedin_url")
    @classmethod
    def _uri_format(cls, value: str | None) -> str | None:
        if value is not None and not is_absolute_http_url(value):
            raise ValueError("not an absolute http(s) URL")
        return value

    def to_request(self) -> dict[str, Any]:
        """The JSON object sent in `contacts[]`: unset fields omitted, never sent as null."""
        return self.model_dump(exclude_none=True)


@dataclass(frozen=True, order=True)
class RecordRef:
    """A CRM record: which instance, which object, which id."""

    instance: str
    object: str
    id: str


@dataclass(frozen=True)
class CrmRecord:
    """One pulled record: its fields by CRM name (relationship fields dotted, `Account.Name`)."""

    ref: RecordRef
    changed_at: datetime
    fields: Mapping[str, Any]

    def get(self, name: str) -> Any:
        return self.fields.get(name)


@dataclass(frozen=True)
class FieldInfo:
    """What a CRM says of one field: enough to check a mapping before the first write."""

    name: str
    type: str
    writable: bool
    length: int | None = None
    nillable: bool = True


@dataclass(frozen=True)
class FieldUpdate:
    """Values to write on one record."""

    ref: RecordRef
    values: Mapping[str, Any]


@dataclass(frozen=True)
class FollowUp:
    """A to-do for a record's owner after a job change: a Salesforce Task, or a HubSpot note on the contact."""

    ref: RecordRef
    subject: str
    body: str
    owner_id: str | None = None  # None: the CRM's default owner (the integration user in Salesforce)
    due: date | None = None


class WriteOutcome(enum.StrEnum):
    WRITTEN = "written"
    REJECTED = "rejected"  # the CRM refused this record; its reason is kept
    # Locked by another process on every try (Salesforce UNABLE_TO_LOCK_ROW): not written now, recorded as
    # rejected with that reason, and written by `retry-failed` once the lock is gone.
    LOCKED = "locked"


@dataclass(frozen=True)
class WriteResult:
    ref: RecordRef
    outcome: WriteOutcome
    reason: str | None = None
    code: str | None = None
    # WRITTEN, except these fields, which the CRM refused (field → its reason): e.g. an email another
    # HubSpot contact already holds, dropped so the record's other fields could still be written.
    refused_fields: Mapping[str, str] = field(default_factory=dict)


class JobStatus(enum.StrEnum):
    PENDING = "pending"  # stored, not yet posted to LoneScale
    SENT = "sent"  # LoneScale accepted it; waiting for results
    UNCERTAIN = "uncertain"  # its answer was lost, or had no id: its webhook settles it; never re-posted
    PARTLY_APPLIED = "partly_applied"  # some of its contacts' results are written, the others still awaited
    APPLIED = "applied"
    EXPIRED = "expired"
    FAILED = "failed"


@dataclass(frozen=True)
class EnrichmentResult:
    """One contact's result, normalised from whichever payload shape LoneScale used."""

    contact_id: str | None
    found: bool
    values: Mapping[str, Any]
    job_change_detected: bool | None = None
