"""Enrichment jobs and the credit account: a job's results are computed and charged once, when it completes."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from connector.sandbox.lonescale.behaviour import LoneScaleBehaviour
from connector.sandbox.lonescale.fakes import identity_of, look_up
from connector.sandbox.lonescale.payloads import TYPE_KEYS, billable, camel_fields, legacy_item, with_custom

# Undocumented (docs/lonescale.md#credits): what one found type costs. Predicted emails and misses are free.
CREDIT_COSTS: dict[str, int] = {"profile": 1, "email": 1, "phone": 10}
CHARGE_ORDER = ("profile", "email", "phone")


@dataclass(frozen=True)
class Preset:
    """A test's "known person": forces found / missing types and overrides camelCase fields by name."""

    found: bool = True
    missing: frozenset[str] = frozenset()
    fields: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> tuple[str, Preset]:
        contact = {"firstname": "", "lastname": "", **record.get("match", {})}
        identity = identity_of(contact)
        if identity is None:
            raise ValueError("'match' needs linkedin_url, email, or firstname+lastname+domain/company_name")
        missing = frozenset(record.get("missing", []))
        fields = dict(record.get("fields", {}))
        known = {key for keys in TYPE_KEYS.values() for key in keys} | {"jobChangeDetected"}
        if not missing <= set(TYPE_KEYS) or not set(fields) <= known:
            raise ValueError(
                f"unknown types {sorted(missing - set(TYPE_KEYS))} or fields {sorted(set(fields) - known)}"
            )
        return identity, cls(bool(record.get("found", True)), missing, fields)


@dataclass
class Account:
    enrichment_credits: int
    contact_credits: int
    spent: int = 0

    def try_charge(self, cost: int) -> bool:
        if cost > self.enrichment_credits:
            return False
        self.enrichment_credits -= cost
        self.spent += cost
        return True


@dataclass
class Job:
    id: str
    request: dict[str, Any]
    behaviour: LoneScaleBehaviour  # as it was when the job was accepted, so a job's behaviour is fixed
    accepted_at: float  # monotonic
    ready_at: float
    finished: bool = False
    items: list[dict[str, Any]] = field(default_factory=list)  # delivered payload items, input order
    charged: dict[str, int] = field(default_factory=dict)
    not_found: int = 0
    fault: str | None = None  # the trigger fault its answer met (behaviour `trigger_fault`), if any

    @property
    def contacts(self) -> list[dict[str, Any]]:
        contacts: list[dict[str, Any]] = self.request["contacts"]
        return contacts

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": "finished" if self.finished else "processing",
            "contacts": len(self.contacts),
            "contact_ids": [(c.get("custom") or {}).get("contact_id") for c in self.contacts],
            "custom": self.request.get("custom"),  # the request-level one, as received (None: not sent)
            "not_found": self.not_found,
            "credits_charged": self.charged,
            "webhook_url": self.request["webhook_url"],
            "fault": self.fault,
        }


class JobBook:
    """Every job since the last reset; ids are derived from the seed and a counter, so runs repeat."""

    def __init__(self, seed: int):
        self.seed = seed
        self.jobs: dict[str, Job] = {}

    def accept(self, request: dict[str, Any], behaviour: LoneScaleBehaviour) -> Job:
        digest = hashlib.blake2b(f"{self.seed}|job|{len(self.jobs)}".encode(), digest_size=16).hexdigest()
        job_id = f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
        now = time.monotonic()
        job = Job(job_id, request, behaviour, now, now + behaviour.webhook_delay_seconds)
        self.jobs[job_id] = job
        return job

    def complete_if_due(self, job: Job, account: Account, presets: Mapping[str, Preset]) -> bool:
        """Finishes the job once its time has come (whichever of the poller and the deliverer sees it first)."""
        if not job.finished and time.monotonic() >= job.ready_at:
            self._complete(job, account, presets)
        return job.finished

    def _complete(self, job: Job, account: Account, presets: Mapping[str, Preset]) -> None:
        behaviour = job.behaviour
        requested = set(job.request["enrichment_type"])
        detect = bool(job.request.get("detect_job_change", False))
        charged = dict.fromkeys(CHARGE_ORDER, 0)
        shares = {
            "not_found_share": behaviour.not_found_share,
            "email_miss_share": behaviour.email_miss_share,
            "phone_miss_share": behaviour.phone_miss_share,
            "job_change_share": behaviour.job_change_share,
            "job_change_unknown_share": behaviour.job_change_unknown_share,
        }
        for contact in job.contacts:
            lookup = look_up(contact, self.seed, **shares)
            preset = presets.get(lookup.identity or "")
            if preset is not None and preset.found != lookup.found:
                lookup = look_up(
                    contact, self.seed, **(shares | {"not_found_share": 0.0 if preset.found else 1.0})
                )
            hits = set(requested) if lookup.found else set()
            if lookup.email_status is None:
                hits.discard("email")
            if not lookup.phones:
                hits.discard("phone")
            overrides: Mapping[str, Any] = {}
            if preset is not None:
                hits |= {
                    t for t, keys in TYPE_KEYS.items() if t in requested and set(keys) & set(preset.fields)
                }
                hits -= preset.missing
                overrides = preset.fields
            fields = camel_fields(lookup, requested, hits, detect, overrides)
            # Charged in a fixed order; a type the balance cannot cover comes back as not found.
            for kind in CHARGE_ORDER:
                if kind in hits and billable(kind, fields):
                    if account.try_charge(CREDIT_COSTS[kind]):
                        charged[kind] += CREDIT_COSTS[kind]
                    else:
                        hits.discard(kind)
                        fields = camel_fields(lookup, requested, hits, detect, overrides)
            if "status" in fields:
                job.not_found += 1
                if not behaviour.deliver_not_found:
                    continue
            item = with_custom(fields, contact, behaviour.echo_custom)
            job.items.append(legacy_item(item, contact) if behaviour.casing == "legacy" else item)
        job.charged = {kind: cost for kind, cost in charged.items() if cost}
        job.finished = True
