"""The emulators' shared kit: rate windows, deterministic chance, call statistics and admin routes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from connector.sandbox.control import SandboxControl
from connector.sandbox.kit import (
    Behaviour,
    Emulator,
    RollingWindow,
    ServedApp,
    chance,
    happens,
    json_response,
)
from connector.sandbox.people import ascii_slug, generate_people


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rolling_window_refuses_past_its_limit_and_frees_as_hits_age() -> None:
    clock = FakeClock()
    window = RollingWindow(limit=3, window_seconds=10, clock=clock)
    assert [window.hit() for _ in range(4)] == [True, True, True, False]
    assert window.remaining() == 0
    assert window.seconds_until_free() == pytest.approx(10.0)
    clock.now += 10.0
    assert window.remaining() == 3
    assert window.hit() is True


def test_refused_hits_do_not_count_against_the_window() -> None:
    clock = FakeClock()
    window = RollingWindow(limit=1, window_seconds=1, clock=clock)
    window.hit()
    for _ in range(5):
        assert window.hit() is False
    clock.now += 1.0
    assert window.hit() is True


def test_chance_is_fixed_by_seed_and_parts() -> None:
    assert chance(7, "record", 1) == chance(7, "record", 1)
    assert chance(7, "record", 1) != chance(8, "record", 1)
    assert chance(7, "record", 1) != chance(7, "record", 2)


def test_happens_hits_about_its_share() -> None:
    hits = sum(happens(0.2, 3, "id", n) for n in range(5000))
    assert 900 < hits < 1100
    assert not any(happens(0.0, 3, "id", n) for n in range(100))


def test_seeded_people_are_the_same_for_the_same_seed_and_messy_like_real_crms() -> None:
    first, again, other = generate_people(2000, 5), generate_people(2000, 5), generate_people(2000, 6)
    strip = [(p.firstname, p.lastname, p.email, p.linkedin_url, p.company) for p in first]
    assert strip == [(p.firstname, p.lastname, p.email, p.linkedin_url, p.company) for p in again]
    assert strip != [(p.firstname, p.lastname, p.email, p.linkedin_url, p.company) for p in other]
    emails = [p.email for p in first if p.email]
    assert any(p.lastname is None for p in first), "some contacts miss a last name"
    assert any(p.company is None for p in first), "some contacts have no company"
    assert len(set(emails)) < len(emails), "some emails are duplicated"
    assert any(e.endswith(("gmail.com", "yahoo.fr", "hotmail.com")) for e in emails), "personal domains"
    assert any(not any(c.isascii() for c in p.firstname[:1]) or not p.firstname.isascii() for p in first)
    forms = {p.linkedin_url.split("/in/")[0] for p in first if p.linkedin_url}
    assert len(forms) >= 4, f"LinkedIn URLs come in several forms, got {forms}"
    assert sum(1 for p in first if p.email and p.phone) > 400, "a share already has email and phone"
    stamps = [p.modified_at for p in first]
    assert stamps == sorted(stamps) and len(set(stamps)) < len(stamps), "ordered, with ties"
    assert all(s.microsecond % 1000 == 0 for s in stamps), "millisecond resolution"


def test_ascii_slug_folds_accents_and_letters_that_do_not_decompose() -> None:
    assert ascii_slug("Lefèvre") == "lefevre"
    assert ascii_slug("Łukasz Østergaard") == "lukasz-ostergaard"


class EchoBehaviour(Behaviour):
    greeting: str = "hello"


class EchoEmulator(Emulator):
    """A minimal emulator: one API route, records kept in a list."""

    behaviour_model = EchoBehaviour

    def reset_data(self) -> None:
        self.records: list[dict[str, Any]] = [{"n": n} for n in range(self.contacts)]

    def seed_records(self, records: list[dict[str, Any]]) -> list[str]:
        self.records.extend(records)
        return [str(len(self.records) - len(records) + i) for i in range(len(records))]

    def instance_of(self, headers: Headers) -> str | None:
        return headers.get("x-instance")  # as a CRM's credentials name the instance

    def api_routes(self) -> list[BaseRoute]:
        async def item(request: Request) -> Response:
            assert isinstance(self.behaviour, EchoBehaviour)
            return json_response({"greeting": self.behaviour.greeting, "id": request.path_params["item_id"]})

        async def teapot(request: Request) -> Response:
            return json_response({"error": "short and stout"}, status=418)

        async def slow(request: Request) -> Response:
            await asyncio.sleep(0.3)
            return json_response({"slow": True})

        return [Route("/v1/items/{item_id}", item), Route("/v1/teapot", teapot, methods=["POST"]),
                Route("/v1/slow", slow)]  # fmt: skip


@pytest.fixture
def echo() -> Iterator[tuple[str, SandboxControl, EchoEmulator]]:
    emulator = EchoEmulator(contacts=3, seed=1)
    server = ServedApp(emulator.asgi_app(), name="echo")
    url = server.start()
    control = SandboxControl(url)
    yield url, control, emulator
    control.close()
    server.stop()


def test_stats_count_calls_by_route_template_and_status_but_not_admin_calls(
    echo: tuple[str, SandboxControl, EchoEmulator],
) -> None:
    url, control, _ = echo
    with httpx.Client(base_url=url) as http:
        http.get("/v1/items/1")
        http.get("/v1/items/2")
        http.post("/v1/teapot")
        http.get("/nowhere")
    control.configure(greeting="hi")
    assert control.calls() == [
        {"method": "GET", "route": "(unmatched)", "status": 404, "count": 1},
        {"method": "GET", "route": "/v1/items/{item_id}", "status": 200, "count": 2},
        {"method": "POST", "route": "/v1/teapot", "status": 418, "count": 1},
    ]
    assert control.count(route="/v1/items/{item_id}") == 2
    control.clear_stats()
    assert control.calls() == []


def test_two_calls_at_once_are_an_overlap_and_calls_one_after_another_are_not(
    echo: tuple[str, SandboxControl, EchoEmulator],
) -> None:
    url, control, _ = echo
    with httpx.Client(base_url=url) as http:
        for _ in range(3):
            assert http.get("/v1/slow").status_code == 200
    seen = control.concurrency()
    assert (seen["in_flight"], seen["most_in_flight"], seen["overlaps"], seen["overlap_count"]) == (
        0,
        1,
        [],
        0,
    )

    beside = threading.Thread(target=httpx.get, args=(f"{url}/v1/slow",))
    beside.start()
    while control.concurrency()["in_flight"] == 0:  # until the slow call is being answered (0.3 s)
        time.sleep(0.005)
    httpx.get(f"{url}/v1/items/7")
    beside.join()

    seen = control.concurrency()
    assert seen["most_in_flight"] == 2 and seen["overlap_count"] == 1
    assert seen["overlaps"][0]["running"] == "GET /v1/slow"
    assert seen["overlaps"][0]["started"] == "GET /v1/items/7"
    control.clear_stats()
    assert control.concurrency()["overlap_count"] == 0


def test_a_call_of_an_instance_beside_another_holders_call_of_it_is_a_holder_overlap_and_nothing_else_is(
    echo: tuple[str, SandboxControl, EchoEmulator],
) -> None:
    url, control, _ = echo

    def at_once(running: dict[str, str], started: dict[str, str]) -> dict[str, Any]:
        control.clear_stats()
        beside = threading.Thread(target=httpx.get, args=(f"{url}/v1/slow",), kwargs={"headers": running})
        beside.start()
        while control.concurrency()["in_flight"] == 0:  # until the slow call is being answered (0.3 s)
            time.sleep(0.005)
        httpx.get(f"{url}/v1/items/7", headers=started)
        beside.join()
        return control.concurrency()

    one_on_a = {"x-instance": "a", "user-agent": "one"}
    seen = at_once(one_on_a, {"x-instance": "a", "user-agent": "two"})
    assert seen["holder_overlap_count"] == 1
    [overlap] = control.holder_overlaps()
    del overlap["at"]
    assert overlap == {
        "instance": "a",
        "running_holder": "one",
        "started_holder": "two",
        "running": "GET /v1/slow",
        "started": "GET /v1/items/7",
    }
    assert seen["holders"] == {"a": ["one", "two"]}

    for started in (one_on_a, {"x-instance": "b", "user-agent": "two"}, {"user-agent": "two"}):
        seen = at_once(one_on_a, started)  # the same holder; another instance; no instance (a login)
        assert (seen["overlap_count"], seen["holder_overlap_count"]) == (1, 0), started
    control.clear_stats()
    assert control.concurrency()["holders"] == {}


def test_behaviour_refuses_unknown_keys_and_reset_restores_defaults(
    echo: tuple[str, SandboxControl, EchoEmulator],
) -> None:
    url, control, emulator = echo
    with pytest.raises(ValueError, match="greting"):
        control.configure(greting="typo")
    assert control.configure(greeting="bonjour") == {"greeting": "bonjour"}
    assert httpx.get(f"{url}/v1/items/9").json() == {"greeting": "bonjour", "id": "9"}
    assert control.seed([{"n": 99}]) == ["3"]
    control.reset(contacts=5)
    assert httpx.get(f"{url}/v1/items/9").json()["greeting"] == "hello"
    assert len(emulator.records) == 5


def test_servers_on_port_zero_get_distinct_real_ports() -> None:
    first, second = ServedApp(EchoEmulator().asgi_app()), ServedApp(EchoEmulator().asgi_app())
    try:
        urls = {first.start(), second.start()}
        assert len(urls) == 2 and all(":0" not in u for u in urls)
        for u in urls:
            assert httpx.get(f"{u}/__sandbox/stats").status_code == 200
    finally:
        first.stop()
        second.stop()
