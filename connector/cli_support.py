"""What every command shares: the --config option, reading it, the runtime, logging, exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from connector.config import Config, load_config
from connector.errors import ConfigError
from connector.runtime import Runtime

CONFIG = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("lonescale-sync.toml"),
    show_default=True,
    envvar="LONESCALE_SYNC_CONFIG",
    help="The TOML configuration (see config.example.toml). Env: LONESCALE_SYNC_CONFIG.",
)
# What a script may act on (README, "Commands"): 0 done; 1 failed, or nothing the CRM would take; 2 bad
# configuration; 3 results still on their way when --timeout passed; 4 stopped at a cap or out of credits,
# the jobs it had sent written back.
EXIT_FAILED, EXIT_CONFIG, EXIT_TIMEOUT, EXIT_AT_BUDGET = 1, 2, 3, 4


def read_config(path: Path, *, credentials: bool = True) -> Config:
    try:
        return load_config(path, credentials=credentials)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(EXIT_CONFIG) from None


@contextmanager
def runtime_for(path: Path) -> Iterator[Runtime]:
    runtime = Runtime(read_config(path))
    try:
        yield runtime
    finally:
        runtime.close()
