"""Our LoneScale client against the emulator: what it sends, what it understands, what it says when refused."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connector.errors import AuthError, QuotaExhausted, RateLimited, RequestRejected, RetriableError
from connector.lonescale import LoneScaleClient, Refused, StartedWithoutId, TriggerUncertain, parse_payload
from connector.models import Contact, ContactCustom, EnrichmentType
from connector.redact import Secret
from connector.retry import call_with_retry
from connector.sandbox import credentials
from connector.sandbox.kit import ServedApp
from tests.conftest import Served

CONTACTS = [
    Contact(firstname="Zoë", lastname="Lefèvre", domain="acme.fr", custom=ContactCustom(contact_id="003A")),
    Contact(
        firstname="John", lastname="Doe", email="john@globex.com", custom=ContactCustom(contact_id="003B")
    ),
]
HOOK = "http://127.0.0.1:9/never-called"


@pytest.fixture
def client(lonescale_sandbox: Served) -> Iterator[LoneScaleClient]:
    lonescale_sandbox.control.configure(webhook_delay_seconds=0.0, delivery_max_attempts=1)
    made = LoneScaleClient(lonescale_sandbox.url, Secret(credentials.LONESCALE_API_KEY), timeout=5)
    yield made
    made.close()


def test_a_trigger_returns_the_job_id_and_polling_returns_its_results(
    client: LoneScaleClient, lonescale_sandbox: Served
) -> None:
    # The CLI trace's polling route, and results that carry each contact's `custom`: kind readings, by name.
    lonescale_sandbox.control.configure(run_route="served", echo_custom=True)
    job_id = client.trigger(CONTACTS, [EnrichmentType.EMAIL, EnrichmentType.PROFILE], HOOK)
    deadline = time.monotonic() + 10
    run = client.run(job_id)
    while run.status != "finished" and time.monotonic() < deadline:
        time.sleep(0.05)
        run = client.run(job_id)
    assert run.status == "finished"
    results = parse_payload({"contacts": run.contacts}).results
    assert sorted(r.contact_id for r in results if r.contact_id) == ["003A", "003B"]


@pytest.mark.parametrize(
    ("route", "status", "words"),
    [("not_found", 404, "Cannot GET /trigger/run/"), ("forbidden", 403, "Forbidden resource")],
)
def test_a_refused_poll_is_the_routes_own_answer_not_an_empty_balance(
    client: LoneScaleClient, lonescale_sandbox: Served, route: str, status: int, words: str
) -> None:
    lonescale_sandbox.control.configure(run_route=route)
    job_id = client.trigger(CONTACTS, [EnrichmentType.EMAIL], HOOK)

    with pytest.raises(Refused) as refused:
        client.run(job_id)

    assert refused.value.status == status and words in refused.value.answer
    assert str(refused.value).startswith(f"LoneScale refused the run status ({status} ")


def test_the_plain_string_start_is_a_job_started_without_an_id_not_an_id(
    client: LoneScaleClient, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(start_response="string")
    with pytest.raises(StartedWithoutId, match="without a job id: 'Enrichment started for 2 contacts'"):
        client.trigger(CONTACTS, [EnrichmentType.EMAIL], HOOK)
    assert len(lonescale_sandbox.control.admin("jobs")["jobs"]) == 1, "LoneScale did start it"


def test_a_200_without_an_id_is_a_job_started_without_an_id(
    client: LoneScaleClient, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(trigger_fault="no_id")
    with pytest.raises(StartedWithoutId, match="without a job id"):
        client.trigger(CONTACTS, [EnrichmentType.EMAIL], HOOK)


@pytest.mark.parametrize("fault", ["gateway_timeout", "reset"])
def test_an_answer_lost_after_the_body_was_sent_is_uncertain_and_never_retried(
    lonescale_sandbox: Served, fault: str
) -> None:
    lonescale_sandbox.control.configure(trigger_fault=fault, webhook_delay_seconds=60)
    client = LoneScaleClient(lonescale_sandbox.url, Secret(credentials.LONESCALE_API_KEY), timeout=5)
    naps: list[float] = []
    with pytest.raises(TriggerUncertain) as lost:
        call_with_retry(
            lambda: client.trigger(CONTACTS, [EnrichmentType.EMAIL], HOOK), what="t", sleep=naps.append
        )
    client.close()
    assert not isinstance(lost.value, StartedWithoutId)
    assert naps == [] and lonescale_sandbox.control.count(route="/trigger/enrich") == 1
    if fault == "gateway_timeout":  # the gateway's HTML page, in words
        assert "504 (504 Gateway Time-out 504 Gateway Time-out)" in str(lost.value)


def test_a_redirect_is_uncertain_and_says_where_it_points() -> None:
    async def moved(request: Request) -> Response:  # e.g. an http:// base URL sent on to https
        return Response(
            status_code=301, headers={"location": "https://public-api.lonescale.com/trigger/enrich"}
        )

    server = ServedApp(Starlette(routes=[Route("/trigger/enrich", moved, methods=["POST"])]), name="moved")
    client = LoneScaleClient(server.start(), Secret(credentials.LONESCALE_API_KEY), timeout=5)
    try:
        with pytest.raises(TriggerUncertain, match=r"301 to https://public-api\.lonescale\.com/") as lost:
            client.trigger(CONTACTS, [EnrichmentType.EMAIL], HOOK)
    finally:
        client.close()
        server.stop()
    assert not isinstance(lost.value, StartedWithoutId), "a redirect is not a job LoneScale took"


def test_a_trigger_that_never_reached_lonescale_is_retried() -> None:
    with socket.socket() as closed:  # a port nothing listens on: every connect is refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    client = LoneScaleClient(f"http://127.0.0.1:{port}", Secret(credentials.LONESCALE_API_KEY), timeout=5)
    naps: list[float] = []
    with pytest.raises(RetriableError, match="cannot reach LoneScale: ConnectError"):
        call_with_retry(
            lambda: client.trigger(CONTACTS, [EnrichmentType.EMAIL], HOOK), what="t", sleep=naps.append
        )
    client.close()
    assert len(naps) == client.retry_policy.attempts - 1


def test_credits_are_read_from_the_user_array(client: LoneScaleClient) -> None:
    credits = client.credits()
    assert credits.enrichment == 10_000 and credits.contact == 1_000


def test_a_wrong_key_says_where_the_key_comes_from(lonescale_sandbox: Served) -> None:
    wrong = LoneScaleClient(lonescale_sandbox.url, Secret("ls_wrong_key"), timeout=5)
    with pytest.raises(AuthError, match=r"refused the API key \(Invalid API Key\).*lonescale.api_key_env"):
        wrong.credits()
    wrong.close()


def test_no_credits_is_a_stop_not_a_retry(client: LoneScaleClient, lonescale_sandbox: Served) -> None:
    lonescale_sandbox.control.admin_post("credits", {"enrichment_credits": 0})
    with pytest.raises(QuotaExhausted, match="User has no enrichment credits"):
        client.trigger(CONTACTS, [EnrichmentType.EMAIL], HOOK)


def test_a_rate_limit_carries_a_wait(client: LoneScaleClient, lonescale_sandbox: Served) -> None:
    lonescale_sandbox.control.configure(rate_limit_per_minute=1)
    client.credits()
    with pytest.raises(RateLimited, match="Too Many Requests") as limited:
        client.credits()
    assert limited.value.retry_after == 60.0


def test_a_request_the_schema_refuses_is_a_rejection_with_its_status(client: LoneScaleClient) -> None:
    with pytest.raises(RequestRejected, match="does not fit its schema") as refused:
        client.trigger(CONTACTS, [EnrichmentType.EMAIL], "not a uri")
    assert refused.value.status == 400


def test_a_refusal_carries_lonescales_own_words(client: LoneScaleClient, lonescale_sandbox: Served) -> None:
    lonescale_sandbox.control.configure(refuse_all_with="webhook_url must be a URL address")
    with pytest.raises(Refused) as refused:
        client.trigger(CONTACTS, [EnrichmentType.EMAIL], HOOK)
    assert (refused.value.status, refused.value.answer) == (400, "webhook_url must be a URL address")
