"""The HubSpot emulator's search: operators, sorts, paging to the 10,000-result cap, eventual consistency."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hubspot import HubSpot
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInput,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
)

from connector.sandbox import credentials
from tests.conftest import Served

TIMEOUT = (5, 30)
T0 = 1_780_000_000_000  # a fixed instant (2026-05-28) for contacts the tests place in time


def client(url: str) -> HubSpot:
    return HubSpot(access_token=credentials.HUBSPOT_TOKEN, host=url)


def body_of(error: Exception) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(getattr(error, "body", "") or "{}")
    return parsed


def request(*groups: list[Filter], **kwargs: Any) -> PublicObjectSearchRequest:
    return PublicObjectSearchRequest(filter_groups=[FilterGroup(filters=g) for g in groups], **kwargs)


def by_time(prop: str = "lastmodifieddate", direction: str = "ASCENDING") -> list[Any]:
    return [
        {"propertyName": prop, "direction": direction},
        {"propertyName": "hs_object_id", "direction": direction},
    ]


@pytest.fixture
def four(hubspot_sandbox: Served) -> dict[str, str]:
    """Four contacts with known values and times (B and C share a millisecond), and no others."""
    hubspot_sandbox.control.reset(contacts=0, seed=7)
    ids = hubspot_sandbox.control.seed(
        [
            {"firstname": "Ada", "jobtitle": "CTO", "email": "ada@acme.com", "lastmodifieddate": T0 + 1000},
            {"firstname": "Bob", "jobtitle": "VP Sales", "phone": "+1 415 555 0101", "lastmodifieddate": T0 + 2000},
            {"firstname": "Cy", "lastmodifieddate": T0 + 2000},
            {"firstname": "Dee", "jobtitle": "cto", "lastmodifieddate": datetime.fromtimestamp((T0 + 3000) / 1000, UTC).isoformat()},
        ]
    )  # fmt: skip
    return dict(zip("ABCD", ids, strict=True))


ISO_2000 = datetime.fromtimestamp((T0 + 2000) / 1000, UTC).isoformat().replace("+00:00", "Z")
OPERATOR_CASES: list[tuple[dict[str, Any], str]] = [
    ({"property_name": "jobtitle", "operator": "EQ", "value": "CTO"}, "AD"),
    ({"property_name": "jobtitle", "operator": "NEQ", "value": "cto"}, "BC"),
    ({"property_name": "lastmodifieddate", "operator": "GT", "value": str(T0 + 1000)}, "BCD"),
    ({"property_name": "lastmodifieddate", "operator": "GTE", "value": ISO_2000}, "BCD"),
    ({"property_name": "lastmodifieddate", "operator": "LT", "value": str(T0 + 2000)}, "A"),
    ({"property_name": "lastmodifieddate", "operator": "LTE", "value": ISO_2000}, "ABC"),
    ({"property_name": "lastmodifieddate", "operator": "EQ", "value": str(T0 + 2000)}, "BC"),
    ({"property_name": "lastmodifieddate", "operator": "BETWEEN", "value": str(T0 + 1500), "high_value": str(T0 + 2000)}, "BC"),
    ({"property_name": "jobtitle", "operator": "HAS_PROPERTY"}, "ABD"),
    ({"property_name": "jobtitle", "operator": "NOT_HAS_PROPERTY"}, "C"),
    ({"property_name": "firstname", "operator": "IN", "values": ["ada", "dee"]}, "AD"),
    ({"property_name": "firstname", "operator": "IN", "values": ["Ada"]}, ""),  # IN wants lowercase values
    ({"property_name": "firstname", "operator": "NOT_IN", "values": ["ada"]}, "BCD"),
    ({"property_name": "jobtitle", "operator": "CONTAINS_TOKEN", "value": "sales"}, "B"),
    ({"property_name": "email", "operator": "CONTAINS_TOKEN", "value": "*@acme.com"}, "A"),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "expected"), OPERATOR_CASES, ids=[f"{c[0]['operator']}-{n}" for n, c in enumerate(OPERATOR_CASES)])  # fmt: skip
def test_each_operator_selects_what_hubspot_would(
    hubspot_sandbox: Served, four: dict[str, str], spec: dict[str, Any], expected: str
) -> None:
    page = client(hubspot_sandbox.url).crm.contacts.search_api.do_search(
        request([Filter(**spec)], sorts=by_time(), limit=10), _request_timeout=TIMEOUT
    )
    assert [record.id for record in page.results] == [four[letter] for letter in expected]
    assert page.total == len(expected)


def test_filters_are_anded_within_a_group_and_groups_are_ored(
    hubspot_sandbox: Served, four: dict[str, str]
) -> None:
    cto_before = [Filter(property_name="jobtitle", operator="EQ", value="cto"),
                  Filter(property_name="lastmodifieddate", operator="LT", value=str(T0 + 3000))]  # fmt: skip
    no_title = [Filter(property_name="jobtitle", operator="NOT_HAS_PROPERTY")]
    page = client(hubspot_sandbox.url).crm.contacts.search_api.do_search(
        request(cto_before, no_title, sorts=by_time()), _request_timeout=TIMEOUT
    )
    assert [r.id for r in page.results] == [four["A"], four["C"]]


def test_sorts_as_objects_or_strings_order_alike_and_descending_reverses(
    hubspot_sandbox: Served, four: dict[str, str]
) -> None:
    search = client(hubspot_sandbox.url).crm.contacts.search_api
    as_strings = search.do_search(
        PublicObjectSearchRequest(sorts=["-lastmodifieddate"]), _request_timeout=TIMEOUT
    )
    as_objects = search.do_search(request(sorts=by_time(direction="DESCENDING")), _request_timeout=TIMEOUT)
    assert [r.id for r in as_strings.results] == [r.id for r in as_objects.results]
    assert [r.id for r in as_objects.results] == [four[x] for x in "DCBA"]
    by_name = search.do_search(PublicObjectSearchRequest(sorts=["firstname"]), _request_timeout=TIMEOUT)
    assert [r.properties["firstname"] for r in by_name.results] == ["Ada", "Bob", "Cy", "Dee"]


def test_search_returns_the_default_properties_or_the_requested_ones(
    hubspot_sandbox: Served, four: dict[str, str]
) -> None:
    search = client(hubspot_sandbox.url).crm.contacts.search_api
    default = search.do_search(PublicObjectSearchRequest(), _request_timeout=TIMEOUT)
    expected = {"createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"}
    assert set(default.results[0].properties) == expected
    asked = search.do_search(PublicObjectSearchRequest(properties=["phone"]), _request_timeout=TIMEOUT)
    assert set(asked.results[0].properties) == {"createdate", "hs_object_id", "lastmodifieddate", "phone"}
    assert all(isinstance(v, str) or v is None for r in asked.results for v in r.properties.values())


def test_more_than_five_filter_groups_is_a_validation_error(hubspot_sandbox: Served) -> None:
    group = [Filter(property_name="email", operator="HAS_PROPERTY")]
    with pytest.raises(ApiException) as raised:
        client(hubspot_sandbox.url).crm.contacts.search_api.do_search(
            request(*[group] * 6), _request_timeout=TIMEOUT
        )
    assert raised.value.status == 400
    body = body_of(raised.value)
    assert body["category"] == "VALIDATION_ERROR"
    assert "too many filterGroups (count: 6, max allowed: 5)" in body["message"]
    five = client(hubspot_sandbox.url).crm.contacts.search_api.do_search(
        request(*[group] * 5), _request_timeout=TIMEOUT
    )
    assert five.total > 0


def test_a_page_over_200_is_a_validation_error(hubspot_sandbox: Served) -> None:
    search = client(hubspot_sandbox.url).crm.contacts.search_api
    with pytest.raises(ApiException) as raised:
        search.do_search(PublicObjectSearchRequest(limit=201), _request_timeout=TIMEOUT)
    assert raised.value.status == 400 and body_of(raised.value)["category"] == "VALIDATION_ERROR"
    assert (
        len(search.do_search(PublicObjectSearchRequest(limit=200), _request_timeout=TIMEOUT).results) == 200
    )


def test_paging_reaches_the_10000th_result_then_the_next_page_is_a_400(hubspot_sandbox: Served) -> None:
    hubspot_sandbox.control.reset(contacts=10_050, seed=7)
    hubspot_sandbox.control.configure(search_per_second=None)
    search = client(hubspot_sandbox.url).crm.contacts.search_api
    since = [Filter(property_name="lastmodifieddate", operator="GTE", value="0")]
    seen: list[tuple[int, int]] = []
    after: str | None = None
    started = time.monotonic()
    for _ in range(50):
        page = search.do_search(
            request(since, sorts=by_time(), properties=["email"], limit=200, after=after),
            _request_timeout=TIMEOUT,
        )
        assert page.total == 10_050
        seen += [(int(r.updated_at.timestamp() * 1000), int(r.id)) for r in page.results]
        after = page.paging.next.after
    assert time.monotonic() - started < 10, "pages come from the index, not a scan per request"
    assert after == "10000", "HubSpot still offers the next page past the cap"
    assert len(seen) == 10_000 and seen == sorted(set(seen)), "ordered by (lastmodifieddate, id), no repeats"
    with pytest.raises(ApiException) as raised:
        search.do_search(request(since, sorts=by_time(), limit=200, after=after), _request_timeout=TIMEOUT)
    assert raised.value.status == 400 and body_of(raised.value)["category"] == "VALIDATION_ERROR"
    # The documented way on: a new query from the last timestamp seen, with the id as tie-break.
    last_ms, last_id = seen[-1]
    rest = [Filter(property_name="lastmodifieddate", operator="GT", value=str(last_ms))]
    same_ms = [Filter(property_name="lastmodifieddate", operator="EQ", value=str(last_ms)),
               Filter(property_name="hs_object_id", operator="GT", value=str(last_id))]  # fmt: skip
    tail = search.do_search(request(same_ms, rest, sorts=by_time(), limit=200), _request_timeout=TIMEOUT)
    assert tail.total == 50
    assert (int(tail.results[0].updated_at.timestamp() * 1000), int(tail.results[0].id)) > seen[-1]


def test_our_write_back_is_found_by_the_next_incremental_search(hubspot_sandbox: Served) -> None:
    hubspot = client(hubspot_sandbox.url)
    checkpoint = int(time.time() * 1000) - 1000
    since = [Filter(property_name="lastmodifieddate", operator="GTE", value=str(checkpoint))]
    assert hubspot.crm.contacts.search_api.do_search(request(since), _request_timeout=TIMEOUT).total == 0
    hubspot.crm.contacts.batch_api.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[
                SimplePublicObjectBatchInput(id=i, properties={"jobtitle": "CTO"}) for i in ("1005", "1001")
            ]
        ),
        _request_timeout=TIMEOUT,
    )
    deadline = time.monotonic() + 10  # search lags writes (the default): a client searches again
    while True:
        found = hubspot.crm.contacts.search_api.do_search(
            request(since, sorts=by_time()), _request_timeout=TIMEOUT
        )
        if found.total == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert [r.id for r in found.results] == ["1001", "1005"], "same millisecond, then by id"


def test_search_lags_writes_by_default_and_shows_them_a_little_later(hubspot_sandbox: Served) -> None:
    """Eventually consistent, as HubSpot's search is: no configuration needed for a client to meet it."""
    hubspot = client(hubspot_sandbox.url)
    hubspot.crm.contacts.batch_api.update(
        BatchInputSimplePublicObjectBatchInput(inputs=[SimplePublicObjectBatchInput(id="1002", properties={"city": "Tromsø"})]),
        _request_timeout=TIMEOUT,
    )  # fmt: skip
    tromso = request([Filter(property_name="city", operator="EQ", value="Tromsø")])
    at_once = hubspot.crm.contacts.search_api.do_search(tromso, _request_timeout=TIMEOUT).total
    deadline = time.monotonic() + 10
    while hubspot.crm.contacts.search_api.do_search(tromso, _request_timeout=TIMEOUT).total == 0:
        assert time.monotonic() < deadline, "search never showed the write"
        time.sleep(0.25)

    assert at_once == 0
    assert hubspot_sandbox.control.configure()["search_visibility_delay_ms"] > 0


def test_search_lags_writes_by_the_configured_visibility_delay(hubspot_sandbox: Served) -> None:
    hubspot_sandbox.control.configure(search_visibility_delay_ms=400)
    hubspot = client(hubspot_sandbox.url)
    hubspot.crm.contacts.batch_api.update(
        BatchInputSimplePublicObjectBatchInput(inputs=[SimplePublicObjectBatchInput(id="1001", properties={"city": "Bergen"})]),
        _request_timeout=TIMEOUT,
    )  # fmt: skip
    bergen = [Filter(property_name="city", operator="EQ", value="Bergen")]
    assert hubspot.crm.contacts.search_api.do_search(request(bergen), _request_timeout=TIMEOUT).total == 0
    read = hubspot.crm.contacts.basic_api.get_by_id("1001", properties=["city"], _request_timeout=TIMEOUT)
    assert read.properties["city"] == "Bergen", "reads by id are consistent at once"
    time.sleep(0.5)
    assert hubspot.crm.contacts.search_api.do_search(request(bergen), _request_timeout=TIMEOUT).total == 1
