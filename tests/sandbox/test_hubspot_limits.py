"""The HubSpot emulator's gatekeeping: bearer auth, rate limits and their 429s, faults, stats, determinism."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
import urllib3
from hubspot import HubSpot
from hubspot.crm.contacts import (
    ApiException,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectId,
)
from hubspot.crm.contacts.exceptions import UnauthorizedException

from connector.sandbox import credentials
from connector.sandbox.hubspot.app import HubSpotEmulator, token_key
from tests.conftest import Served

TIMEOUT = (5, 30)
AUTH = {"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"}


def client(url: str, token: str = credentials.HUBSPOT_TOKEN) -> HubSpot:
    return HubSpot(access_token=token, host=url)


def body_of(error: Exception) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(getattr(error, "body", "") or "{}")
    return parsed


def test_a_wrong_bearer_token_is_unauthorized_and_not_counted(hubspot_sandbox: Served) -> None:
    with pytest.raises(UnauthorizedException) as raised:
        client(hubspot_sandbox.url, token="pat-na1-wrong").crm.contacts.basic_api.get_page(
            _request_timeout=TIMEOUT
        )
    body = body_of(raised.value)
    assert (body["status"], body["category"]) == ("error", "INVALID_AUTHENTICATION")
    assert body["message"].startswith("Authentication credentials not found") and body["correlationId"]
    with httpx.Client(base_url=hubspot_sandbox.url) as anonymous:
        assert anonymous.post("/crm/v3/objects/contacts/search", json={}).status_code == 401
    ok = client(hubspot_sandbox.url).crm.contacts.basic_api.get_page_with_http_info(_request_timeout=TIMEOUT)
    assert ok[2]["X-HubSpot-RateLimit-Daily-Remaining"] == str(250_000 - 1), "401s consume no quota"


def test_another_private_apps_token_works_once_the_portal_has_it_and_the_stats_tell_the_two_apart(
    hubspot_sandbox: Served,
) -> None:
    second = "pat-na1-second-app-0c4d"
    with pytest.raises(UnauthorizedException):
        client(hubspot_sandbox.url, token=second).crm.contacts.basic_api.get_page(_request_timeout=TIMEOUT)
    hubspot_sandbox.control.configure(more_tokens=[second])
    hubspot_sandbox.control.clear_stats()

    for token in (second, credentials.HUBSPOT_TOKEN):
        client(hubspot_sandbox.url, token=token).crm.contacts.basic_api.get_page(_request_timeout=TIMEOUT)

    holders = hubspot_sandbox.control.concurrency()["holders"]
    assert sorted(holders) == sorted([token_key(second), token_key(credentials.HUBSPOT_TOKEN)])
    assert second not in json.dumps(holders), "the stats name an instance by a digest of its token"


def test_the_ten_secondly_limit_answers_429_with_hubspots_body_and_headers(hubspot_sandbox: Served) -> None:
    hubspot_sandbox.control.configure(ten_secondly_limit=5)
    basic = client(hubspot_sandbox.url).crm.contacts.basic_api
    remaining = []
    for _ in range(5):
        _, _, headers = basic.get_page_with_http_info(limit=1, _request_timeout=TIMEOUT)
        assert headers["X-HubSpot-RateLimit-Max"] == "5"
        assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        remaining.append(int(headers["X-HubSpot-RateLimit-Remaining"]))
    assert remaining == [4, 3, 2, 1, 0]
    with pytest.raises(ApiException) as raised:
        basic.get_by_id("1001", _request_timeout=TIMEOUT)
    assert raised.value.status == 429
    body = body_of(raised.value)
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert (body["status"], body["errorType"], body["policyName"]) == (
        "error",
        "RATE_LIMIT",
        "TEN_SECONDLY_ROLLING",
    )
    assert body["groupName"].startswith("publicapi:private-app-api-calls-ten-secondly:")
    assert raised.value.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert "Retry-After" not in raised.value.headers, "HubSpot documents no Retry-After"
    daily_left = raised.value.headers["X-HubSpot-RateLimit-Daily-Remaining"]
    with pytest.raises(ApiException):
        basic.get_by_id("1001", _request_timeout=TIMEOUT)
    assert daily_left == str(250_000 - 5), "refused calls consume nothing"
    search = client(hubspot_sandbox.url).crm.contacts.search_api
    assert search.do_search(PublicObjectSearchRequest(limit=1), _request_timeout=TIMEOUT).total == 300, (
        "search is exempt from the ten-secondly limit"
    )


def test_retry_after_is_sent_on_429_when_switched_on(hubspot_sandbox: Served) -> None:
    hubspot_sandbox.control.configure(ten_secondly_limit=1, send_retry_after=True)
    batch = client(hubspot_sandbox.url).crm.contacts.batch_api
    read = BatchReadInputSimplePublicObjectId(inputs=[SimplePublicObjectId(id="1001")], properties=["email"])
    batch.read(read, _request_timeout=TIMEOUT)
    # A POST: urllib3's default policy would silently retry a GET that carries Retry-After.
    with pytest.raises(ApiException) as raised:
        batch.read(read, _request_timeout=TIMEOUT)
    assert 1 <= int(raised.value.headers["Retry-After"]) <= 10


def test_search_has_its_own_secondly_limit_and_no_rate_limit_headers(hubspot_sandbox: Served) -> None:
    search = client(hubspot_sandbox.url).crm.contacts.search_api
    answered = []
    for _ in range(5):
        _, status, headers = search.do_search_with_http_info(
            PublicObjectSearchRequest(limit=1), _request_timeout=TIMEOUT
        )
        answered.append(status)
        assert "X-HubSpot-RateLimit-Remaining" not in headers
    with pytest.raises(ApiException) as raised:
        search.do_search(PublicObjectSearchRequest(limit=1), _request_timeout=TIMEOUT)
    assert answered == [200] * 5 and raised.value.status == 429
    body = body_of(raised.value)
    assert body["message"] == "You have reached your secondly limit."
    assert (body["policyName"], body["errorType"]) == ("SECONDLY", "RATE_LIMIT")
    time.sleep(1.05)
    assert search.do_search(PublicObjectSearchRequest(limit=1), _request_timeout=TIMEOUT).total == 300


def test_the_daily_limit_answers_429_with_policy_daily(hubspot_sandbox: Served) -> None:
    hubspot_sandbox.control.configure(daily_limit=3)
    basic = client(hubspot_sandbox.url).crm.contacts.basic_api
    left = [
        basic.get_page_with_http_info(_request_timeout=TIMEOUT)[2]["X-HubSpot-RateLimit-Daily-Remaining"]
        for _ in range(3)
    ]
    assert left == ["2", "1", "0"]
    with pytest.raises(ApiException) as raised:
        basic.get_page(_request_timeout=TIMEOUT)
    body = body_of(raised.value)
    assert raised.value.status == 429 and raised.value.headers["X-HubSpot-RateLimit-Daily"] == "3"
    assert (body["policyName"], body["message"]) == ("DAILY", "You have reached your daily limit.")
    with pytest.raises(ApiException) as search_refused:
        client(hubspot_sandbox.url).crm.contacts.search_api.do_search(
            PublicObjectSearchRequest(), _request_timeout=TIMEOUT
        )
    assert body_of(search_refused.value)["policyName"] == "DAILY", "search counts against the daily limit"


def test_an_unrealistic_emulator_has_no_limits() -> None:
    relaxed = HubSpotEmulator(contacts=3, seed=1, realistic=False)
    assert relaxed.limits.ten_secondly is None and relaxed.limits.secondly is None
    assert relaxed.limits.daily_limit is None


def test_server_errors_hit_the_same_calls_for_the_same_seed(hubspot_sandbox: Served) -> None:
    def statuses() -> list[int]:
        hubspot_sandbox.control.reset(contacts=300, seed=7)
        hubspot_sandbox.control.configure(server_error_share=0.3, ten_secondly_limit=None)
        with httpx.Client(base_url=hubspot_sandbox.url, headers=AUTH) as http:
            return [http.get("/crm/v3/objects/contacts/1001").status_code for _ in range(30)]

    first = statuses()
    assert first == statuses()
    assert {502, 503} & set(first) and 200 in first


def test_latency_makes_a_short_request_timeout_fire(hubspot_sandbox: Served) -> None:
    hubspot_sandbox.control.configure(latency_ms=400)
    read = BatchReadInputSimplePublicObjectId(inputs=[SimplePublicObjectId(id="1001")], properties=["email"])
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):  # a POST, so urllib3 does not retry it
        client(hubspot_sandbox.url).crm.contacts.batch_api.read(read, _request_timeout=(1, 0.1))
    assert time.monotonic() - started < 0.35


def test_stats_count_calls_by_the_real_route_template(hubspot_sandbox: Served) -> None:
    basic = client(hubspot_sandbox.url).crm.contacts.basic_api
    basic.get_by_id("1001", _request_timeout=TIMEOUT)
    basic.get_by_id("1002", _request_timeout=TIMEOUT)
    with pytest.raises(ApiException):
        basic.get_by_id("424242", _request_timeout=TIMEOUT)
    client(hubspot_sandbox.url).crm.contacts.search_api.do_search(
        PublicObjectSearchRequest(), _request_timeout=TIMEOUT
    )
    count = hubspot_sandbox.control.count
    assert count(method="GET", route="/crm/v3/objects/contacts/{contactId}", status=200) == 2
    assert count(method="GET", route="/crm/v3/objects/contacts/{contactId}", status=404) == 1
    assert count(method="POST", route="/crm/v3/objects/contacts/search") == 1


def test_unknown_paths_and_malformed_json_get_hubspot_shaped_errors(hubspot_sandbox: Served) -> None:
    with httpx.Client(base_url=hubspot_sandbox.url, headers=AUTH) as http:
        missing = http.get("/crm/v3/objects/widgets/1/things")
        assert missing.status_code == 404 and missing.json()["status"] == "error"
        assert missing.json()["correlationId"]
        broken = http.post(
            "/crm/v3/objects/contacts/search",
            content=b'{"filterGroups": [',
            headers={"Content-Type": "application/json"},
        )
        assert broken.status_code == 400
        assert broken.json()["message"].startswith("Invalid input JSON on line 1, column 19")


def test_the_same_seed_gives_the_same_contacts_and_another_seed_does_not() -> None:
    def snapshot(seed: int) -> dict[int, dict[str, str]]:
        store = HubSpotEmulator(contacts=400, seed=seed).contacts_store
        return {record.id: record.properties for record in store.live.values()}

    first = snapshot(11)
    assert first == snapshot(11)
    assert first != snapshot(12)
    assert sorted(first) == list(range(1001, 1401))
    emails = [p["email"].lower() for p in first.values() if "email" in p]
    assert len(emails) == len(set(emails)), "one contact per email, as HubSpot enforces"
    assert any("lastname" not in p for p in first.values()), "some contacts miss a last name"
