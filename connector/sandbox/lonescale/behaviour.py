"""The LoneScale emulator's tunables: one switch per thing the public docs leave unknown.

Each is listed, with the reading it defaults to, in docs/lonescale.md#what-the-docs-leave-open.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from connector.sandbox.kit import Behaviour

Delivery = Literal["per_contact", "per_job"]
Casing = Literal["camel", "legacy"]
StartShape = Literal["object", "string"]
# What goes wrong with a trigger LoneScale has accepted (the job runs, is billed, and calls its webhook): a
# gateway in front gives up waiting and answers 504 (https://www.rfc-editor.org/rfc/rfc9110#section-15.6.5),
# the connection is reset before any answer, or a 200 comes back without an id.
TriggerFault = Literal["none", "gateway_timeout", "reset", "no_id"]
# What `GET /trigger/run/{id}` answers. It is seen only in the CLI's debug trace
# (https://docs.lonescale.com/cli/recipes), not in the OpenAPI, so whether a public API key may call it is
# unknown: by default the unkind reading, a route that is not there for us (Express's `Cannot GET` 404);
# `forbidden` is a guard's 403; `served` is the trace's `processing` → `finished` with the contacts.
RunRoute = Literal["served", "not_found", "forbidden"]


class LoneScaleBehaviour(Behaviour):
    """Realistic defaults; each undocumented choice can be flipped by a test."""

    # -- the async start (docs/lonescale.md#the-start-answer): `{"id", "status"}` per the CLI trace, or a
    # plain JSON string like sourcing's.
    start_response: StartShape = "object"
    # -- answers lost after the job was accepted: a network fault rather than an API choice, so off by default
    # (a flaky default would make every test's outcome depend on the seed); the share picks jobs by seed.
    trigger_fault: TriggerFault = "none"
    trigger_fault_share: float = Field(default=1.0, ge=0, le=1)
    trigger_fault_from: int = Field(
        default=1, ge=1
    )  # the fault meets the N-th job this emulator took, and on
    # -- how long an accepted trigger's answer takes (LoneScale documents none): 0, unless a test needs the
    # sync to have work waiting behind an answer.
    trigger_answer_seconds: float = Field(default=0.0, ge=0, le=30)
    # -- a refusal of every valid request (a plan without an option, an `http://` webhook refused, an API
    # change), answered as NestJS's ValidationPipe does: 400 with this text in a `message` array.
    refuse_all_with: str | None = Field(default=None, min_length=1)

    # -- polling (docs/lonescale.md#polling): refused for `run_route_share` of the jobs (by seed and id)
    # unless `served`.
    run_route: RunRoute = "not_found"
    run_route_share: float = Field(default=1.0, ge=0, le=1)

    # -- timing: most jobs finish in under 60 s (docs/lonescale.md#limits-and-timing); the results are ready,
    # then the webhook follows.
    webhook_delay_seconds: float = Field(default=2.0, ge=0)
    webhook_lag_seconds: float = Field(default=0.0, ge=0)  # extra wait after the results are pollable

    # -- delivery shape (docs/lonescale.md#result-payloads): one bare EnrichPayload per contact, or one
    # per-job envelope.
    delivery: Delivery = "per_contact"
    casing: Casing = "camel"
    # The documented EnrichPayload has no `custom` (https://docs.lonescale.com/api-reference/webhookpayload/
    # enrichment-payload): by default each contact's `custom` is not echoed (the unkind reading); a test that
    # needs the echo says so with echo_custom=True.
    echo_custom: bool = False
    # The request-level `custom` (the published EnrichmentCustomOptions, `id` among it:
    # docs/lonescale.md#the-request-schema) at the envelope of a per-job delivery. The docs document no
    # envelope at all, let alone a `custom` on it, so by default it is not echoed (the unkind reading); a test
    # that needs it says echo_request_custom=True.
    echo_request_custom: bool = False
    deliver_not_found: bool = True  # False: unresolved contacts are left out of webhooks and polling

    # -- delivery faults, deterministic for a seed (nothing is documented about retries or ordering:
    # docs/lonescale.md#webhook-delivery).
    duplicate_deliveries: int = Field(default=0, ge=0, le=10)
    duplicate_share: float = Field(default=1.0, ge=0, le=1)
    out_of_order: bool = False
    webhook_missing_share: float = Field(default=0.0, ge=0, le=1)
    receiver_timeout_seconds: float = Field(default=10.0, gt=0)
    # Nothing documents webhook retries: by default a delivery that fails is gone, and only polling (where
    # the run route answers) recovers it; delivery_max_attempts > 1 is the kind reading, named by its test.
    delivery_max_attempts: int = Field(default=1, ge=1, le=20)
    delivery_backoff_seconds: float = Field(default=1.0, ge=0)

    # -- what the waterfall finds, deterministic per input identity and seed.
    not_found_share: float = Field(default=0.2, ge=0, le=1)
    email_miss_share: float = Field(default=0.2, ge=0, le=1)
    phone_miss_share: float = Field(default=0.5, ge=0, le=1)
    job_change_share: float = Field(default=0.25, ge=0, le=1)
    # Moved, yet reported false (docs/lonescale.md#job-change).
    job_change_unknown_share: float = Field(default=0.1, ge=0, le=1)

    # -- account and limits (docs/lonescale.md#limits-and-timing): no async limit is documented, so each is
    # off by default.
    enrichment_credits: int = Field(default=10_000, ge=0)
    contact_credits: int = Field(default=1_000, ge=0)
    rate_limit_per_minute: int | None = Field(default=None, ge=1)
    retry_after_header: bool = False  # NestJS's throttler may send one; LoneScale documents none
    max_contacts_per_request: int | None = Field(default=None, ge=1)
    max_body_bytes: int | None = Field(default=None, ge=1)  # Express's JSON parser defaults to 100 kB


def relaxed_behaviour() -> LoneScaleBehaviour:
    """`realistic=False`: no waiting, quick retries; what is found stays the same."""
    return LoneScaleBehaviour(webhook_delay_seconds=0.0, delivery_backoff_seconds=0.05)
