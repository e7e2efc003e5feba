"""What a record still needs from LoneScale, and how much a run may send: the choices that spend credits.

A contact is sent only for the enrichment types it still needs: the types whose target fields are empty
(by default) and whose cooldown has passed since we last sent them. Our own write-back bumps SystemModstamp
/ lastmodifieddate and brings records back, but what it filled is no longer missing and what it did not
find is in cooldown, so they are not sent again. Caps on contacts per run and per month bound the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from connector.config import BudgetSettings
from connector.mapping import FieldMapping
from connector.models import CrmRecord, EnrichmentType
from connector.store import Jobs
from connector.wiring import Instance


def month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def select_types(
    configured: Sequence[EnrichmentType],
    mapping: FieldMapping,
    record: CrmRecord,
    history: Mapping[str, Any],
    budget: BudgetSettings,
    now: datetime,
) -> tuple[list[EnrichmentType], str | None]:
    """The types this record needs now, or none and why."""
    chosen, reasons = [], []
    for kind in configured:
        targets = mapping.targets(kind)
        if (
            budget.only_missing
            and targets
            and not any(mapping.is_blank(record.get(name)) for name in targets)
        ):
            reasons.append("targets already filled")
            continue
        past = history.get(kind.value)
        if past:
            wait = budget.not_found_delta if past.get("found") is False else budget.cooldown_delta
            if now - datetime.fromisoformat(past["sent_at"]) < wait:
                reasons.append("in cooldown")
                continue
        chosen.append(kind)
    if chosen:
        return chosen, None
    return [], "in cooldown" if "in cooldown" in reasons else "targets already filled"


def allowance(instance: Instance, jobs: Jobs, now: datetime) -> float:
    budget = instance.settings.budget
    allowance = float(budget.max_contacts_per_run or "inf")
    if budget.max_contacts_per_month is not None:
        used = jobs.contacts_sent_since(instance.name, month_start(now))
        allowance = min(allowance, max(0, budget.max_contacts_per_month - used))
    return allowance
