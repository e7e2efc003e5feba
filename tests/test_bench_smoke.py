"""The benchmark harness keeps working: every measurement once at N = 200 (figures sane, never timed)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from bench.report import write_report
from bench.run import Options, run_all

SMALL = 200


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    options = Options(
        calls=SMALL, rate_limited=SMALL, throughput=SMALL, naive=SMALL, profile=SMALL, memory_small=SMALL,
        memory_large=2 * SMALL, webhook_posts=SMALL, webhook_concurrency=8, webhook_path_deliveries=SMALL,
        webhook_path_concurrency=4,
        output=tmp_path_factory.mktemp("bench") / "BENCHMARKS.md",
    )  # fmt: skip
    return run_all(options, "python -m bench (smoke)")


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_api_calls_are_counted_against_the_minimum_with_the_naive_baseline_beside(
    results: dict[str, Any], crm: str
) -> None:
    figures = results["calls"][crm]
    assert figures["pulled"] == SMALL and figures["crm_calls"]["total"] > 0
    assert figures["minimum_total"] >= 3 and math.isfinite(figures["ratio"]) and figures["ratio"] > 0
    assert figures["single_record_calls"] == figures["crm_calls"]["by_kind"]["single-record"]
    naive = figures["naive"]
    assert naive["crm_calls"]["by_kind"]["single-record"] > 0, "the baseline writes record by record"
    assert naive["lonescale_calls"] > figures["lonescale_calls"], "and calls LoneScale per contact"


def test_the_rate_limited_write_back_has_a_floor_a_429_share_and_a_lost_count(
    results: dict[str, Any],
) -> None:
    figures = results["rate_limited"]
    assert figures["calls_needed"] > 0 and figures["floor_seconds"] > 0 and figures["elapsed_seconds"] > 0
    assert 0.0 <= figures["share_429"] <= 1.0
    assert figures["fields_expected"] > 0 and figures["updates_lost"] >= 0


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_throughput_reports_contacts_per_second_cpu_apart_and_hot_spots(
    results: dict[str, Any], crm: str
) -> None:
    figures = results["throughput"][crm]
    cycle = figures["per_job"]
    assert cycle["contacts_per_second"] > 0 and cycle["connector_cpu_per_10k"] > 0
    assert cycle["sandbox_cpu_seconds"] > 0, "the sandbox's own CPU is reported apart"
    assert len(figures["hot_spots"]) == 5
    assert figures["naive"]["contacts_per_second"] > 0


def test_memory_is_measured_in_fresh_processes(results: dict[str, Any]) -> None:
    figures = results["memory"]
    assert figures["small"]["max_rss_kb"] > 0 and figures["large"]["max_rss_kb"] > 0
    assert figures["large"]["pulled"] == 2 * SMALL and math.isfinite(figures["ratio"])


def test_webhook_ingest_stores_every_payload_and_reports_latencies(results: dict[str, Any]) -> None:
    figures = results["webhook"]
    assert figures["statuses"] == {"200": SMALL} and figures["stored"] == SMALL
    assert figures["payloads_per_second"] > 0 and 0 < figures["p50_ms"] <= figures["p99_ms"]


def test_the_report_has_one_row_per_figure_and_the_command(results: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    write_report(results, path)
    text = path.read_text()
    assert text.count("\n| ") >= 1 + 2 + 1 + 2 + 1 + 1 + 1
    assert "| 6 | webhook path" in text and "What each fast part saves" in text
    assert "python -m bench (smoke)" in text and "nproc" in text
    assert text.count(f"at {results['machine']['commit']}") >= 7, "each row names the commit it measured"
