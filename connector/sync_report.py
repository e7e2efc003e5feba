"""What a sync did, as its run records it and `sync`, `status` and the daemon's log show it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connector.adapters.base import Window
from connector.config import LoneScaleSettings
from connector.wiring import Instance

EACH_JOB_ID = "<its job id>"  # how a dry run shows the `custom.id` each request would carry


def custom_shown(instance: Instance, settings: LoneScaleSettings) -> dict[str, str]:
    """The request-level `custom` each of the instance's requests carries, as a dry run shows it."""
    return {**instance.settings.request_custom(settings), "id": EACH_JOB_ID}


@dataclass
class SyncReport:
    instance: str
    run_id: int
    dry_run: bool = False
    window: Window | None = None
    pulled: int = 0
    sent: int = 0
    jobs: list[str] = field(default_factory=list)
    by_types: Counter[str] = field(default_factory=Counter)  # "email+phone" → contacts
    skipped: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    credits_at_start: float | None = None
    projected_credits: float = 0.0  # if every type asked for were found (the most it can cost)
    clock_skew: float | None = None  # seconds the daemon's clock is ahead of the CRM's (negative: behind)
    cursor: datetime | None = None  # where the next window starts (before its look-back)
    status: str = "running"  # running | succeeded | stopped | failed | busy
    at_budget: bool = False  # stopped by a cap or by the credit balance: the budget at work, not a fault
    message: str | None = None
    # The request-level `custom` each request carries: the configured keys, and `id`, each job's own.
    custom: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, Any]:
        return {
            "pulled": self.pulled,
            "sent": self.sent,
            "jobs": len(self.jobs),
            "by_types": dict(self.by_types),
            "skipped": dict(self.skipped),
            "dropped_values": dict(self.dropped),
            "credits_at_start": self.credits_at_start,
            "projected_credits": self.projected_credits,
            "clock_skew_seconds": self.clock_skew,
        }
