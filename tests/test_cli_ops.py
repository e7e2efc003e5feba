"""`db current` / `db upgrade` and `state reset`, over the command line, on a real store (SQLite and
PostgreSQL), with the config `init` writes."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, text

from connector.cli import main
from connector.starter import write_starter
from connector.store import Cursor, Store, instance_lease
from connector.store.dialect import make_engine, shown
from tests.test_init import ENV

T0 = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path, store_url: str) -> Path:
    """The starter config, its store pointed at the test's database."""
    starter = write_starter(tmp_path)
    text_ = starter.config.read_text()
    text_ = re.sub(
        r'^url = "sqlite:///lonescale-sync.db"$', f'url = "{store_url}"', text_, count=1, flags=re.M
    )
    starter.config.write_text(text_)
    return starter.config


def cli(*args: str, answer: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=ENV, input=answer)
    return result.exit_code, result.output


def test_db_current_changes_nothing_and_db_upgrade_says_from_where_to_where(
    config: Path, store_url: str
) -> None:
    where = shown(store_url)
    code, output = cli("db", "current", "--config", str(config))
    assert code == 0 and output.startswith(f"the store at {where}: no schema yet (head is 0009)"), output
    if store_url.startswith("sqlite:///"):
        assert not Path(store_url.removeprefix("sqlite:///")).exists(), "not even an empty file"
    assert "alembic_version" not in inspect(make_engine(store_url)).get_table_names()

    code, output = cli("db", "upgrade", "--config", str(config))
    assert code == 0 and output.endswith(  # after the store's own log line, on stderr
        f"the store at {where}: schema upgraded from no schema to revision 0009 (head)\n"
    )
    code, output = cli("db", "upgrade", "--config", str(config))
    assert (code, output) == (0, f"the store at {where}: schema revision 0009 (head); nothing to do\n")
    code, output = cli("db", "current", "--config", str(config))
    assert (code, output) == (0, f"the store at {where}: schema revision 0009 (head)\n")


def test_a_store_newer_than_the_code_is_refused_by_every_command_in_one_sentence(
    config: Path, store_url: str
) -> None:
    Store(store_url).close()
    engine = make_engine(store_url)
    with engine.begin() as db:
        db.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()

    for command in (["db", "current"], ["db", "upgrade"], ["state", "reset", "acme-hubspot", "--yes"]):
        code, output = cli(*command, "--config", str(config))
        assert code == 1, (command, output)
        assert (
            output.count("\n") == 1
            and "schema revision 0099, newer than this lonescale-sync (knows up to 0009)" in output
        )
        assert "upgrade lonescale-sync, or point [store] at another database" in output


def cursors(store_url: str) -> dict[str, datetime]:
    store = Store(store_url)
    found = {
        name: c.changed_at for name in ("acme-salesforce", "acme-hubspot") if (c := store.cursors.get(name))
    }
    store.close()
    return found


@pytest.fixture
def with_cursors(store_url: str) -> None:
    store = Store(store_url)
    store.cursors.set("acme-salesforce", Cursor(T0))
    store.cursors.set("acme-hubspot", Cursor(T0))
    store.close()


@pytest.mark.usefixtures("with_cursors")
def test_state_reset_deletes_the_cursor_once_confirmed(config: Path, store_url: str) -> None:
    code, output = cli("state", "reset", "acme-salesforce", "--config", str(config), answer="y\n")

    assert code == 0, output
    assert (
        "acme-salesforce: cursor 2026-11-20 06:00:00Z → none: the next run starts at start_date 2026-01-01 00:00:00Z"
        in output
    )
    assert "reset it? [y/N]" in output and output.endswith("acme-salesforce: cursor deleted\n")
    assert cursors(store_url) == {"acme-hubspot": T0}, "the other instance's cursor is its own"


@pytest.mark.usefixtures("with_cursors")
def test_state_reset_to_a_date_sets_the_cursor_there_in_utc(config: Path, store_url: str) -> None:
    code, output = cli("state", "reset", "acme-hubspot", "--to", "2026-11-01T08:00:00+01:00", "--yes",
                       "--config", str(config))  # fmt: skip

    assert code == 0, output
    assert "acme-hubspot: cursor 2026-11-20 06:00:00Z → 2026-11-01 07:00:00Z" in output
    assert "reset it?" not in output
    assert cursors(store_url)["acme-hubspot"] == datetime(2026, 11, 1, 7, 0, tzinfo=UTC)

    code, output = cli(
        "state", "reset", "acme-hubspot", "--to", "2026-10-15", "--yes", "--config", str(config)
    )
    assert code == 0 and cursors(store_url)["acme-hubspot"] == datetime(2026, 10, 15, tzinfo=UTC)


@pytest.mark.usefixtures("with_cursors")
def test_state_reset_changes_nothing_without_a_yes(config: Path, store_url: str) -> None:
    code, output = cli("state", "reset", "acme-hubspot", "--config", str(config), answer="n\n")

    assert code == 1 and "Aborted" in output
    assert cursors(store_url) == {"acme-salesforce": T0, "acme-hubspot": T0}

    code, output = cli(
        "state", "reset", "acme-hubspot", "--to", "2999-01-01", "--yes", "--config", str(config)
    )
    assert code == 2 and "in the future" in output
    assert cursors(store_url) == {"acme-salesforce": T0, "acme-hubspot": T0}


def test_state_reset_of_an_unknown_instance_lists_the_configured_ones(config: Path) -> None:
    code, output = cli("state", "reset", "acme", "--yes", "--config", str(config))

    assert code == 2
    assert (
        output
        == f"lonescale-sync: no instance 'acme' in {config}; configured: acme-salesforce, acme-hubspot\n"
    )


@pytest.mark.usefixtures("with_cursors")
def test_state_reset_is_refused_while_the_instance_runs_naming_who_runs_it(
    config: Path, store_url: str
) -> None:
    store = Store(store_url)
    lease = store.leases.acquire(instance_lease("acme-hubspot"), "sync")
    try:
        code, output = cli("state", "reset", "acme-hubspot", "--yes", "--config", str(config))
    finally:
        lease.release()
        store.close()

    assert code == 1
    assert (
        output.startswith(f"lonescale-sync: acme-hubspot is busy: process {os.getpid()} on ")
        and "(sync)" in output
    )
    assert output.count("\n") == 1
    assert cursors(store_url) == {"acme-salesforce": T0, "acme-hubspot": T0}
