"""`lonescale-sync status`: the StatusReport (connector.status) as aligned text, as JSON (`--json`), or served
as the status page (`--serve`) until Ctrl-C."""

from __future__ import annotations

import signal
import threading
from datetime import datetime
from pathlib import Path
from types import FrameType

import click

from connector.cli_support import CONFIG, read_config
from connector.config import Config
from connector.config_serving import is_loopback
from connector.errors import ServerFailed
from connector.metrics import Metrics
from connector.overdue import MAY_HAVE_BEEN_BILLED
from connector.serving import ThreadedServer
from connector.status import InstanceStatus, StatusReport, build_status
from connector.status_app import create_status_app
from connector.store import Store
from connector.window import SKEW_WORTH_SAYING

LABEL = 13  # the label column: "no results:  " is the widest


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "never"


def _span(seconds: float) -> str:
    minutes = abs(seconds) / 60
    if minutes < 1:
        return f"{abs(seconds):.0f} s"
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {n}" for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def instance_lines(item: InstanceStatus, now: datetime) -> list[str]:
    """One instance, a label and its value per line; only what its latest runs and the store say now."""
    lines: list[tuple[str, str]] = []
    sync = item.last_sync
    if sync is None:
        lines.append(("last sync", "never"))
    else:
        text = (f"run {sync.id}, {_when(sync.started_at)} {sync.status} — pulled {sync.pulled}, sent {sync.sent} "
                f"in {sync.jobs} job(s)")  # fmt: skip
        if sync.skipped:
            text += f"; skipped {_counts(sync.skipped)}"
        lines.append(("last sync", text))  # a stop's or a failure's reason is listed with the failures
    lines.append(("next sync", "due now" if item.next_run <= now else
                  f"{_when(item.next_run)} (in {_span((item.next_run - now).total_seconds())})"))  # fmt: skip
    write = item.last_write_back
    if write is None:
        lines.append(("last write", "never"))
    else:
        lines.append(("last write", f"run {write.last_run_id}, {_when(write.started_at)} {write.status} — wrote "
                      f"{write.fields_written} field(s) on {write.records_written} record(s)"))  # fmt: skip
    since = item.this_cycle
    if since is not None:
        lines.append(("written", f"{since.fields_written} field(s) on {since.records_written} "
                      f"record(s); the CRM rejected {since.records_rejected} record(s) and refused "
                      f"{since.fields_refused} field(s), from the results of the latest sync that sent contacts"))  # fmt: skip
    credits = item.credits
    spend = f"sent this month {credits.month_sent}" + (
        f" of {credits.monthly_cap}" if credits.monthly_cap else " (no monthly cap)"
    )
    if credits.run_sent is not None:
        spend += f"; last run sent {credits.run_sent} (≤ {credits.run_projected_credits or 0:g} credits)"
    if credits.balance_at_last_run is not None:
        spend += f", balance {credits.balance_at_last_run:g} at its start"
    if credits.per_run_cap:
        spend += f"; at most {credits.per_run_cap} a run"
    lines.append(("budget", spend))
    lines += _state_lines(item)
    return [f"  {(label + ':') if label else '':<{LABEL}}{value}" for label, value in lines]


def _state_lines(item: InstanceStatus) -> list[tuple[str, str]]:
    """Where the instance stands now: cursor, clock, lease, jobs, and what needs a person."""
    lines: list[tuple[str, str]] = []
    if item.cursor is None:
        lines.append(("cursor", "not yet (first run starts at start_date)"))
    else:
        lines.append(("cursor", f"{_when(item.cursor)} ({_span(item.cursor_lag_seconds or 0)} behind now)"))
    skew = item.clock_skew_seconds
    if skew is not None and abs(skew) > SKEW_WORTH_SAYING:
        lines.append(("clock", f"this machine is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} the "
                      "CRM's; the cursor follows the CRM's clock, so nothing is skipped (fix it with NTP)"))  # fmt: skip
    if item.busy:
        lines.append(("busy", item.busy))
    lines.append(("jobs", _counts(item.jobs) if item.jobs else "none"))
    if item.results_waiting:
        lines.append(("waiting", f"{item.results_waiting} delivery(ies) stored, not yet applied (oldest "
                      f"{_when(item.oldest_waiting)})"))  # fmt: skip
    if item.unmatched_results:
        lines.append(("unmatched", f"{item.unmatched_results} result(s) matched no contact: paid for, not written "
                      "(their deliveries are kept: `lonescale-sync failures`)"))  # fmt: skip
    if item.uncertain_jobs:
        lines.append(("uncertain", f"{item.uncertain_jobs} job(s) may have reached LoneScale unbeknown to us: never "
                      "posted again; without results after their grace they go to `failures`"))  # fmt: skip
    if item.billed_expired_jobs:
        lines.append(("no results", f"{item.billed_expired_jobs} job(s) expired and {MAY_HAVE_BEEN_BILLED}: their "
                      f"{item.billed_expired_contacts} contact(s) stay in cooldown (`failures`; "
                      "`retry-failed --jobs --dry-run` to send them again)"))  # fmt: skip
    shown: dict[str, int] = {}
    for failure in item.failures:
        shown[failure.kind] = shown.get(failure.kind, 0) + 1
        label = {"expired job": "expired", "record rejected": "rejected", "field refused": "refused"}.get(
            failure.kind, failure.kind.split()[0]
        )
        lines.append((label, f"{failure.subject}: {failure.reason}"))
    more = [f"{item.failure_totals[kind] - n} more {kind}(s)" for kind, n in shown.items()
            if item.failure_totals.get(kind, 0) > n]  # fmt: skip
    if more:
        lines.append(("", "; ".join(more) + ": `lonescale-sync failures` lists them all"))
    return lines


def status_text(report: StatusReport) -> str:
    out = []
    for item in report.instances:
        out.append(f"{item.name} ({item.crm}, schedule {item.schedule})")
        out += instance_lines(item, report.generated_at)
    return "\n".join(out)


@click.command("status")
@CONFIG
@click.option(
    "--json", "as_json", is_flag=True, help="Print the status as JSON, for scripts (ISO times, stable keys)."
)
@click.option("--serve", is_flag=True, help="Serve the status page from the store until Ctrl-C.")
@click.option(
    "--listen", metavar="HOST:PORT", help="With --serve: where to listen (default: [status] listen)."
)
def status_command(config_path: Path, as_json: bool, serve: bool, listen: str | None) -> None:
    """Per instance: last runs, next run, cursor, jobs by state, results waiting, credits and failures."""
    from connector.wiring import build_store

    if listen and not serve:
        raise click.UsageError("--listen is for --serve")
    config = read_config(config_path, credentials=False)  # it reads the store only
    store = build_store(config)
    try:
        if serve:
            _serve(store, config, listen or config.settings.status.listen)
            return
        report = build_status(store, config)
        click.echo(report.model_dump_json(indent=2) if as_json else status_text(report))
    finally:
        store.close()


def _serve(store: Store, config: Config, listen: str) -> None:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise click.UsageError(f"--listen {listen!r} is not HOST:PORT")
    if not is_loopback(host) and not config.settings.status.token_env:
        raise click.UsageError(
            f"{listen} is reachable from other machines: set [status] token_env, or listen on 127.0.0.1"
        )
    # /metrics beside the page: the store's figures (pulled, sent, written, jobs, last success) move with every
    # sync whoever ran it; the counters of calls and deliveries belong to the daemon's own /metrics.
    metrics = Metrics(store, config.settings.instances)
    app = create_status_app(store, config, routes=metrics.routes())
    server = ThreadedServer(app, host=host, port=int(port), name="status")
    try:
        url = server.start()
    except ServerFailed as exc:
        raise ServerFailed(f"{exc}: free it, or pass --listen HOST:PORT (or set [status] listen)") from exc
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    click.echo(f"status page: {url}/status (Ctrl-C to stop)")
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
