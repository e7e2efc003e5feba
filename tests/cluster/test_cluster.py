"""Cluster mode end to end: workers and receivers as real processes on one PostgreSQL store, the sandbox as the
CRMs and LoneScale (tests/cluster/world.py)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.models import JobStatus
from tests.cluster.world import Cluster, cluster_world
from tests.conftest import Served
from tests.test_commands import cli

POSTGRES = os.environ.get("LONESCALE_SYNC_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(
    not POSTGRES, reason="set LONESCALE_SYNC_TEST_POSTGRES_URL: the cluster runs on PostgreSQL"
)
pytest.importorskip("procrastinate", reason="procrastinate is the `cluster` extra")


@pytest.fixture
def small(tmp_path: Path, lonescale_sandbox: Served) -> Iterator[Cluster]:
    assert POSTGRES
    lonescale_sandbox.control.configure(webhook_delay_seconds=0.2)
    with cluster_world(tmp_path, POSTGRES, lonescale_sandbox, pairs=1, contacts=40) as cluster:
        yield cluster


def settled(cluster: Cluster) -> bool:
    jobs = cluster.store.jobs.find()
    return (
        bool(jobs)
        and {j.instance for j in jobs} == set(cluster.instances)
        and all(j.status == JobStatus.APPLIED for j in jobs)
    )


def test_a_worker_and_a_receiver_sync_enrich_and_write_back_every_instance(small: Cluster) -> None:
    small.start("serve")
    small.start("work", "--concurrency", "2")

    small.until("every instance's jobs applied", lambda: settled(small), timeout=120)
    journal = small.sql(
        "SELECT instance, count(*) AS n FROM write_journal WHERE outcome = 'written' GROUP BY instance"
    )
    assert {row.instance for row in journal} == set(small.instances), journal


def test_run_in_cluster_mode_is_a_worker_and_a_receiver_in_one_process_and_stops_cleanly(
    small: Cluster,
) -> None:
    replica = small.start("run")

    small.until("every instance's jobs applied", lambda: settled(small), timeout=120)
    replica.popen.send_signal(signal.SIGTERM)
    assert replica.popen.wait(timeout=90) == 0, replica.said()[-2000:]
    said = replica.said()
    assert "webhook listening on" in said and said.rstrip().endswith("stopped cleanly"), said[-2000:]
    assert "Traceback" not in said, said[-3000:]


def test_a_worker_on_a_database_db_upgrade_has_not_prepared_says_so_in_one_sentence(small: Cluster) -> None:
    small.sql("DROP TABLE procrastinate_jobs CASCADE")  # as if `db upgrade` had never applied the queue

    code, output = cli("work", "--config", str(small.config))

    assert code == 1 and "run `lonescale-sync db upgrade`" in output and "Traceback" not in output, output
