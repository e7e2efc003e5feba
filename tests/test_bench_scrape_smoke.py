"""bench/scrape.py keeps working: a tiny history on SQLite (and on PostgreSQL when
LONESCALE_SYNC_TEST_POSTGRES_URL names one) gives every figure, and the rollup's samples are the naive
GROUP BY's. Never timed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.scrape import INSTANCES, main, run
from tests.conftest import POSTGRES

SMALL = 120


@pytest.fixture(scope="module")
def figures() -> dict[str, Any]:
    return run([SMALL], POSTGRES, repeat=1)


def test_each_database_measures_the_rollup_beside_the_naive_group_by_and_they_agree(
    figures: dict[str, Any],
) -> None:
    assert set(figures) == ({"sqlite", "postgresql"} if POSTGRES else {"sqlite"})
    for (measured,) in figures.values():
        assert measured["runs"] == measured["jobs"] == SMALL
        assert measured["same_samples"], "the rollup says what the GROUP BY over every run says"
        assert measured["samples"] > 8 * INSTANCES, "every instance's sync and write figures"
        assert measured["collect_seconds"] > 0 and measured["naive_collect_seconds"] > 0
        assert measured["upgrade_seconds"] > 0 and measured["finish_ms"] > 0
        assert (
            measured["jobs_ages_seconds"] > 0 and measured["contacts_sent_since_seconds_for_20_instances"] > 0
        )


def test_the_command_prints_its_figures_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sizes", "40", "--repeat", "1", "--postgres", ""]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == ["sqlite"] and printed["sqlite"][0]["same_samples"]
