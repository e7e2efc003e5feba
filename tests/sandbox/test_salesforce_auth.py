"""Salesforce emulator: both login flows, token expiry and re-login, API usage and the daily limit.

Also the shared ways to build a real simple-salesforce client against the emulator, imported by the other
test_salesforce_* modules.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import jwt
import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from simple_salesforce.util import Usage

from connector.adapters.salesforce_session import build_session
from connector.sandbox import credentials
from tests.conftest import Served

MY_DOMAIN = "acme.my"
TOKEN_ROUTE = "/services/oauth2/token"
QUERY_ROUTE = "/services/data/{version}/query"


def sandbox_session(served: Served) -> requests.Session:
    """The login flows post to https://acme.my.salesforce.com; the token's instance_url is the emulator itself."""
    return build_session(
        served.url, reroute={f"{MY_DOMAIN}.salesforce.com": served.url.removeprefix("http://")}
    )


def client(
    served: Served,
    secret: str = credentials.SALESFORCE_CLIENT_SECRET,
    client_id: str = credentials.SALESFORCE_CLIENT_ID,
) -> Salesforce:
    return Salesforce(
        consumer_key=client_id,
        consumer_secret=secret,
        domain=MY_DOMAIN,
        session=sandbox_session(served),
    )


def jwt_client(
    served: Served,
    key_path: str,
    username: str = credentials.SALESFORCE_USERNAME,
    audience: str = "login",
    client_id: str = credentials.SALESFORCE_CLIENT_ID,
) -> Salesforce:
    """simple-salesforce signs `aud = https://{domain}.salesforce.com` and posts to `instance_url` when given
    (login.py): the login audience, posted to the My Domain host."""
    return Salesforce(
        username=username,
        consumer_key=client_id,
        privatekey_file=key_path,
        domain=audience,
        instance_url=MY_DOMAIN,
        session=sandbox_session(served),
    )


def signed_assertion(key_path: str, audience: str) -> str:
    claims = {
        "iss": credentials.SALESFORCE_CLIENT_ID,
        "sub": credentials.SALESFORCE_USERNAME,
        "aud": audience,
        "exp": int(time.time()) + 180,
    }
    return jwt.encode(claims, Path(key_path).read_bytes(), algorithm="RS256")


def access_token(served: Served) -> str:
    response = requests.post(
        f"{served.url}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": credentials.SALESFORCE_CLIENT_ID,
            "client_secret": credentials.SALESFORCE_CLIENT_SECRET,
        },
        timeout=10,
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def test_client_credentials_login_hands_the_library_the_emulator_as_its_instance(
    salesforce_sandbox: Served,
) -> None:
    sf = client(salesforce_sandbox)

    assert sf.sf_instance == salesforce_sandbox.url.removeprefix("http://")
    assert sf.query("SELECT Id FROM Contact LIMIT 1")["totalSize"] == 1
    assert salesforce_sandbox.control.count(method="POST", route=TOKEN_ROUTE, status=200) == 1


def test_token_response_has_every_field_and_client_id_may_come_in_the_form(
    salesforce_sandbox: Served,
) -> None:
    response = requests.post(
        f"{salesforce_sandbox.url}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": credentials.SALESFORCE_CLIENT_ID,
            "client_secret": credentials.SALESFORCE_CLIENT_SECRET,
        },
        timeout=10,
    )

    body = response.json()
    assert response.status_code == 200
    assert set(body) == {
        "access_token",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
        "signature",
        "scope",
    }
    assert body["token_type"] == "Bearer"
    assert body["instance_url"] == salesforce_sandbox.url
    assert body["access_token"].startswith("00D")


def test_instance_url_can_be_set_by_behaviour(salesforce_sandbox: Served) -> None:
    salesforce_sandbox.control.configure(instance_url="https://acme.my.salesforce.com")

    sf = client(salesforce_sandbox)

    assert sf.sf_instance == "acme.my.salesforce.com"
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] > 0


def test_a_wrong_client_secret_is_refused_with_an_oauth_error_object(salesforce_sandbox: Served) -> None:
    with pytest.raises(SalesforceAuthenticationFailed) as refused:
        client(salesforce_sandbox, secret="not-the-secret")

    assert refused.value.code == "invalid_client"
    assert salesforce_sandbox.control.count(route=TOKEN_ROUTE, status=400) == 1


def test_jwt_bearer_login_verifies_the_assertion_signed_by_the_library(
    salesforce_sandbox: Served, jwt_private_key_path: tuple[str, bytes]
) -> None:
    sf = jwt_client(salesforce_sandbox, jwt_private_key_path[0])

    assert sf.auth_type == "jwt-bearer"
    assert sf.query("SELECT Id FROM Lead LIMIT 2")["totalSize"] == 2


def test_the_test_audience_of_sandbox_orgs_is_accepted_too(
    salesforce_sandbox: Served, jwt_private_key_path: tuple[str, bytes]
) -> None:
    sf = jwt_client(salesforce_sandbox, jwt_private_key_path[0], audience="test")

    assert sf.query("SELECT Id FROM Contact LIMIT 1")["totalSize"] == 1


def test_a_jwt_whose_audience_is_the_my_domain_host_is_refused_as_salesforce_refuses_it(
    salesforce_sandbox: Served, jwt_private_key_path: tuple[str, bytes]
) -> None:
    with pytest.raises(SalesforceAuthenticationFailed) as refused:
        jwt_client(salesforce_sandbox, jwt_private_key_path[0], audience=MY_DOMAIN)  # aud: acme.my host

    assert (refused.value.code, refused.value.content) == ("invalid_grant", b"audience is invalid")
    assert salesforce_sandbox.control.count(route=TOKEN_ROUTE, status=400) == 1


def test_an_experience_cloud_site_is_an_audience_only_in_an_org_that_has_that_site(
    salesforce_sandbox: Served, jwt_private_key_path: tuple[str, bytes]
) -> None:
    site = "https://acme.my.site.com/partners"

    def token_answer() -> httpx.Response:
        form = {"grant_type": oauth_jwt_grant(), "assertion": signed_assertion(jwt_private_key_path[0], site)}
        return httpx.post(f"{salesforce_sandbox.url}{TOKEN_ROUTE}", data=form)

    refused = token_answer()
    salesforce_sandbox.control.configure(experience_cloud_sites=[site])
    accepted = token_answer()

    assert (refused.status_code, refused.json()) == (
        400,
        {"error": "invalid_grant", "error_description": "audience is invalid"},
    )
    assert accepted.status_code == 200 and accepted.json()["access_token"]


def oauth_jwt_grant() -> str:
    return "urn:ietf:params:oauth:grant-type:jwt-bearer"


def test_another_connected_app_logs_in_once_the_org_has_it_and_its_calls_are_told_from_the_first_apps(
    salesforce_sandbox: Served, jwt_private_key_path: tuple[str, bytes]
) -> None:
    second, secret = "3MVG9sandbox.second.app", "second-app-secret-77a0"
    with pytest.raises(SalesforceAuthenticationFailed) as refused:
        client(salesforce_sandbox, secret=secret, client_id=second)
    assert refused.value.code == "invalid_client_id"
    salesforce_sandbox.control.configure(more_connected_apps={second: secret})
    with pytest.raises(SalesforceAuthenticationFailed) as refused:
        client(salesforce_sandbox, client_id=second)  # the first app's secret
    assert refused.value.code == "invalid_client"
    salesforce_sandbox.control.clear_stats()

    for sf in (
        client(salesforce_sandbox, secret=secret, client_id=second),
        jwt_client(
            salesforce_sandbox, jwt_private_key_path[0], client_id=second
        ),  # the org's one certificate
        client(salesforce_sandbox),
    ):
        assert sf.query("SELECT Id FROM Contact LIMIT 1")["totalSize"] == 1

    holders = salesforce_sandbox.control.concurrency()["holders"]
    assert sorted(holders) == sorted([second, credentials.SALESFORCE_CLIENT_ID]), "logins are no app's calls"


def test_jwt_signed_with_another_key_is_refused(salesforce_sandbox: Served, tmp_path: Path) -> None:
    other_key, _ = credentials.write_jwt_keypair(tmp_path)

    with pytest.raises(SalesforceAuthenticationFailed) as refused:
        jwt_client(salesforce_sandbox, str(other_key))

    assert refused.value.code == "invalid_grant"


def test_jwt_for_an_unknown_user_is_refused(
    salesforce_sandbox: Served, jwt_private_key_path: tuple[str, bytes]
) -> None:
    with pytest.raises(SalesforceAuthenticationFailed) as refused, pytest.warns(UserWarning):
        jwt_client(salesforce_sandbox, jwt_private_key_path[0], username="someone@else.example")

    assert refused.value.code == "invalid_grant"


def test_expired_tokens_make_the_library_log_in_again_and_retry(salesforce_sandbox: Served) -> None:
    sf = client(salesforce_sandbox)
    salesforce_sandbox.control.configure(expire_tokens=True)

    result = sf.query("SELECT Id FROM Contact LIMIT 5")

    assert result["totalSize"] == 5
    control = salesforce_sandbox.control
    assert control.count(route=QUERY_ROUTE, status=401) == 1
    assert control.count(route=QUERY_ROUTE, status=200) == 1
    assert control.count(route=TOKEN_ROUTE, status=200) == 2
    assert control.configure()["expire_tokens"] is False  # an action, not a state: the new token works


def test_tokens_expire_after_their_time_to_live(salesforce_sandbox: Served) -> None:
    salesforce_sandbox.control.configure(token_ttl_seconds=0.3)
    sf = client(salesforce_sandbox)
    contacts = sf.Contact  # SFType retries 401s without limit (issue #804): the fresh token must work
    record_id = sf.query("SELECT Id FROM Contact LIMIT 1")["records"][0]["Id"]
    time.sleep(0.4)

    assert contacts.get(record_id)["Id"] == record_id
    assert salesforce_sandbox.control.count(route=TOKEN_ROUTE) == 2


def test_an_expired_direct_session_raises_with_the_error_list(salesforce_sandbox: Served) -> None:
    token = access_token(salesforce_sandbox)
    sf = Salesforce(
        instance_url=salesforce_sandbox.url, session_id=token, session=sandbox_session(salesforce_sandbox)
    )
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 300
    salesforce_sandbox.control.configure(expire_tokens=True)

    with pytest.raises(SalesforceExpiredSession) as expired:
        sf.query("SELECT COUNT() FROM Contact")

    assert expired.value.content == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]


def test_a_request_without_a_token_gets_a_401_list_body(salesforce_sandbox: Served) -> None:
    response = requests.get(f"{salesforce_sandbox.url}/services/data/v59.0/limits/", timeout=10)

    assert response.status_code == 401
    assert response.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    assert response.headers["WWW-Authenticate"] == "Token"


def test_api_usage_is_parsed_from_sforce_limit_info_and_logins_do_not_count(
    salesforce_sandbox: Served,
) -> None:
    sf = client(salesforce_sandbox)
    for _ in range(3):
        sf.query("SELECT Id FROM Account LIMIT 1")

    assert sf.api_usage["api-usage"] == Usage(3, 100_000)
    assert sf.limits()["DailyApiRequests"] == {"Max": 100_000, "Remaining": 100_000 - 4}


def test_past_the_daily_limit_calls_are_refused_with_request_limit_exceeded(
    salesforce_sandbox: Served,
) -> None:
    salesforce_sandbox.control.configure(daily_api_limit=3)
    sf = client(salesforce_sandbox)
    for _ in range(3):
        sf.query("SELECT Id FROM Account LIMIT 1")

    with pytest.raises(SalesforceRefusedRequest) as refused:
        sf.query("SELECT Id FROM Account LIMIT 1")

    assert refused.value.content == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    assert salesforce_sandbox.control.count(route=QUERY_ROUTE, status=403) == 1


@pytest.mark.parametrize(
    ("knob", "message"),
    [
        ("concurrent_request_refusals", "ConcurrentRequests (Concurrent API Requests) Limit exceeded."),
        ("long_transaction_refusals", "ConcurrentPerOrgLongTxn Limit exceeded"),
    ],
)
def test_concurrency_limits_refuse_with_the_daily_caps_error_code_and_then_clear(
    salesforce_sandbox: Served, knob: str, message: str
) -> None:
    sf = client(salesforce_sandbox)
    salesforce_sandbox.control.configure(**{knob: 1})

    with pytest.raises(SalesforceRefusedRequest) as refused:
        sf.query("SELECT Id FROM Account LIMIT 1")

    assert refused.value.content == [{"message": message, "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert sf.query("SELECT Id FROM Account LIMIT 1")["totalSize"] == 1
    assert sf.limits()["DailyApiRequests"]["Remaining"] == 100_000 - 2, "a refused call is not counted"


def test_server_errors_hit_the_same_calls_for_the_same_seed(salesforce_sandbox: Served) -> None:
    def outcomes() -> list[int]:
        salesforce_sandbox.control.reset(contacts=300, seed=7)
        salesforce_sandbox.control.configure(server_error_share=0.4)
        sf = client(salesforce_sandbox)
        statuses = []
        for _ in range(20):
            try:
                sf.query("SELECT Id FROM Account LIMIT 1")
                statuses.append(200)
            except SalesforceGeneralError as error:
                assert error.content[0]["errorCode"] == "SERVER_UNAVAILABLE"
                statuses.append(error.status)
        return statuses

    first = outcomes()

    assert first == outcomes()
    assert 200 in first
    assert 503 in first


def test_an_unsupported_api_version_is_not_found(salesforce_sandbox: Served) -> None:
    token = access_token(salesforce_sandbox)
    sf = Salesforce(
        instance_url=salesforce_sandbox.url,
        session_id=token,
        session=sandbox_session(salesforce_sandbox),
        version="99.0",
    )

    with pytest.raises(SalesforceResourceNotFound) as missing:
        sf.query("SELECT Id FROM Contact")

    assert missing.value.content[0]["errorCode"] == "NOT_FOUND"
