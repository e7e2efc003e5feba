"""Webhook deliveries from the LoneScale emulator, received by a real local server: shapes, order, duplicates,
retries with backoff, giving up, timeouts, and reset cancelling what is pending."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connector.sandbox.kit import ServedApp
from tests.conftest import Served

CONTACTS: list[dict[str, Any]] = [
    {
        "firstname": "John",
        "lastname": "Doe",
        "email": "john@acme.com",
        "domain": "acme.com",
        "custom": {"contact_id": "003A"},
    },
    {
        "firstname": "Emma",
        "lastname": "Martin",
        "linkedin_url": "https://www.linkedin.com/in/emma-martin-42/",
        "company_name": "Globex",
        "custom": {"contact_id": "003B"},
    },
    {"firstname": "Liam", "lastname": "Dubois", "domain": "initech.fr", "custom": {"contact_id": "003C"}},
    {"firstname": "Zoë", "lastname": "Müller", "email": "zoe@hooli.de", "custom": {"contact_id": "003D"}},
]
ALL_TYPES = ["email", "phone", "profile"]


@dataclass
class Received:
    name: str
    query: str
    content_type: str
    body: Any
    at: float


@dataclass
class Receiver:
    """A webhook endpoint per name, answering scripted statuses (the last one repeats) after an optional stall."""

    base_url: str = ""
    received: list[Received] = field(default_factory=list)
    scripts: dict[str, list[int]] = field(default_factory=dict)
    stalls: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def hook(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = json.loads(await request.body())
        with self.lock:
            self.received.append(
                Received(name, request.url.query, request.headers["content-type"], body, time.monotonic())
            )
            script = self.scripts.get(name, [204])
            status = script.pop(0) if len(script) > 1 else script[0]
        await asyncio.sleep(self.stalls.get(name, 0.0))
        return Response(status_code=status)

    def url(self, name: str) -> str:
        return f"{self.base_url}/hooks/{name}?token=job-token-{name}"

    def bodies(self, name: str) -> list[Any]:
        with self.lock:
            return [r.body for r in self.received if r.name == name]

    def clear(self) -> None:
        with self.lock:
            self.received.clear()
            self.scripts.clear()
            self.stalls.clear()


@pytest.fixture(scope="module")
def _receiver_server() -> Iterator[Receiver]:
    receiver = Receiver()
    server = ServedApp(
        Starlette(routes=[Route("/hooks/{name}", receiver.hook, methods=["POST"])]), name="rcv"
    )
    receiver.base_url = server.start()
    yield receiver
    server.stop()


@pytest.fixture
def receiver(_receiver_server: Receiver) -> Receiver:
    _receiver_server.clear()
    return _receiver_server


@pytest.fixture
def api(lonescale_sandbox: Served, _client: httpx.Client) -> httpx.Client:
    lonescale_sandbox.control.configure(
        webhook_delay_seconds=0,
        delivery_backoff_seconds=0.02,
        receiver_timeout_seconds=2,
        not_found_share=0,
        run_route="served",  # these tests poll: the route as the CLI trace shows it, turned on by name
        # The kind readings these tests of the delivery machinery rely on, named: each result carries its
        # contact's `custom` (the tests tell results apart by it), and a failed delivery is retried.
        echo_custom=True,
        delivery_max_attempts=5,
    )
    return _client


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout} s")


def start(
    api: httpx.Client, webhook_url: str, contacts: list[dict[str, Any]] | None = None, **extra: Any
) -> str:
    body = {
        "enrichment_type": ALL_TYPES,
        "contacts": contacts or CONTACTS,
        "webhook_url": webhook_url,
        **extra,
    }
    response = api.post("/trigger/enrich", json=body)
    assert response.status_code == 200, response.text
    job_id: str = response.json()["id"]
    return job_id


def settled_log(api: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    """The job's delivery attempts once no delivery task is left running."""
    wait_until(lambda: api.get("/__sandbox/deliveries").json()["pending_tasks"] == 0)
    log: list[dict[str, Any]] = api.get("/__sandbox/deliveries", params={"job_id": job_id}).json()[
        "deliveries"
    ]
    return log


def contact_ids(bodies: list[dict[str, Any]]) -> list[str]:
    return [body["custom"]["contact_id"] for body in bodies]


def test_by_default_results_carry_no_custom_and_a_failed_delivery_is_not_retried(
    lonescale_sandbox: Served, _client: httpx.Client, receiver: Receiver
) -> None:
    """The unkind readings of what the docs leave open: the EnrichPayload documents no `custom`, and nothing
    documents a retry."""
    lonescale_sandbox.control.configure(webhook_delay_seconds=0, not_found_share=0)
    receiver.scripts["once"] = [503]

    log = settled_log(_client, start(_client, receiver.url("once"), contacts=CONTACTS[:1]))
    quiet = settled_log(_client, start(_client, receiver.url("plain")))

    assert [(e["attempt"], e["status"], e["outcome"]) for e in log] == [(1, 503, "gave_up")]
    assert [e["outcome"] for e in quiet] == ["delivered"] * len(CONTACTS)
    assert receiver.bodies("plain") and not any("custom" in body for body in receiver.bodies("plain"))


def test_per_contact_delivery_posts_one_bare_payload_per_contact(
    api: httpx.Client, receiver: Receiver
) -> None:
    job_id = start(api, receiver.url("a"))
    log = settled_log(api, job_id)

    bodies = receiver.bodies("a")
    assert sorted(contact_ids(bodies)) == ["003A", "003B", "003C", "003D"]
    assert all("contacts" not in body and "fullName" in body for body in bodies)
    assert all(
        r.query == "token=job-token-a" and r.content_type == "application/json" for r in receiver.received
    )
    assert [(e["attempt"], e["status"], e["outcome"]) for e in log] == [(1, 204, "delivered")] * 4


def test_the_polled_result_holds_the_same_items_as_the_webhooks(
    api: httpx.Client, receiver: Receiver
) -> None:
    job_id = start(api, receiver.url("a"), detect_job_change=True)
    settled_log(api, job_id)

    polled = api.get(f"/trigger/run/{job_id}").json()

    assert polled["status"] == "finished"
    assert polled["contacts"] == receiver.bodies("a")


def test_per_job_delivery_posts_one_envelope_with_every_contact(
    api: httpx.Client, lonescale_sandbox: Served, receiver: Receiver
) -> None:
    lonescale_sandbox.control.configure(delivery="per_job")

    job_id = start(api, receiver.url("job"), custom={"id": "run-42", "provider": "lonescale"})
    settled_log(api, job_id)

    [body] = receiver.bodies("job")
    assert set(body) == {"id", "status", "contacts"}, "the request's custom is not echoed by default"
    assert (body["id"], body["status"]) == (job_id, "finished")
    assert contact_ids(body["contacts"]) == ["003A", "003B", "003C", "003D"]


def test_the_request_custom_is_echoed_at_a_per_job_envelope_only_when_asked_and_kept_as_received(
    api: httpx.Client, lonescale_sandbox: Served, receiver: Receiver
) -> None:
    custom = {"id": "run-42", "provider": "lonescale", "enrichment_type": "phone", "batch": "b-7"}
    lonescale_sandbox.control.configure(delivery="per_job", echo_request_custom=True)
    job_id = start(api, receiver.url("job"), custom=custom)
    lonescale_sandbox.control.configure(delivery="per_contact")
    single = start(api, receiver.url("single"), contacts=CONTACTS[:1], custom=custom)
    settled_log(api, job_id), settled_log(api, single)

    [body] = receiver.bodies("job")
    assert body["custom"] == custom
    assert contact_ids(body["contacts"]) == ["003A", "003B", "003C", "003D"], "each contact's own, unchanged"
    [alone] = receiver.bodies("single")
    assert alone["custom"] == CONTACTS[0]["custom"], "a per-contact body carries the contact's custom only"
    received = {job["id"]: job["custom"] for job in api.get("/__sandbox/jobs").json()["jobs"]}
    assert received[job_id] == received[single] == custom


def test_legacy_casing_delivers_the_snake_case_most_probable_shape(
    api: httpx.Client, lonescale_sandbox: Served, receiver: Receiver
) -> None:
    lonescale_sandbox.control.configure(casing="legacy", email_miss_share=0, phone_miss_share=0)

    job_id = start(api, receiver.url("old"), detect_job_change=True)
    settled_log(api, job_id)

    bodies = receiver.bodies("old")
    assert len(bodies) == 4
    for body, contact in zip(sorted(bodies, key=lambda b: b["custom"]["contact_id"]), CONTACTS, strict=True):
        assert (body["firstname"], body["lastname"]) == (contact["firstname"], contact["lastname"])
        assert body["most_probable_email"] == body["emails"][0]["email"]
        assert body["most_probable_phone"].startswith("+")
        assert set(body["phones"][0]) == {
            "type",
            "number",
            "international_format",
            "country_name",
            "country_code",
            "region",
            "prefix",
        }
        assert set(body["profile"]["position"]["company"]) == {"name", "domain", "linkedin_url"}
        assert isinstance(body["job_change_detected"], bool)
        assert not {"firstName", "emailStatus", "phoneType", "jobChangeDetected"} & set(body)


def test_custom_is_echoed_on_each_result_only_when_echo_is_on(
    api: httpx.Client, lonescale_sandbox: Served, receiver: Receiver
) -> None:
    settled_log(api, start(api, receiver.url("echo")))
    lonescale_sandbox.control.configure(echo_custom=False)
    settled_log(api, start(api, receiver.url("quiet")))

    assert [body["custom"] for body in receiver.bodies("echo")] == [c["custom"] for c in CONTACTS]
    assert receiver.bodies("quiet") and not any("custom" in body for body in receiver.bodies("quiet"))


def test_a_contact_not_found_is_delivered_as_failed_with_its_custom(
    api: httpx.Client, lonescale_sandbox: Served, receiver: Receiver
) -> None:
    lonescale_sandbox.control.configure(not_found_share=1)

    settled_log(api, start(api, receiver.url("none")))

    assert receiver.bodies("none") == [{"status": "failed", "custom": c["custom"]} for c in CONTACTS]


def test_not_found_contacts_can_be_left_out_of_webhooks_and_polling(
    api: httpx.Client, lonescale_sandbox: Served, receiver: Receiver
) -> None:
    lonescale_sandbox.control.configure(not_found_share=1, deliver_not_found=False)

    job_id = start(api, receiver.url("none"))

    assert settled_log(api, job_id) == []
    assert receiver.bodies("none") == []
    assert api.get(f"/trigger/run/{job_id}").json() == {"status": "finished", "contacts": []}


def test_duplicate_deliveries_repeat_every_payload_after_the_originals(
    api: httpx.Client, lonescale_sandbox: Served, receiver: Receiver
) -> None:
    lonescale_sandbox.control.configure(duplicate_deliveries=2)

    log = settled_log(api, start(api, receiver.url("dup")))

    ids = contact_ids(receiver.bodies("dup"))
    assert ids[:4] == ["003A", "003B", "003C", "003D"]
    assert sorted(ids) == sorted(["003A", "003B", "003C", "003D"] * 3)
    assert [entry["duplicate"] for entry in log] == [False] * 4 + [True] * 8


def test_a_duplicate_share_picks_the_same_payloads_for_the_same_seed(
    api: httpx.Client, lonescale_sandbox: Served, receiver: Receiver
) -> None:
    contacts = [
        {"firstname": f"P{i}", "lastname": "Doe", "custom": {"contact_id": f"c{i}"}} for i in range(20)
    ]

    def duplicated_ids(name: str) -> list[str]:
        lonescale_sandbox.fresh()
        lonescale_sandbox.control.configure(
            webhook_delay_seconds=0, duplicate_deliveries=1, duplicate_share=0.5, echo_custom=True
        )
        settled_log(api, start(api, receiver.url(name), contacts=contacts))
        return contact_ids(receiver.bodies(name))[20:]

    first, second = duplicated_ids("one"), duplicated_ids("two")
    assert 0 < len(first) < 20
    assert first == second


def test_out_of_order_shuffles_deliveries_the_same_way_each_run(
    api: httpx.Client, lonescale_sandbox: Served, receiver: Receiver
) -> None:
    contacts: list[dict[str, Any]] = [
        {"firstname": f"P{i}", "lastname": "Doe", "custom": {"contact_id": f"c{i}"}} for i in range(8)
    ]

    def received_order(name: str) -> list[str]:
        lonescale_sandbox.fresh()
        lonescale_sandbox.control.configure(webhook_delay_seconds=0, out_of_order=True, echo_custom=True)
        settled_log(api, start(api, receiver.url(name), contacts=contacts))
        return contact_ids(receiver.bodies(name))

    first, second = received_order("one"), received_order("two")
    assert sorted(first) == sorted(c["custom"]["contact_id"] for c in contacts)
    assert first != [c["custom"]["contact_id"] for c in contacts]
    assert first == second


def test_a_receiver_answering_503_is_retried_with_exponential_backoff_until_delivered(
    api: httpx.Client, lonescale_sandbox: Served, receiver: Receiver
) -> None:
    lonescale_sandbox.control.configure(delivery_backoff_seconds=0.05)
    receiver.scripts["flaky"] = [503, 503, 200]

    log = settled_log(api, start(api, receiver.url("flaky"), contacts=CONTACTS[:1]))

    assert [(e["attempt"], e["status"], e["outcome"]) for e in log] == [
        (1, 503, "retrying"),
        (2, 503, "retrying"),
        (3, 200, "delivered"),
    ]
    gaps = [
        later["elapsed_seconds"] - earlier["elapsed_seconds"] for earlier, later in itertools.pairwise(log)
    ]
    assert gaps[0] >= 0.045 and gaps[1] >= 0.095
    bodies = receiver.bodies("flaky")
    assert len(bodies) == 3 and bodies[0] == bodies[1] == bodies[2]


def test_a_receiver_that_always_fails_is_given_up_on_after_the_last_attempt(
    api: httpx.Client, lonescale_sandbox: Served, receiver: Receiver
) -> None:
    lonescale_sandbox.control.configure(delivery_max_attempts=3)
    receiver.scripts["down"] = [500]

    log = settled_log(api, start(api, receiver.url("down"), contacts=CONTACTS[:1]))

    assert [(e["attempt"], e["status"], e["outcome"]) for e in log] == [
        (1, 500, "retrying"),
        (2, 500, "retrying"),
        (3, 500, "gave_up"),
    ]
    assert len(receiver.bodies("down")) == 3


def test_a_receiver_that_times_out_is_retried_then_given_up_on(
    api: httpx.Client, lonescale_sandbox: Served, receiver: Receiver
) -> None:
    lonescale_sandbox.control.configure(receiver_timeout_seconds=0.1, delivery_max_attempts=2)
    receiver.stalls["slow"] = 1.0

    log = settled_log(api, start(api, receiver.url("slow"), contacts=CONTACTS[:1]))

    assert [(e["attempt"], e["status"], e["outcome"]) for e in log] == [
        (1, None, "retrying"),
        (2, None, "gave_up"),
    ]
    assert all("timeout" in e["error"] for e in log)
    assert len(receiver.bodies("slow")) == 2


def test_an_unreachable_receiver_is_logged_as_a_connection_error(
    api: httpx.Client, lonescale_sandbox: Served
) -> None:
    lonescale_sandbox.control.configure(delivery_max_attempts=2)

    log = settled_log(api, start(api, "http://127.0.0.1:9/hooks/none", contacts=CONTACTS[:1]))

    assert [e["outcome"] for e in log] == ["retrying", "gave_up"]
    assert all(e["status"] is None and "ConnectError" in e["error"] for e in log)


def test_a_receiver_refusing_with_a_4xx_is_not_retried(api: httpx.Client, receiver: Receiver) -> None:
    receiver.scripts["gone"] = [410]

    log = settled_log(api, start(api, receiver.url("gone"), contacts=CONTACTS[:1]))

    assert [(e["attempt"], e["status"], e["outcome"]) for e in log] == [(1, 410, "rejected")]


def test_a_failing_payload_does_not_hold_back_the_rest_of_the_job(
    api: httpx.Client, receiver: Receiver
) -> None:
    receiver.scripts["first"] = [503, 204]

    log = settled_log(api, start(api, receiver.url("first"), contacts=CONTACTS[:3]))

    assert [(e["sequence"], e["attempt"], e["outcome"]) for e in log] == [
        (0, 1, "retrying"),
        (1, 1, "delivered"),
        (2, 1, "delivered"),
        (0, 2, "delivered"),
    ]


def test_a_missing_webhook_is_logged_and_the_results_can_still_be_polled(
    api: httpx.Client, lonescale_sandbox: Served, receiver: Receiver
) -> None:
    lonescale_sandbox.control.configure(webhook_missing_share=1)

    job_id = start(api, receiver.url("lost"))
    log = settled_log(api, job_id)

    assert [e["outcome"] for e in log] == ["skipped"]
    assert receiver.bodies("lost") == []
    assert len(api.get(f"/trigger/run/{job_id}").json()["contacts"]) == 4


def test_a_finished_jobs_webhooks_can_be_delivered_late_on_the_admin_route(
    api: httpx.Client, lonescale_sandbox: Served, receiver: Receiver
) -> None:
    lonescale_sandbox.control.configure(webhook_missing_share=1)
    job_id = start(api, receiver.url("late"))
    assert [e["outcome"] for e in settled_log(api, job_id)] == ["skipped"]

    lonescale_sandbox.control.admin_post("deliver", {"job_id": job_id})  # the queue catches up, hours later

    assert [e["outcome"] for e in settled_log(api, job_id)] == ["skipped", *["delivered"] * 4]
    assert sorted(contact_ids(receiver.bodies("late"))) == ["003A", "003B", "003C", "003D"]
    assert api.post("/__sandbox/deliver", json={"job_id": "no-such-job"}).status_code == 404


def test_the_webhook_waits_for_the_configured_delay(
    api: httpx.Client, lonescale_sandbox: Served, receiver: Receiver
) -> None:
    lonescale_sandbox.control.configure(webhook_delay_seconds=0.3)

    job_id = start(api, receiver.url("late"), contacts=CONTACTS[:1])

    assert api.get(f"/trigger/run/{job_id}").json() == {"status": "processing"}
    assert receiver.bodies("late") == []
    [entry] = settled_log(api, job_id)
    assert entry["outcome"] == "delivered" and entry["elapsed_seconds"] >= 0.3


def test_a_webhook_lag_lets_polling_see_results_before_the_webhook(
    api: httpx.Client, lonescale_sandbox: Served, receiver: Receiver
) -> None:
    lonescale_sandbox.control.configure(webhook_lag_seconds=0.6)

    job_id = start(api, receiver.url("lag"), contacts=CONTACTS[:1])

    wait_until(lambda: api.get(f"/trigger/run/{job_id}").json()["status"] == "finished", timeout=0.3)
    assert receiver.bodies("lag") == []
    [entry] = settled_log(api, job_id)
    assert entry["elapsed_seconds"] >= 0.6


def test_reset_cancels_pending_deliveries(
    api: httpx.Client, lonescale_sandbox: Served, receiver: Receiver
) -> None:
    lonescale_sandbox.control.configure(webhook_delay_seconds=0.4)
    start(api, receiver.url("cancelled"))

    lonescale_sandbox.control.reset()

    assert api.get("/__sandbox/deliveries").json() == {"deliveries": [], "pending_tasks": 0}
    time.sleep(0.5)  # past the delay: a delivery that survived the reset would have arrived by now
    assert receiver.bodies("cancelled") == []
    assert api.get("/__sandbox/deliveries").json()["deliveries"] == []
