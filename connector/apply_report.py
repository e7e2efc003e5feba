"""What a write-back pass reports: its counts, the CRM's refusals, and in a dry run each field's decision."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# A refusal's code as the CRMs write it at the head of their reasons: Salesforce's statusCode
# ("STRING_TOO_LONG: Title: data value too large…", connector.adapters.salesforce_writes and _values),
# HubSpot's error category after the status ("HubSpot batch update refused (409 CONFLICT): …",
# connector.adapters.hubspot_calls). /metrics counts refusals by it: a bounded label, unlike the reason.
_SALESFORCE_CODE = re.compile(r"^([A-Z][A-Z0-9_]{2,}):")
_HUBSPOT_CATEGORY = re.compile(r"refused \(\d{3} ([A-Z][A-Z0-9_]{2,})")
OTHER = "OTHER"  # a reason in no CRM's code (ours: "HubSpot neither confirmed nor refused…")
# A record gone by the time we read it before writing: the code the HubSpot adapter gives the same case
# (hubspot_writes' read-back), so one code names it on both CRMs.
GONE = "OBJECT_NOT_FOUND"


def reason_code(reason: str | None) -> str:
    """The CRM's code at the head of a refusal's reason, else OTHER."""
    text = reason or ""
    found = _SALESFORCE_CODE.match(text) or _HUBSPOT_CATEGORY.search(text)
    return found.group(1) if found else OTHER


# How a record's listed reason says a field was refused on it, the rest written ("title not written: too long"):
# `status` tells such a record (fields refused) from one rejected whole by it.
REFUSED_FIELD = " not written: "


@dataclass(frozen=True)
class PlannedField:
    """One row of a dry-run diff: what would happen to one field of one record, and why."""

    instance: str
    record_id: str
    field: str
    current: Any
    proposed: Any
    write: bool
    reason: str
    job_id: str


@dataclass
class ApplyReport:
    passes: int = 0  # passes that met deliveries
    deliveries: int = 0
    results: int = 0
    duplicates: int = 0
    uncorrelated: int = 0
    not_found: int = 0
    records_written: int = 0
    fields_written: int = 0
    # Two words, one meaning each, in every count we show: a record *rejected* is one the CRM refused whole
    # (nothing of it written); a field *refused* is one the CRM turned down on a record whose other fields
    # were written (HubSpot's 409 on an email, Salesforce's STRING_TOO_LONG on a title).
    records_rejected: int = 0
    fields_refused: int = 0
    kept_by_policy: Counter[str] = field(default_factory=Counter)
    rejected_by_code: Counter[str] = field(default_factory=Counter)  # records, by the CRM's code
    refused_by_code: Counter[str] = field(default_factory=Counter)  # fields, by the CRM's code
    rejections: list[tuple[str, str]] = field(default_factory=list)  # (record id, the CRM's reason)
    refusals: list[tuple[str, str]] = field(default_factory=list)  # (record id, "field not written: reason")
    failures: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # instances another process was working on: left for later
    planned: list[PlannedField] = field(default_factory=list)  # dry runs only

    def absorb(self, other: ApplyReport) -> None:
        """Add another report's figures to this one (an instance's to the total, a pass's to a wait)."""
        for name in ("passes", "deliveries", "results", "duplicates", "uncorrelated", "not_found", "records_written",
                     "fields_written", "records_rejected", "fields_refused"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.kept_by_policy.update(other.kept_by_policy)
        self.rejected_by_code.update(other.rejected_by_code)
        self.refused_by_code.update(other.refused_by_code)
        self.rejections += other.rejections
        self.refusals += other.refusals
        self.failures += other.failures
        self.busy += other.busy
        self.planned += other.planned

    def counts(self) -> dict[str, Any]:
        return {
            "deliveries": self.deliveries,
            "results": self.results,
            "duplicates": self.duplicates,
            "uncorrelated": self.uncorrelated,
            "not_found": self.not_found,
            "records_written": self.records_written,
            "fields_written": self.fields_written,
            "records_rejected": self.records_rejected,
            "fields_refused": self.fields_refused,
            "kept_by_policy": dict(self.kept_by_policy),
            "rejected_by_code": dict(self.rejected_by_code),
            "refused_by_code": dict(self.refused_by_code),
        }

    def summary(self) -> str:
        """The pass in one line, in the words every count uses."""
        return (f"wrote {self.fields_written} field(s) on {self.records_written} record(s); the CRM rejected "
                f"{self.records_rejected} record(s) and refused {self.fields_refused} field(s)")  # fmt: skip

    def listing(self, limit: int) -> list[str]:
        """The first `limit` rejected records and refused fields, each with the CRM's reason, and how many
        more there are: the list a person acts on (`lonescale-sync failures` keeps them all)."""
        lines = [f"record {record_id} rejected: {reason}" for record_id, reason in self.rejections]
        lines += [f"record {record_id}: {reason}" for record_id, reason in self.refusals]
        if len(lines) > limit:
            return [
                *lines[:limit],
                f"… and {len(lines) - limit} more: `lonescale-sync failures` lists them all",
            ]
        return lines


def jsonable(value: Any) -> Any:
    """A value as the journal and the reports keep it: a datetime as ISO text in UTC, anything else as it is
    (asked for every field of every record written: strings and blanks pass without an isinstance check)."""
    if value is None or type(value) is str:
        return value
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value
