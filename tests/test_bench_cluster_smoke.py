"""The cluster benchmark keeps working: 1 worker and 3 on 2 instances of 20 contacts, end to end through
`bench.run.run_cluster` (figures computed from what happened, never timed), and only its own section of the
report rewritten."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bench.cluster_report import BEGIN, END
from bench.run import Options, run_cluster

POSTGRES = os.environ.get("LONESCALE_SYNC_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(
    not POSTGRES, reason="set LONESCALE_SYNC_TEST_POSTGRES_URL: the cluster benchmark runs on PostgreSQL"
)
pytest.importorskip("procrastinate", reason="procrastinate is the `cluster` extra")

CONTACTS = 20
OTHER = "# Benchmarks\n\nThe other sections, as the full run wrote them.\n\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "BENCHMARKS.md"
    path.write_text(OTHER + f"{BEGIN}\nan older cluster section\n{END}\n\n## After\n\nkept too\n")
    return path


@pytest.fixture(scope="module")
def results(report: Path) -> dict[str, Any]:
    assert POSTGRES
    options = Options(output=report, groups=("cluster",), cluster_pairs=1, cluster_contacts=CONTACTS,
                      cluster_workers=(1, 3), cluster_receivers=1, postgres=POSTGRES)  # fmt: skip
    return run_cluster(options, "python -m bench --group cluster (smoke)")


def test_each_worker_count_pulls_every_contact_and_has_its_rate_from_its_wall_time(
    results: dict[str, Any],
) -> None:
    runs = {run["workers"]: run for run in results["runs"]}
    assert set(runs) == {1, 3}
    for run in runs.values():
        assert run["pulled"] == 2 * CONTACTS and run["jobs"] > 0 and run["sweeps"] == 0
        assert run["contacts_per_second"] == pytest.approx(run["pulled"] / run["elapsed_seconds"], rel=0.01)
    assert results["ratio"] == pytest.approx(runs[3]["contacts_per_second"] / runs[1]["contacts_per_second"])


def test_calls_per_instance_are_counted_by_the_emulators_beside_one_instance_alone(
    results: dict[str, Any],
) -> None:
    for run in results["runs"]:
        for crm in ("hubspot", "salesforce"):
            calls = run["calls"][crm]
            assert calls["instances"] == 1 and calls["mean_total"] > 0
            assert calls["mean_by_kind"]["write"] > 0 and calls["mean_by_kind"]["single-record"] == 0
    for crm in ("hubspot", "salesforce"):
        assert results["single_process_calls"][crm]["by_kind"]["pull"] > 0


def test_webhook_to_write_latency_and_cpu_by_process_kind_are_measured(results: dict[str, Any]) -> None:
    for run in results["runs"]:
        latency = run["latency"]
        assert 0 < latency["with_writes"] <= latency["deliveries"]
        assert 0 <= latency["p50_s"] <= latency["p99_s"] <= latency["max_s"]
        cpu = run["cpu_seconds"]
        assert len(cpu["workers"]) == run["workers"] and all(v and v > 0 for v in cpu["workers"])
        assert len(cpu["receivers"]) == 1 and cpu["bench_process"] > 0
        assert 0 < cpu["machine_busy_share"] <= 1


def test_only_the_cluster_section_is_rewritten_labelled_with_command_and_commit(
    results: dict[str, Any], report: Path
) -> None:
    text = report.read_text()
    assert text.startswith(OTHER) and text.rstrip().endswith("kept too")
    assert text.count(BEGIN) == 1 and text.count(END) == 1 and "an older cluster section" not in text
    assert "python -m bench --group cluster (smoke)" in text and f"commit {results['commit']}" in text
    for run in results["runs"]:
        assert f"**{run['contacts_per_second']:,.0f}**" in text
    assert f"{results['ratio']:.2f} ×" in text and "| 2 × 20 |" in text
