"""The LoneScale emulator's account side: `GET /users` credits, charging per found type, 403 at zero,
polling `GET /trigger/run/{id}`, the optional rate limit and call statistics by route template."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.conftest import Served

NO_CREDITS = {"message": "User has no enrichment credits", "error": "Forbidden", "statusCode": 403}
TOO_MANY = {
    "message": "ThrottlerException: Too Many Requests",
    "error": "Too Many Requests",
    "statusCode": 429,
}
COSTS = {"profile": 1, "email": 1, "phone": 10}  # the emulator's documented choice


@pytest.fixture
def api(lonescale_sandbox: Served, _client: httpx.Client) -> httpx.Client:
    # Most of these tests poll: the route as the CLI trace shows it, turned on by name.
    lonescale_sandbox.control.configure(webhook_delay_seconds=0, run_route="served")
    return _client


def contacts(count: int) -> list[dict[str, Any]]:
    return [{"firstname": f"Ann{i}", "lastname": "Lee", "domain": f"firm{i}.com"} for i in range(count)]


def start(api: httpx.Client, people: list[dict[str, Any]], types: list[str]) -> httpx.Response:
    body = {"enrichment_type": types, "contacts": people, "webhook_url": "http://127.0.0.1:9/hook"}
    return api.post("/trigger/enrich", json=body)


def finished(api: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        run = api.get(f"/trigger/run/{job_id}").json()
        if run["status"] == "finished":
            items: list[dict[str, Any]] = run["contacts"]
            return items
        time.sleep(0.01)
    raise AssertionError("the job did not finish within 5 s")


def enrichment_credits(api: httpx.Client) -> int:
    credits: int = api.get("/users").json()[0]["plan"]["enrichmentCredits"]
    return credits


def test_users_is_an_array_with_the_plans_credits(api: httpx.Client, lonescale_sandbox: Served) -> None:
    lonescale_sandbox.control.configure(enrichment_credits=250, contact_credits=40)

    response = api.get("/users")

    assert response.status_code == 200
    [user] = response.json()
    assert {"id", "firstName", "lastName", "email"} <= set(user)
    assert user["plan"] == {"enrichmentCredits": 250, "contactCredits": 40}


def test_a_finished_job_charges_each_found_type_at_its_cost(api: httpx.Client) -> None:
    before = enrichment_credits(api)

    items = finished(api, start(api, contacts(30), ["email", "phone", "profile"]).json()["id"])

    expected = sum(
        COSTS["profile"] * ("fullName" in item)
        + COSTS["email"] * (item.get("emailStatus") in ("valid", "catch_all"))
        + COSTS["phone"] * ("phone" in item)
        for item in items
    )
    assert 0 < expected < 30 * sum(COSTS.values())  # some found, some missed: the test would see a flat rate
    assert enrichment_credits(api) == before - expected


def test_predicted_unknown_and_invalid_emails_and_misses_are_free(
    api: httpx.Client, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(email_miss_share=1)
    before = enrichment_credits(api)

    items = finished(api, start(api, contacts(20), ["email"]).json()["id"])

    assert {item.get("emailStatus") for item in items} <= {"predicted", None}
    assert enrichment_credits(api) == before


def test_the_balance_can_be_refilled_through_the_admin_route(api: httpx.Client) -> None:
    finished(api, start(api, contacts(5), ["profile"]).json()["id"])
    assert enrichment_credits(api) < 10_000

    api.post("/__sandbox/credits", json={"enrichment_credits": 10_000})

    assert enrichment_credits(api) == 10_000


def test_a_job_is_charged_once_however_often_it_is_polled(api: httpx.Client) -> None:
    job_id = start(api, contacts(5), ["profile"]).json()["id"]
    finished(api, job_id)
    after_first_poll = enrichment_credits(api)

    for _ in range(3):
        api.get(f"/trigger/run/{job_id}")

    assert enrichment_credits(api) == after_first_poll


def test_an_account_without_enrichment_credits_gets_403(api: httpx.Client, lonescale_sandbox: Served) -> None:
    lonescale_sandbox.control.configure(enrichment_credits=0)

    response = start(api, contacts(1), ["email"])

    assert response.status_code == 403
    assert response.json() == NO_CREDITS


def test_credits_running_out_mid_job_leave_the_unaffordable_types_not_found(
    api: httpx.Client, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.seed(
        [{"match": {"email": "ann@firm.com"}, "fields": {"emailStatus": "valid", "phone": "+14155550100"}}]
    )
    lonescale_sandbox.control.configure(enrichment_credits=11)

    response = start(
        api, [{"firstname": "Ann", "lastname": "Lee", "email": "ann@firm.com"}], ["email", "phone", "profile"]
    )
    [item] = finished(api, response.json()["id"])

    assert "fullName" in item and item["emailStatus"] == "valid"
    assert "phone" not in item  # profile 1 + email 1 leave 9, short of a phone's 10
    assert enrichment_credits(api) == 9
    assert start(api, contacts(1), ["email"]).status_code == 200  # 9 left: the account is not empty yet


def test_polling_says_processing_until_the_results_are_ready(
    api: httpx.Client, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(webhook_delay_seconds=0.3)
    before = enrichment_credits(api)
    job_id = start(api, contacts(3), ["profile"]).json()["id"]

    early = api.get(f"/trigger/run/{job_id}").json()
    items = finished(api, job_id)

    assert early == {"status": "processing"}
    assert enrichment_credits(api) < before  # charged on completion, not before
    assert len(items) == 3


def test_polling_an_unknown_run_gets_404(api: httpx.Client) -> None:
    response = api.get("/trigger/run/no-such-run")

    assert response.status_code == 404
    assert response.json() == {"message": "Run not found", "error": "Not Found", "statusCode": 404}


def test_polling_is_not_a_route_a_public_key_has_by_default(
    lonescale_sandbox: Served, _client: httpx.Client
) -> None:
    lonescale_sandbox.control.configure(webhook_delay_seconds=0)
    job_id = start(_client, contacts(1), ["email"]).json()["id"]

    polled = _client.get(f"/trigger/run/{job_id}")
    keyless = httpx.get(f"{lonescale_sandbox.url}/trigger/run/{job_id}")

    path = f"/trigger/run/{job_id}"
    assert polled.status_code == keyless.status_code == 404, "the route is not there: Express answers first"
    assert polled.json() == {"message": f"Cannot GET {path}", "error": "Not Found", "statusCode": 404}


def test_a_forbidden_polling_route_checks_the_key_then_answers_a_guards_403(
    api: httpx.Client, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(run_route="forbidden")
    job_id = start(api, contacts(1), ["email"]).json()["id"]

    polled = api.get(f"/trigger/run/{job_id}")
    keyless = httpx.get(f"{lonescale_sandbox.url}/trigger/run/{job_id}")

    assert polled.status_code == 403
    assert polled.json() == {"message": "Forbidden resource", "error": "Forbidden", "statusCode": 403}
    assert keyless.status_code == 401


def test_polling_can_be_refused_for_a_share_of_the_jobs_always_the_same_ones(
    api: httpx.Client, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(run_route="not_found", run_route_share=0.5)
    job_ids = [start(api, contacts(1), ["email"]).json()["id"] for _ in range(20)]

    first = [api.get(f"/trigger/run/{job_id}").status_code for job_id in job_ids]
    again = [api.get(f"/trigger/run/{job_id}").status_code for job_id in job_ids]

    assert first == again and set(first) == {200, 404}


def test_no_rate_limit_applies_by_default(api: httpx.Client) -> None:
    statuses = {api.get("/users").status_code for _ in range(30)}

    assert statuses == {200}


def test_a_rate_limit_when_set_answers_429_with_the_throttler_body(
    api: httpx.Client, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(rate_limit_per_minute=3)

    first = [
        start(api, contacts(1), ["email"]).status_code,
        api.get("/users").status_code,
        api.get("/users").status_code,
    ]
    refused = start(api, contacts(1), ["email"])

    assert first == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.json() == TOO_MANY
    assert "retry-after" not in refused.headers
    assert lonescale_sandbox.control.count("POST", "/trigger/enrich", 429) == 1


def test_the_429_can_carry_a_retry_after_header(api: httpx.Client, lonescale_sandbox: Served) -> None:
    lonescale_sandbox.control.configure(rate_limit_per_minute=1, retry_after_header=True)

    api.get("/users")
    refused = api.get("/users")

    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60


def test_calls_are_counted_by_route_template(api: httpx.Client, lonescale_sandbox: Served) -> None:
    job_ids = [start(api, contacts(1), ["email"]).json()["id"] for _ in range(2)]
    for job_id in [*job_ids, "missing"]:
        api.get(f"/trigger/run/{job_id}")
    api.get("/users")
    api.get("/__sandbox/jobs")

    count = lonescale_sandbox.control.count
    assert count("POST", "/trigger/enrich", 200) == 2
    assert count("GET", "/trigger/run/{id}", 200) == 2
    assert count("GET", "/trigger/run/{id}", 404) == 1
    assert count("GET", "/users", 200) == 1
    assert count() == 6  # admin routes are not counted
