"""The `lonescale-sync` command line."""

from __future__ import annotations

import signal
import threading
from importlib.metadata import version
from types import FrameType

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(version("lonescale-sync"), prog_name="lonescale-sync")
def main() -> None:
    """Keep Salesforce and HubSpot contacts enriched through LoneScale, safely.

    \b
    Try it locally, nothing to configure:
      lonescale-sync demo       run the smoke scenario against the embedded sandbox
      lonescale-sync sandbox    serve local emulators of HubSpot, Salesforce and LoneScale
    """


@main.command()
@click.option(
    "--contacts",
    default=1000,
    show_default=True,
    type=click.IntRange(0, 1_000_000),
    help="Contacts seeded in each CRM emulator.",
)
@click.option("--seed", default=1, show_default=True, type=int, help="Same seed, same data.")
@click.option("--hubspot-port", default=0, type=click.IntRange(0, 65535), help="0 lets the OS choose.")
@click.option("--salesforce-port", default=0, type=click.IntRange(0, 65535), help="0 lets the OS choose.")
@click.option("--lonescale-port", default=0, type=click.IntRange(0, 65535), help="0 lets the OS choose.")
@click.option(
    "--relaxed",
    is_flag=True,
    help="Turn off rate limits, delays and API quotas (they are on by default, as in the real APIs).",
)
def sandbox(
    contacts: int, seed: int, hubspot_port: int, salesforce_port: int, lonescale_port: int, relaxed: bool
) -> None:
    """Serve local emulators of HubSpot CRM v3, Salesforce REST and LoneScale on 127.0.0.1.

    Prints each base URL and the credentials it accepts as key=value lines, then serves until
    interrupted (Ctrl-C or SIGTERM). Point the real SDKs or any HTTP client at these URLs; each emulator
    also answers GET /__sandbox/stats with the calls it served.
    """
    from connector.sandbox.runner import Sandbox, SandboxPorts  # the sandbox is a separate world

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    ports = SandboxPorts(hubspot=hubspot_port, salesforce=salesforce_port, lonescale=lonescale_port)
    running = Sandbox(contacts=contacts, seed=seed, realistic=not relaxed, ports=ports)
    try:
        endpoints = running.start()
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        for line in endpoints.as_lines():
            click.echo(line)
        click.echo("# serving; Ctrl-C to stop", err=True)
        while not stop.wait(0.5):
            pass
    finally:
        running.stop()
    click.echo("# stopped", err=True)


@main.command()
@click.option(
    "--contacts",
    default=300,
    show_default=True,
    type=click.IntRange(10, 100_000),
    help="Contacts seeded in each CRM emulator.",
)
@click.option("--seed", default=1, show_default=True, type=int)
def demo(contacts: int, seed: int) -> None:
    """Start the embedded sandbox and run a smoke scenario through it; exits 0 when every step worked."""
    from connector.sandbox.demo import run_demo  # the sandbox is a separate world

    raise SystemExit(run_demo(contacts=contacts, seed=seed))


if __name__ == "__main__":  # pragma: no cover
    main()
