"""The commands that look before they write, and that go back: dry runs, replay, rollback, history, failures."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from connector import reports
from connector.apply import ApplyReport, apply_results
from connector.apply_report import jsonable
from connector.cli_support import CONFIG, EXIT_FAILED, runtime_for
from connector.errors import Busy
from connector.progress import Activity
from connector.resend import resend_expired
from connector.review import failures, replay, retry_failed, rollback
from connector.runtime import Runtime
from connector.store import JournalEntry
from connector.sync_report import custom_shown

OUTPUT = click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False, writable=True),
    help="Also write every row to FILE: JSON for a .json name, CSV otherwise.",
)
DRY_RUN = click.option("--dry-run", is_flag=True, help="Show what would be written; write nothing, anywhere.")
DIFF_COLUMNS = ["instance", "record_id", "field", "current", "proposed", "write", "reason"]


def _report(console: Console, title: str, report: ApplyReport, dry_run: bool, output: Path | None) -> None:
    if dry_run:
        reports.show(console, f"{title}: fields that would change (dry run)", report.planned, DIFF_COLUMNS)
        if output:
            reports.write(output, report.planned)
            console.print(f"wrote {len(report.planned)} rows to {output}")
        return
    console.print(f"{title}: {report.summary()}; {report.duplicates} result(s) already applied")
    for line in report.listing(20):
        console.print(f"  {line}", markup=False, highlight=False)
    for busy in report.busy:  # its results stay where they are, for when it is free
        console.print(f"not written now: {busy}")
    if report.failures or report.busy:
        console.print("\n".join(report.failures))
        raise SystemExit(EXIT_FAILED)


@click.command("apply")
@CONFIG
@DRY_RUN
@OUTPUT
def apply_command(config_path: Path, dry_run: bool, output: Path | None) -> None:
    """Write the results waiting in the inbox back to the CRM (the daemon does this on its own).

    With --dry-run: every field it would write, current → proposed, with the policy's decision and reason.
    """
    with runtime_for(config_path) as runtime:
        report = _apply(runtime, dry_run)
        _report(reports.console(), "apply", report, dry_run, output)


def _apply(runtime: Runtime, dry_run: bool) -> ApplyReport:
    return apply_results(runtime.instances, runtime.store, dry_run=dry_run)


@click.command("replay")
@CONFIG
@click.option("--job", "job_id", help="Replay the results stored for this job.")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="Replay the results received since this moment (UTC).")  # fmt: skip
@DRY_RUN
@OUTPUT
def replay_command(
    config_path: Path, job_id: str | None, since: datetime | None, dry_run: bool, output: Path | None
) -> None:
    """Apply stored results again, without calling LoneScale: after a mapping fix or a CRM outage.

    The write policies judge the CRM as it is now, so values a person typed are still kept.
    """
    if job_id is None and since is None:
        raise click.UsageError("give --job JOB or --since WHEN")
    with runtime_for(config_path) as runtime:
        moment = since.replace(tzinfo=UTC) if since else None
        with Activity("replay: reading the stored results") as activity:
            report = replay(runtime.instances, runtime.store, job_id=job_id, since=moment, dry_run=dry_run,
                            progress=activity.say)  # fmt: skip
        if not report.deliveries and not report.planned:
            click.echo("no stored results match")
            return
        _report(reports.console(), "replay", report, dry_run, output)


@click.command("rollback")
@CONFIG
@click.option("--run", "run_id", type=int, required=True, help="The run to undo (ids: `status`, `history`).")
@DRY_RUN
@OUTPUT
def rollback_command(config_path: Path, run_id: int, dry_run: bool, output: Path | None) -> None:
    """Restore every field one run changed to its previous value.

    Fields a person edited after our write are kept and listed. The rollback is itself a journaled run.
    """
    console = reports.console()
    with runtime_for(config_path) as runtime:
        try:
            report = rollback(runtime.instances, runtime.store, run_id, dry_run=dry_run)
        except (ValueError, Busy) as exc:
            raise click.ClickException(str(exc)) from exc
    reports.show(
        console, f"rollback of run {run_id}" + (" (dry run)" if dry_run else ""), report.planned, DIFF_COLUMNS
    )
    if output:
        reports.write(output, report.planned)
    if not dry_run:
        console.print(
            f"restored {report.restored} field(s) in run {report.run_id}; {report.rejected} rejected"
        )
        if report.rejected:
            raise SystemExit(EXIT_FAILED)


@click.command("history")
@click.argument("record_id")
@CONFIG
@click.option("--instance", help="Only this instance (a record id is unique within one CRM).")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the entries as JSON, for scripts (ISO times, stable keys)."
)
def history_command(record_id: str, config_path: Path, instance: str | None, as_json: bool) -> None:
    """Every field we ever wrote on RECORD_ID: old → new, run, job and time."""
    with runtime_for(config_path) as runtime:
        names = [instance] if instance else list(runtime.instances)
        entries = [e for name in names for e in runtime.store.journal.for_record(name, record_id)]
    if as_json:
        click.echo(json.dumps([history_row(e) for e in entries], indent=2, ensure_ascii=False))
        return
    reports.show(reports.console(), f"history of {record_id}", entries,
                 ["written_at", "instance", "field", "old_value", "new_value", "outcome", "run", "job_id", "reason"])  # fmt: skip


def history_row(entry: JournalEntry) -> dict[str, Any]:
    """One journal entry for `history --json`: the table's columns, in its order, times in ISO 8601 UTC."""
    return {
        "written_at": jsonable(entry.written_at), "instance": entry.instance, "record_id": entry.record_id,
        "field": entry.field, "old_value": entry.old_value, "new_value": entry.new_value, "outcome": entry.outcome,
        "run": entry.run, "job_id": entry.job_id, "reason": entry.reason,
    }  # fmt: skip


@click.command("failures")
@CONFIG
@OUTPUT
def failures_command(config_path: Path, output: Path | None) -> None:
    """The quarantine: records the CRM rejected, jobs that expired, deliveries we could not use — with reasons."""
    with runtime_for(config_path) as runtime:
        found = failures(runtime.store, list(runtime.instances))
    console = reports.console()
    reports.show(console, "failures", found)
    if any(f.kind == "expired job" for f in found):
        console.print("an expired job may have been billed: `retry-failed --jobs --dry-run` shows what sending "
                      "its contacts again would cost")  # fmt: skip
    if output:
        reports.write(output, found)


@click.command("retry-failed")
@CONFIG
@click.option("--jobs", "resend", is_flag=True,
              help="Instead: send the contacts of expired jobs to LoneScale again. This costs credits.")  # fmt: skip
@click.option("--job", "job_ids", multiple=True, metavar="JOB",
              help="With --jobs: only this expired job (repeat for several).")  # fmt: skip
@DRY_RUN
@OUTPUT
def retry_failed_command(
    config_path: Path, resend: bool, job_ids: tuple[str, ...], dry_run: bool, output: Path | None
) -> None:
    """Write again the records the CRM rejected, from their stored results (no new LoneScale call).

    With --jobs: send the contacts of jobs that expired without results to LoneScale again. Those jobs may
    have been run and billed (a lost answer, a webhook that never came), so this is never done on its own.
    Try --dry-run first: it lists each contact and what sending it again can cost. Results come back to the
    daemon's webhook, as for `sync`.
    """
    if job_ids and not resend:
        raise click.UsageError("--job names an expired job to send again: add --jobs")
    with runtime_for(config_path) as runtime:
        if resend:
            _resend(runtime, job_ids, dry_run, output)
            return
        with Activity("retry: reading the stored results of rejected records") as activity:
            report = retry_failed(runtime.instances, runtime.store, dry_run=dry_run, progress=activity.say)
        _report(reports.console(), "retry", report, dry_run, output)


def _resend(runtime: Runtime, job_ids: tuple[str, ...], dry_run: bool, output: Path | None) -> None:
    console = reports.console()
    with Activity("retry: reading the contacts of expired jobs") as activity:
        report = resend_expired(runtime.instances, runtime.store, runtime.lonescale, runtime.config.settings.lonescale,
                                runtime.webhook_base, job_ids=job_ids, dry_run=dry_run, progress=activity.say)  # fmt: skip
    title = "contacts of expired jobs" + (" (dry run: nothing is sent)" if dry_run else "")
    reports.show(console, title, report.rows)
    if output:
        reports.write(output, report.rows)
    verb = "would send" if dry_run else "chose to send"
    console.print(f"{verb} {len(report.chosen)} contact(s) again: at most {report.most_credits:g} credits "
                  f"(balance {report.balance:g})")  # fmt: skip
    for line in report.costs():
        console.print(f"  {line}")
    settings = runtime.config.settings.lonescale
    for name in sorted({row.instance for row in report.chosen} if dry_run else ()):
        custom = json.dumps(custom_shown(runtime.instances[name], settings), ensure_ascii=False)
        console.print(f"  {name}: each request's custom: {custom}", markup=False, highlight=False)
    for run in report.runs:
        console.print(f"{run.instance}: run {run.run_id} {run.status}: sent {run.sent} in {len(run.jobs)} job(s)"
                      + (f": {run.message}" if run.message else ""))  # fmt: skip
    for busy in report.busy:
        console.print(f"not sent now: {busy}")
    if report.busy or any(run.status != "succeeded" for run in report.runs):
        raise SystemExit(EXIT_FAILED)


COMMANDS = [
    apply_command,
    replay_command,
    rollback_command,
    history_command,
    failures_command,
    retry_failed_command,
]
