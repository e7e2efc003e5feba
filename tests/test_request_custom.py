"""The request-level `custom`: what each request carries (the configured keys, and our job id as `id`), what
LoneScale answers a malformed one, and how an echoed one is checked and recorded. Through our client, our
webhook and the emulator, over real sockets."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from connector.config import LoneScaleSettings
from connector.lonescale import LoneScaleClient, Refused
from connector.models import Contact, ContactCustom, EnrichmentType
from connector.redact import Secret
from connector.request_custom import RequestCustom
from connector.review import replay
from connector.sandbox import credentials
from connector.wiring import Instance
from tests.conftest import Served
from tests.support import LONESCALE, Pipeline, hubspot_instance

CONFIGURED = {"provider": "lonescale", "enrichment_type": "email and phone", "batch": "nightly"}
FEW = {"max_contacts_per_run": 3}  # a few one-contact jobs say everything these tests need


def with_custom(custom: dict[str, str]) -> LoneScaleSettings:
    return LONESCALE.model_copy(update={"custom": RequestCustom.model_validate(custom)})


def received(served: Served) -> dict[str, Any]:
    """LoneScale's job id → the request-level `custom` the emulator received with it (None: none sent)."""
    return {job["id"]: job["custom"] for job in served.control.admin("jobs")["jobs"]}


def sent_jobs(pipeline: Pipeline, instance: Instance, settings: LoneScaleSettings) -> list[tuple[str, str]]:
    """(our job id, LoneScale's) for each job one sync sent."""
    report = pipeline.sync(instance, settings)
    assert report.jobs, report.message
    pipeline.wait_for_results(report)
    jobs = [pipeline.store.jobs.get(job_id) for job_id in report.jobs]
    return [(job.id, str(job.lonescale_id)) for job in jobs if job is not None]


def test_every_request_carries_the_configured_keys_and_its_own_job_id(
    pipeline: Pipeline, hubspot_sandbox: Served, lonescale_sandbox: Served
) -> None:
    instance = hubspot_instance(hubspot_sandbox, budget=FEW)

    jobs = sent_jobs(pipeline, instance, with_custom(CONFIGURED))

    assert len(jobs) == 3
    got = received(lonescale_sandbox)
    assert [got[theirs] for _, theirs in jobs] == [{**CONFIGURED, "id": ours} for ours, _ in jobs]


def test_with_nothing_configured_each_request_still_carries_its_job_id(
    pipeline: Pipeline, hubspot_sandbox: Served, lonescale_sandbox: Served
) -> None:
    jobs = sent_jobs(pipeline, hubspot_instance(hubspot_sandbox, budget=FEW), LONESCALE)

    got = received(lonescale_sandbox)
    assert [got[theirs] for _, theirs in jobs] == [{"id": ours} for ours, _ in jobs]


def test_an_instances_own_custom_keys_win_over_the_shared_ones_key_by_key(
    pipeline: Pipeline, hubspot_sandbox: Served, lonescale_sandbox: Served
) -> None:
    own = {"enrichment_type": "phone", "team": "emea"}
    instance = hubspot_instance(hubspot_sandbox, budget=FEW, lonescale={"custom": own})

    jobs = sent_jobs(pipeline, instance, with_custom(CONFIGURED))

    got = received(lonescale_sandbox)
    expected = {"provider": "lonescale", "enrichment_type": "phone", "batch": "nightly", "team": "emea"}
    assert [got[theirs] for _, theirs in jobs] == [{**expected, "id": ours} for ours, _ in jobs]


def test_an_id_that_slipped_into_the_configured_keys_never_replaces_the_job_id(
    pipeline: Pipeline, hubspot_sandbox: Served, lonescale_sandbox: Served
) -> None:
    """The file cannot set `id` (tests/test_config.py); settings built without validating the file cannot
    either: the job's id is written last."""
    smuggled = RequestCustom.model_construct(provider="lonescale", id="crm-record-42")
    settings = LONESCALE.model_copy(update={"custom": smuggled})

    jobs = sent_jobs(
        pipeline, hubspot_instance(hubspot_sandbox, budget={"max_contacts_per_run": 1}), settings
    )

    got = received(lonescale_sandbox)
    assert [got[theirs]["id"] for _, theirs in jobs] == [ours for ours, _ in jobs]


def test_lonescale_refuses_a_request_custom_that_is_not_an_object_with_400(
    lonescale_sandbox: Served,
) -> None:
    client = LoneScaleClient(lonescale_sandbox.url, Secret(credentials.LONESCALE_API_KEY), timeout=5)
    contact = Contact(
        firstname="Zoë", lastname="Lefèvre", domain="acme.fr", custom=ContactCustom(contact_id="003A")
    )
    try:
        with pytest.raises(Refused) as refused:
            client.trigger([contact], [EnrichmentType.EMAIL], "http://127.0.0.1:9/hook", custom="lonescale")  # type: ignore[arg-type]
        with pytest.raises(Refused) as not_a_string:
            client.trigger(
                [contact], [EnrichmentType.EMAIL], "http://127.0.0.1:9/hook", custom={"provider": 7}
            )  # type: ignore[dict-item]
    finally:
        client.close()

    assert refused.value.status == 400 and not_a_string.value.status == 400
    reasons = [r["reason"] for r in lonescale_sandbox.control.admin("rejections")["rejections"]]
    assert reasons == ["custom must be an object, got string", "custom.provider must be a string, got number"]
    assert received(lonescale_sandbox) == {}, "no job was started"


def echoing(served: Served) -> None:
    """Per-job deliveries that echo the request's `custom`: the kind reading, by name."""
    served.control.configure(delivery="per_job", echo_request_custom=True)


def test_an_echoed_custom_naming_its_job_is_applied_and_its_provider_recorded(
    pipeline: Pipeline, hubspot_sandbox: Served, lonescale_sandbox: Served
) -> None:
    echoing(lonescale_sandbox)
    instance = hubspot_instance(hubspot_sandbox, budget=FEW)

    jobs = sent_jobs(pipeline, instance, with_custom({"provider": "lonescale-waterfall"}))
    applied = pipeline.apply(instance)

    assert applied.results == len(jobs) and applied.uncorrelated == 0 and applied.records_written > 0
    for ours, _ in jobs:
        [kept] = pipeline.store.inbox.of_job(ours)
        assert json.loads(kept["body"])["custom"] == {"provider": "lonescale-waterfall", "id": ours}
        assert kept["status"] == "applied"
        job = pipeline.store.jobs.get(ours)
        assert job is not None and job.provider == "lonescale-waterfall"


def test_without_the_echo_no_provider_is_recorded(
    pipeline: Pipeline, hubspot_sandbox: Served, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(delivery="per_job")  # the default reading: no custom comes back
    instance = hubspot_instance(hubspot_sandbox, budget=FEW)

    jobs = sent_jobs(pipeline, instance, with_custom({"provider": "lonescale-waterfall"}))
    applied = pipeline.apply(instance)

    assert applied.records_written > 0
    assert [pipeline.store.jobs.get(ours).provider for ours, _ in jobs] == [None] * len(jobs)  # type: ignore[union-attr]


def test_a_body_whose_echoed_custom_names_another_job_is_refused_kept_and_never_applied(
    pipeline: Pipeline, hubspot_sandbox: Served, lonescale_sandbox: Served
) -> None:
    """Job A's results posted to job B's URL (a sender's mix-up). B holds one contact, so without the check
    A's person would be written on B's record."""
    echoing(lonescale_sandbox)
    instance = hubspot_instance(hubspot_sandbox, budget={"max_contacts_per_run": 2})
    (a, _), (b, b_theirs) = sent_jobs(pipeline, instance, with_custom(CONFIGURED))
    a_body = pipeline.store.inbox.of_job(a)[0]["body"]
    b_url = next(
        j["webhook_url"] for j in lonescale_sandbox.control.admin("jobs")["jobs"] if j["id"] == b_theirs
    )

    answer = httpx.post(b_url, content=a_body, headers={"content-type": "application/json"}, timeout=10)

    assert answer.status_code == 422
    assert f"custom.id '{a}' names another request than job {b}" in answer.json()["message"]
    _, misrouted = pipeline.store.inbox.of_job(b)
    assert (misrouted["status"], misrouted["body"]) == ("invalid", a_body)
    assert f"names another request than job {b}" in misrouted["error"]
    assert [d["job_id"] for d in pipeline.store.inbox.unusable()] == [b], "kept for inspection"

    applied = pipeline.apply(instance)
    replayed = replay({instance.name: instance}, pipeline.store, job_id=b)

    assert applied.results == 2 and applied.uncorrelated == 0, "each job's own body, and nothing else"
    assert replayed.results == 1, "a replay of B reads B's own body only"
    assert [d["status"] for d in pipeline.store.inbox.of_job(b)] == ["applied", "invalid"]
