"""Triggers whose answer goes wrong after LoneScale took the job (a gateway's 504, a reset connection, a 200
without an id), and a LoneScale that refuses every request: what a client sees, and that the job still runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Served

NOWHERE = "http://127.0.0.1:9/hook"  # the discard port: each delivery attempt fails to connect, and is logged


def body(count: int = 2) -> dict[str, Any]:
    people = [{"firstname": f"Ann{i}", "lastname": "Lee", "domain": f"firm{i}.com"} for i in range(count)]
    return {"enrichment_type": ["email"], "contacts": people, "webhook_url": NOWHERE}


@pytest.fixture
def api(lonescale_sandbox: Served) -> Iterator[httpx.Client]:
    """A client of its own per test: a reset kills its connection."""
    # Polling shows the job ran: the route as the CLI trace shows it, turned on by name.
    lonescale_sandbox.control.configure(webhook_delay_seconds=0, delivery_max_attempts=1, run_route="served")
    key = lonescale_sandbox.emulator.api_key
    with httpx.Client(base_url=lonescale_sandbox.url, headers={"x-api-key": key}, timeout=5) as client:
        yield client


def jobs(api: httpx.Client) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = api.get("/__sandbox/jobs").json()["jobs"]
    return listed


def finishes_and_calls_its_webhook(api: httpx.Client, job_id: str) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        attempts = api.get("/__sandbox/deliveries", params={"job_id": job_id}).json()["deliveries"]
        if api.get(f"/trigger/run/{job_id}").json()["status"] == "finished" and attempts:
            return True
        time.sleep(0.01)
    return False


def test_a_gateway_timeout_answers_an_html_504_after_the_job_was_accepted(
    api: httpx.Client, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(trigger_fault="gateway_timeout")

    response = api.post("/trigger/enrich", json=body())

    assert response.status_code == 504
    assert response.headers["content-type"].startswith("text/html")
    assert "504 Gateway Time-out" in response.text
    [job] = jobs(api)
    assert (job["contacts"], job["fault"]) == (2, "gateway_timeout")
    assert finishes_and_calls_its_webhook(api, job["id"]), "LoneScale runs the job all the same"


def test_a_reset_drops_the_connection_without_any_answer_after_the_job_was_accepted(
    api: httpx.Client, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(trigger_fault="reset")

    with pytest.raises(httpx.ReadError, match="reset by peer"):  # after the connect: the body was sent
        api.post("/trigger/enrich", json=body())

    [job] = jobs(api)
    assert job["fault"] == "reset"
    assert finishes_and_calls_its_webhook(api, job["id"])


def test_a_200_without_an_id_still_starts_the_job(api: httpx.Client, lonescale_sandbox: Served) -> None:
    lonescale_sandbox.control.configure(trigger_fault="no_id")

    response = api.post("/trigger/enrich", json=body())

    assert (response.status_code, response.json()) == (200, {"status": "processing"})
    [job] = jobs(api)
    assert job["fault"] == "no_id"
    assert finishes_and_calls_its_webhook(api, job["id"])


def test_a_fault_share_picks_the_same_triggers_for_the_same_seed(
    api: httpx.Client, lonescale_sandbox: Served
) -> None:
    def answers() -> list[bool]:
        lonescale_sandbox.control.reset()
        lonescale_sandbox.control.configure(
            trigger_fault="no_id", trigger_fault_share=0.5, webhook_delay_seconds=60
        )
        return ["id" in api.post("/trigger/enrich", json=body(1)).json() for _ in range(16)]

    first = answers()

    assert 0 < first.count(True) < 16
    assert answers() == first


def test_a_refusal_of_every_request_answers_each_valid_one_400_like_nestjs_validation(
    api: httpx.Client, lonescale_sandbox: Served
) -> None:
    reason = "webhook_url must be a URL address using https"
    lonescale_sandbox.control.configure(refuse_all_with=reason)

    one, many = (api.post("/trigger/enrich", json=body(n)) for n in (1, 50))
    invalid = api.post("/trigger/enrich", json={**body(), "priority": "high"})
    unauthorised = api.post("/trigger/enrich", json=body(), headers={"x-api-key": "ls_wrong"})

    expected = {"message": [reason], "error": "Bad Request", "statusCode": 400}
    assert (one.status_code, one.json()) == (many.status_code, many.json()) == (400, expected)
    assert invalid.json()["message"] == "Bad request", "a body the schema refuses gets the documented 400"
    assert unauthorised.status_code == 401, "the key is checked first, as ever"
    assert jobs(api) == []
