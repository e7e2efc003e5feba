"""The `lonescale-sync` command line."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import click

from connector import __version__, reports
from connector.checks import check_instance, create_missing_status_fields
from connector.cli_ops import COMMANDS as OPS_COMMANDS
from connector.cli_review import COMMANDS
from connector.cli_status import status_command
from connector.cli_support import (
    CONFIG,
    EXIT_AT_BUDGET,
    EXIT_FAILED,
    EXIT_TIMEOUT,
    read_config,
    runtime_for,
)
from connector.errors import ConfigError, ConnectorError, ServerFailed
from connector.logs import FORMATS, LogFormat, setup_logging
from connector.progress import Activity
from connector.runtime import Runtime
from connector.sync import SyncReport

# Options of the whole program, taken wherever they stand: `lonescale-sync status --log-level debug` is how
# people type them (click alone would only take them before the command's name).
_GLOBAL_OPTIONS = ("--log-level", "--log-format")


def hoist_global_options(args: list[str]) -> list[str]:
    """`args` with the global options (and their values) moved in front of the command's name."""
    front: list[str] = []
    rest: list[str] = []
    tokens = iter(args)
    for token in tokens:
        if token == "--":  # what follows is for the command, whatever it looks like
            rest.extend([token, *tokens])
            break
        name = token.split("=", 1)[0]
        if name in _GLOBAL_OPTIONS:
            front.append(token)
            value = None if "=" in token else next(tokens, None)
            if value is not None:  # a missing value is left for click to report
                front.append(value)
        else:
            rest.append(token)
    return front + rest


class _Commands(click.Group):
    """A failure the user can fix (the store unreachable, the webhook's port taken, credentials refused) is
    said in one sentence with its fix and exit status 1, never as a traceback."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(args))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConnectorError as exc:
            click.echo(f"lonescale-sync: {exc}", err=True)
            ctx.exit(EXIT_FAILED)


@click.group(
    cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(__version__, prog_name="lonescale-sync")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))  # fmt: skip
@click.option("--log-format", default="text", show_default=True, type=click.Choice(FORMATS),
              help="json: one object per line with instance, run_id and job_id, for a log shipper.")  # fmt: skip
def main(log_level: str, log_format: LogFormat) -> None:
    """Keep Salesforce and HubSpot contacts enriched through LoneScale, safely.

    \b
    Start here:
      lonescale-sync demo                     the whole cycle on the embedded sandbox
      lonescale-sync init DIR                 a starter config and mappings to adapt
      lonescale-sync check --config F         validate config and mappings against your CRMs
      lonescale-sync sync NAME --config F     one cycle now (add --wait to write results back)
      lonescale-sync run --config F           the daemon: every instance on its schedule
      lonescale-sync status --config F        what happened, per instance
    """
    setup_logging(log_level, log_format)


@main.command()
@CONFIG
@click.option("--concurrency", type=click.IntRange(1, 32), metavar="K",
              help="Cluster mode: units of work at once (default: [cluster] concurrency).")  # fmt: skip
def run(config_path: Path, concurrency: int | None) -> None:
    """Run the daemon: each instance on its schedule, the webhook server, and the write-back loop.

    Stops cleanly on SIGTERM or Ctrl-C: in-flight writes finish and everything received is stored. With
    [cluster] enabled, this process is one replica: a worker (`work`) and a receiver (`serve`) in one.
    """
    from connector.runtime import Runtime

    config = read_config(config_path)
    if config.settings.cluster.enabled:
        from connector.cluster import run_cluster_member

        run_cluster_member(Runtime(config), concurrency)
        return
    from connector.daemon import run_daemon

    run_daemon(Runtime(config))


@main.command()
@CONFIG
@click.option("--concurrency", type=click.IntRange(1, 32), metavar="K",
              help="Units of work (a sync or a write-back of one instance) at once; default: [cluster] concurrency.")  # fmt: skip
def work(config_path: Path, concurrency: int | None) -> None:
    """Cluster mode: run the shared schedule's syncs and write-backs, as one of any number of workers.

    Needs [cluster] enabled and a PostgreSQL store prepared by `lonescale-sync db upgrade`. Workers share one
    clock (each sync runs once, whichever worker ticks) and never work on one instance at once; a worker that
    dies is noticed by the others ([cluster] stall_timeout) and its work is taken up. No webhook: run
    receivers with `serve`. Stops on SIGTERM or Ctrl-C once its running units finish.
    """
    from connector.cluster import run_worker
    from connector.runtime import Runtime

    config = read_config(config_path)
    if not config.settings.cluster.enabled:
        raise click.UsageError("`work` is for cluster mode: set [cluster] enabled = true (and a PostgreSQL "
                               "[store] url), or use `run` for one process")  # fmt: skip
    runtime = Runtime(config)
    try:
        run_worker(runtime, concurrency)
    finally:
        runtime.close()


def _host_port(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    host, sep, port = (value or "").rpartition(":")
    if value is not None and not (sep and host and port.isdigit() and 0 < int(port) < 65536):
        raise click.BadParameter(f"{value!r} is not host:port, e.g. 0.0.0.0:8080")
    return value


@main.command()
@CONFIG
@click.option("--listen", callback=_host_port, metavar="HOST:PORT",
              help="Listen here instead of [webhook] listen (several receivers on one machine).")  # fmt: skip
def serve(config_path: Path, listen: str | None) -> None:
    """Receive LoneScale's webhooks only: no schedule, no write-back.

    Each delivery is stored in the shared store before its 2xx; whichever process writes back (`run`, or
    `apply`) finds it there. Run any number behind a load balancer on one PostgreSQL store, beside one `run`.
    Stops on SIGTERM or Ctrl-C once the requests in flight are stored and answered.
    """
    from connector.receiver import serve_receiver

    serve_receiver(read_config(config_path), listen=listen)


@main.command()
@click.argument("instance")
@CONFIG
@click.option("--wait", is_flag=True, help="Also serve the webhook and write results back before returning.")
@click.option("--timeout", default=600.0, show_default=True, type=click.FloatRange(1, 86400),
              help="With --wait: seconds to wait for LoneScale's results.")  # fmt: skip
@click.option("--dry-run", is_flag=True,
              help="Pull and map only: what would be sent, by type, and the credits it could cost.")  # fmt: skip
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False),
              help="With --dry-run: also write the summary to FILE (.json, else CSV).")  # fmt: skip
def sync(
    instance: str, config_path: Path, wait: bool, timeout: float, dry_run: bool, output: Path | None
) -> None:
    """Run one cycle for INSTANCE now: pull changed contacts, send them to LoneScale.

    With --wait it also serves the webhook and writes back the results of every job it sent, even when the
    run stopped early (a cap, the credits) or failed after sending some.

    \b
    Exit status:
      0  done: every result written
      1  failed, busy (another run of INSTANCE), or the CRM rejected every record
      2  bad configuration
      3  --wait: some results had not arrived after --timeout (the daemon applies them when they do)
      4  stopped at a cap or out of credits; with --wait, the results of the jobs it sent are written
    """
    with runtime_for(config_path) as runtime:
        if instance not in runtime.instances:
            raise click.UsageError(
                f"no instance {instance!r} in {config_path}; known: {', '.join(runtime.instances)}"
            )
        if dry_run:
            _dry_run(runtime.sync(instance, dry_run=True), output)
            return
        if wait:
            runtime.serve_webhook()
        with Activity(f"{instance}: pulling changed records") as activity:
            report = runtime.sync(instance, progress=lambda r: activity.say(
                f"{instance}: pulled {r.pulled}, sent {r.sent} in {len(r.jobs)} job(s)"))  # fmt: skip
        skipped = ", ".join(f"{reason}: {n}" for reason, n in report.skipped.most_common()) or "none"
        run = f" (run {report.run_id})" if report.run_id else ""  # what rollback --run and history know it by
        click.echo(f"{instance}: {report.status}{run} — pulled {report.pulled}, sent {report.sent} "
                   f"in {len(report.jobs)} job(s); skipped {skipped}")  # fmt: skip
        if report.status != "succeeded":
            click.echo(f"{instance}: {report.message}", err=True)
        code = _waited(runtime, instance, report.jobs, timeout) if wait and report.jobs else 0
        if report.status == "stopped" and report.at_budget:
            code = code or EXIT_AT_BUDGET
        elif report.status != "succeeded":
            code = EXIT_FAILED
        raise SystemExit(code)


def _waited(runtime: Runtime, instance: str, jobs: list[str], timeout: float) -> int:
    """Serve the webhook and write back what the jobs paid for; the exit status it comes to (0 if all well)."""
    with Activity(f"{instance}: waiting for LoneScale's results of {len(jobs)} job(s)") as activity:
        applied, finished = runtime.wait_and_apply(jobs, timeout, progress=lambda total, waiting: activity.say(
            f"{instance}: {waiting} of {len(jobs)} job(s) await results; wrote {total.fields_written} field(s) "
            f"on {total.records_written} record(s)"))  # fmt: skip
    click.echo(f"{instance}: {applied.summary()}")
    for line in applied.listing(20):
        click.echo(f"  {line}")
    if applied.failures:
        click.echo("\n".join(applied.failures), err=True)
        return EXIT_FAILED
    if applied.records_rejected and not applied.records_written:
        click.echo(f"{instance}: the CRM rejected every record (see `lonescale-sync failures`)", err=True)
        return EXIT_FAILED
    if not finished:
        click.echo(f"{instance}: some results had not arrived after {timeout:.0f} s; "
                   "the daemon (`run`) applies them when they do", err=True)  # fmt: skip
        return EXIT_TIMEOUT
    return 0


def _dry_run(report: SyncReport, output: Path | None) -> None:
    rows = [{"what": f"send for {types}", "contacts": n} for types, n in report.by_types.most_common()]
    rows += [{"what": f"skip: {reason}", "contacts": n} for reason, n in report.skipped.most_common()]
    click.echo(
        f"{report.instance} (dry run, nothing sent or written): pulled {report.pulled}, would send {report.sent}"
    )
    for row in rows:
        click.echo(f"  {row['what']:<40} {row['contacts']:>7}")
    custom = json.dumps(report.custom, ensure_ascii=False)
    click.echo(f"  each request's custom: {custom}")
    balance = "an unread balance" if report.credits_at_start is None else f"{report.credits_at_start:g} left"
    click.echo(f"  projected credits (if everything is found): {report.projected_credits:g} of {balance}")
    for warning in dry_run_warnings(report):
        click.echo(f"  warning: {warning}", err=True)
    if report.status != "succeeded" and not report.at_budget:
        click.echo(f"  {report.status}: {report.message}")
    if output:
        reports.write(output, [*rows, {"what": f"each request's custom: {custom}", "contacts": None},
                               {"what": "projected credits", "contacts": report.projected_credits}])  # fmt: skip


def dry_run_warnings(report: SyncReport) -> list[str]:
    """What a person must know before running it for real: the balance or a cap would stop it."""
    warnings = []
    if report.credits_at_start is not None and report.projected_credits > report.credits_at_start:
        warnings.append(
            f"the projected cost ({report.projected_credits:g} credits) exceeds the balance "
            f"({report.credits_at_start:g}): the run would stop when the credits run out, the rest waiting for "
            "the next run; lower [instances.budget] caps or add credits"
        )
    if report.at_budget:
        warnings.append(f"the run would stop early: {report.message}")
    return warnings


@main.command()
@CONFIG
@click.option("--create-missing", is_flag=True,
              help="Create the connector's own status properties where the CRM allows it (HubSpot).")  # fmt: skip
def check(config_path: Path, create_missing: bool) -> None:
    """Validate the config and each mapping against the live CRM schema; list every problem, exit 1 if any."""
    from connector.wiring import build_instance

    config = read_config(config_path)
    problems: list[str] = []
    for settings in config.settings.instances:
        try:
            instance = build_instance(config, settings)
        except ConfigError as exc:
            problems += [f"{settings.name} mapping {p}" for p in exc.problems]
            continue
        if create_missing:
            for line in create_missing_status_fields(instance):
                click.echo(line)
        problems += [str(p) for p in check_instance(instance)]
        instance.adapter.close()
    if problems:
        click.echo(f"{len(problems)} problem(s):", err=True)
        for problem in problems:
            click.echo(f"  - {problem}", err=True)
        raise SystemExit(EXIT_FAILED)
    click.echo(f"{config_path}: {len(config.settings.instances)} instance(s) ready")


@main.command()
@click.option("--contacts", default=1000, show_default=True, type=click.IntRange(0, 1_000_000),
              help="Contacts seeded in each CRM emulator.")  # fmt: skip
@click.option("--seed", default=1, show_default=True, type=int, help="Same seed, same data.")
@click.option("--hubspot-port", default=0, type=click.IntRange(0, 65535), help="0 lets the OS choose.")
@click.option("--salesforce-port", default=0, type=click.IntRange(0, 65535), help="0 lets the OS choose.")
@click.option("--lonescale-port", default=0, type=click.IntRange(0, 65535), help="0 lets the OS choose.")
@click.option("--relaxed", is_flag=True,
              help="Turn off rate limits, delays and API quotas (on by default, as in the real APIs).")  # fmt: skip
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
    except ServerFailed as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        for line in endpoints.as_lines():
            click.echo(line)
        click.echo("# serving; Ctrl-C to stop", err=True)
        while not stop.wait(0.5):
            pass
    finally:
        running.stop()


@main.command()
@click.option("--contacts", default=300, show_default=True, type=click.IntRange(10, 100_000),
              help="Contacts seeded in each CRM emulator.")  # fmt: skip
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--dir", "directory", default=Path("lonescale-demo"), show_default=True,
              type=click.Path(path_type=Path, file_okay=False),
              help="Where the demo keeps its store and config (a previous demo's are replaced).")  # fmt: skip
def demo(contacts: int, seed: int, directory: Path) -> None:
    """A full cycle on the embedded sandbox: a Salesforce and a HubSpot instance, pulled, enriched, written back.

    Nothing to configure and nothing leaves this machine; exits 0 when every step worked. The store and config
    stay in --dir: `lonescale-sync status --serve --config DIR/demo.toml` shows them on the status page.
    """
    from connector.demo import run_demo

    raise SystemExit(run_demo(contacts=contacts, seed=seed, directory=directory))


for _command in [*COMMANDS, status_command, *OPS_COMMANDS]:
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
