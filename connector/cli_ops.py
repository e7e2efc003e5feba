"""The operator's housekeeping commands: `init` (a starter config and mappings), `db` (the store's schema) and
`state` (an instance's cursor)."""

from __future__ import annotations

from pathlib import Path

import click

from connector import __version__
from connector.cli_support import EXIT_CONFIG
from connector.starter import StarterExists, write_starter


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


COMMANDS = [init_command]
