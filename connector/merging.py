"""Several results for one record in one write-back pass, merged by enrichment type.

A record can have two results waiting at once: job A's email and job B's phone, both in the inbox after a
CRM outage, or a record sent again after a person changed it. Keeping only the newest result would drop the
other's values (paid for, never written, and their cooldown still running). Instead each type's values
come from the newest result that has values of that type; an older result's values of a type are dropped
only when a newer one replaces them, and then as a whole (a newer email never keeps an older
`email_status`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from connector.inbox import Pending
from connector.mapping import result_type
from connector.models import EnrichmentResult, EnrichmentType
from connector.values import blank


def found_types(item: Pending) -> dict[str, bool]:
    """Per type its job asked for, whether LoneScale found a value: a miss waits the shorter cooldown."""
    values, result = item.result.values, item.result
    hits = {
        "email": not blank(values.get("email"))
        and values.get("email_status") not in ("predicted", "invalid", "unknown"),
        "phone": not blank(values.get("phone")),
        "profile": result.found
        and any(not blank(values.get(k)) for k in ("job_title", "linkedin_url", "company_name")),
    }
    return {kind: hits.get(kind, result.found) for kind in item.job.enrichment_types}


@dataclass(frozen=True)
class RecordResults:
    """What one record's results in this pass come to."""

    merged: Pending  # the newest result's job and contact, carrying the merged values
    contributors: tuple[Pending, ...]  # results at least one of whose types is kept
    superseded: tuple[Pending, ...]  # results every type of which a newer one replaced
    job_of_type: Mapping[EnrichmentType, str]  # which job's result each type's values come from
    found: Mapping[str, bool]  # type → found by any of them (the cooldown ledger)

    @property
    def record_id(self) -> str:
        return self.merged.contact.record_id

    def job_for(self, result_field: str) -> str:
        """The job that paid for a result field's value (status fields: the newest job)."""
        return self.job_of_type.get(result_type(result_field), self.merged.job.id)


def _by_type(values: Mapping[str, object]) -> dict[EnrichmentType, dict[str, object]]:
    grouped: dict[EnrichmentType, dict[str, object]] = defaultdict(dict)
    for name, value in values.items():
        grouped[result_type(name)][name] = value
    return grouped


def merge(items: Sequence[Pending]) -> RecordResults:
    """`items`: one record's results, in any order; the newest is the one whose job was created last."""
    ordered = sorted(items, key=lambda item: (item.job.created_at, item.delivery_id))
    newest = ordered[-1]
    values: dict[EnrichmentType, dict[str, object]] = {}
    source: dict[EnrichmentType, Pending] = {}
    found: dict[str, bool] = {}
    for item in ordered:
        asked = set(item.job.enrichment_types)
        for kind, group in _by_type(item.result.values).items():
            # Names come back with every result; a job replaces a type's values only if it paid for that type.
            if kind in asked or kind not in source:
                values[kind], source[kind] = group, item
        for asked_type, hit in found_types(item).items():
            found[asked_type] = found.get(asked_type, False) or hit
    kept = {id(item) for item in source.values()} | {id(newest)}
    profile = source.get(EnrichmentType.PROFILE)
    result = EnrichmentResult(
        contact_id=newest.result.contact_id,
        found=any(item.result.found for item in ordered),
        values={name: value for group in values.values() for name, value in group.items()},
        job_change_detected=profile.result.job_change_detected if profile else None,
    )
    return RecordResults(
        merged=Pending(newest.job, newest.contact, result, newest.delivery_id),
        contributors=tuple(item for item in ordered if id(item) in kept),
        superseded=tuple(item for item in ordered if id(item) not in kept),
        job_of_type={kind: item.job.id for kind, item in source.items()},
        found=found,
    )


def by_record(items: Iterable[Pending]) -> dict[str, RecordResults]:
    grouped: dict[str, list[Pending]] = defaultdict(list)
    for item in items:
        grouped[item.contact.record_id].append(item)
    return {record_id: merge(group) for record_id, group in grouped.items()}
