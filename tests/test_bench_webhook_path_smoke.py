"""bench/webhook_path.py keeps working (issue 14): a tiny run gives every figure, and its counts agree —
every per-contact delivery answered 200 is in the store, and every stored delivery is applied. Never timed."""

from __future__ import annotations

from typing import Any

import pytest

from bench.webhook_path import measure_webhook_path

SMALL = 150


@pytest.fixture(scope="module")
def figures() -> dict[str, Any]:
    return measure_webhook_path(SMALL, 8, variants=(("h11", "stdlib"),))


def test_every_delivery_is_answered_200_and_stored_before_it(figures: dict[str, Any]) -> None:
    received = figures["receive"]
    n = figures["deliveries"]
    assert 0 < n <= SMALL and figures["jobs"] == -(-n // figures["contacts_per_job"])
    assert received["statuses"] == {"200": n} and received["answered"] == received["sent"] == n
    assert received["stored"] == received["stored_new"] == received["answered_2xx"] == n
    assert received["stored_matches_2xx"] and figures["meets"]["stored_before_2xx"]


def test_receive_and_apply_report_their_cpu_apart_and_together(figures: dict[str, Any]) -> None:
    received, applied = figures["receive"], figures["apply"]
    assert received["server_cpu_seconds"] > 0 and received["client_cpu_seconds"] > 0
    assert received["deliveries_per_second"] > 0 and 0 < received["p50_ms"] <= received["p99_ms"]
    assert applied["deliveries"] == applied["results"] == figures["deliveries"]
    assert applied["inbox"] == {"applied": figures["deliveries"]} and not applied["failures"]
    assert applied["records_written"] > 0 and applied["cpu_ms_per_delivery"] > 0
    total = received["server_cpu_ms_per_delivery"] + applied["cpu_ms_per_delivery"]
    assert figures["total_cpu_ms_per_delivery"] == pytest.approx(total, abs=1e-3)
    assert set(figures["meets"]) == {"cpu", "rate", "p99", "stored_before_2xx"}


def test_a_variant_without_the_fast_parts_serves_the_same_deliveries(figures: dict[str, Any]) -> None:
    (variant,) = figures["variants"]
    assert (variant["http"], variant["json"]) == ("h11", "stdlib")
    assert variant["statuses"] == {"200": figures["deliveries"]} and variant["stored_matches_2xx"]
    assert variant["server_cpu_ms_per_delivery"] > 0
    assert set(figures["parse_us_per_delivery"]) == {"stdlib", "orjson"}
