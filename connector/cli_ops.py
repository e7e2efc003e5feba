"""The operator's housekeeping commands: `init` (a starter config and mappings), `db` (the store's schema) and
`state` (an instance's cursor)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from connector import __version__
from connector.cli_support import CONFIG, EXIT_CONFIG, EXIT_FAILED, read_config
from connector.starter import StarterExists, write_starter
from connector.store import Cursor, instance_lease
from connector.store.database import Database, schema_state
from connector.store.dialect import shown
from connector.store.queue_schema import installed, upgrade_queue_schema
from connector.wiring import build_store, store_url


@click.command("init")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--force", is_flag=True, help="Overwrite config.toml and the mappings if they are there.")
def init_command(directory: Path, force: bool) -> None:
    """Write a starter DIRECTORY/config.toml and the shipped mappings (DIRECTORY/mappings/) to adapt.

    Every key of the config is explained in place; its mapping paths name the copies beside it.
    """
    try:
        starter = write_starter(directory, force=force, version=__version__)
    except StarterExists as exc:
        more = len(exc.existing) - 1
        click.echo(
            f"lonescale-sync: {exc.existing[0]} already exists{f' (and {more} more of the files init writes)' if more else ''}"
            " and may hold your edits: choose another folder, or pass --force to overwrite",
            err=True,
        )
        raise SystemExit(EXIT_CONFIG) from None
    for path in (starter.config, *starter.mappings):
        click.echo(f"wrote {path}")
    config = starter.config
    click.echo(
        "\nnext:\n"
        f"  1. edit {config}: your instances, their URLs, [webhook] public_url (each key is explained there),\n"
        f"     and the mappings in {config.parent / 'mappings'} to your fields\n"
        f"  2. set the secrets it names in the environment: {', '.join(starter.env)}\n"
        f"  3. lonescale-sync check --config {config}\n"
        f"  4. lonescale-sync run --config {config}"
    )


@click.group("db")
def db_group() -> None:
    """The store's schema: which revision it is at, and bringing it to this version's.

    Every command (and the daemon, at its start) upgrades the store it opens on its own, under a lock; these
    say what it is at and do it when you choose (before a rollout, say).
    """


@db_group.command("upgrade")
@CONFIG
def db_upgrade(config_path: Path) -> None:
    """Apply the schema revisions the store lacks (none if it is at head); print from where to where. With
    [cluster] enabled, then procrastinate's schema (the job queue) too, or the migrations it lacks."""
    config = read_config(config_path)
    database = Database(store_url(config))
    try:
        before, after = database.schema
        if before == after:
            click.echo(f"the store at {database.where}: {after.describe()}; nothing to do")
        else:
            click.echo(
                f"the store at {database.where}: schema upgraded from {before.label} to {after.label} (head)"
            )
        if config.settings.cluster.enabled:
            applied = upgrade_queue_schema(database)
            click.echo(f"the store at {database.where}: {_queue_applied(applied, installed().version)}")
    finally:
        database.close()


def _queue_applied(applied: list[str], version: str) -> str:
    if not applied:
        return f"procrastinate's schema: at {version}, nothing to apply"
    if applied == [f"schema.sql {version}"]:
        return f"procrastinate's schema {version} applied"
    return f"procrastinate's schema brought to {version}: applied {', '.join(applied)}"


@db_group.command("current")
@CONFIG
def db_current(config_path: Path) -> None:
    """The store's schema revision and whether it is this version's (head); changes nothing."""
    url = store_url(read_config(config_path))
    found = schema_state(url)
    line = f"the store at {shown(url)}: {found.describe()}"
    if found.newer:
        click.echo(f"{line}: upgrade lonescale-sync, or point [store] at another database", err=True)
        raise SystemExit(EXIT_FAILED)
    if not found.at_head:
        line += "; `lonescale-sync db upgrade` (or any command, or the daemon at its start) brings it there"
    click.echo(line)


@click.group("state")
def state_group() -> None:
    """An instance's sync state in the store: where its next pull starts."""


def _moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO date or datetime (2026-11-01, 2026-11-01T08:00:00)"
        ) from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if moment > datetime.now(UTC):
        raise click.BadParameter(f"{value} is in the future: the next run would skip every change until then")
    return moment


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%SZ}"


@state_group.command("reset")
@click.argument("instance")
@CONFIG
@click.option("--to", "to", metavar="DATE",
              help="Set the cursor to DATE (ISO date or datetime, UTC) instead of deleting it.")  # fmt: skip
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def state_reset(instance: str, config_path: Path, to: str | None, yes: bool) -> None:
    """Move INSTANCE's cursor back: its next run pulls again the records changed since --to, or, without it,
    since its start_date (the cursor is deleted). Only the cursor changes: cooldowns, jobs and the journal
    stay, so contacts sent within their cooldown are not bought again.
    """
    config = read_config(config_path)
    settings = {i.name: i for i in config.settings.instances}
    if instance not in settings:
        click.echo(f"lonescale-sync: no instance {instance!r} in {config_path}; configured: {', '.join(settings)}",
                   err=True)  # fmt: skip
        raise SystemExit(EXIT_CONFIG)
    moment = _moment(to) if to is not None else None
    start = settings[instance].start_date
    store = build_store(config)
    try:
        holding = store.leases.holding(instance_lease(instance))
        if holding is not None:
            click.echo(f"lonescale-sync: {instance} is busy: {holding.describe()}; reset it when that has finished",
                       err=True)  # fmt: skip
            raise SystemExit(EXIT_FAILED)
        current = store.cursors.get(instance)
        new = (
            _when(moment) if moment
            else "none: the next run starts at " + (f"start_date {_when(start)}" if start else "the beginning (no start_date)")
        )  # fmt: skip
        click.echo(f"{instance}: cursor {_when(current.changed_at) if current else 'none'} → {new}")
        if not yes:
            click.confirm("reset it?", abort=True)
        with store.leases.held(instance_lease(instance), "reset"):  # Busy if a run started meanwhile
            if moment:
                store.cursors.set(instance, Cursor(moment))
            else:
                store.cursors.clear(instance)
        click.echo(f"{instance}: cursor {'set to ' + _when(moment) if moment else 'deleted'}")
    finally:
        store.close()


COMMANDS = [init_command, db_group, state_group]
