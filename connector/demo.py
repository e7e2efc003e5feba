"""`lonescale-sync demo`: the real pipeline, end to end, against the embedded sandbox.

It writes a throwaway configuration that points a Salesforce and a HubSpot instance at the emulators, then
runs exactly what `sync --wait` runs, twice: the second pass shows that our own write-back does not send a
single contact back to LoneScale.
"""

from __future__ import annotations

import logging
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from rich import box
from rich.console import Console
from rich.status import Status
from rich.table import Table

from connector.apply import ApplyReport
from connector.checks import check_instance, create_missing_status_fields
from connector.config import load_config
from connector.runtime import Runtime
from connector.sandbox.control import SandboxControl
from connector.sandbox.runner import Sandbox, SandboxEndpoints
from connector.sandbox.salesforce.org import CONNECTOR_STATUS_FIELDS
from connector.starter import MAPPINGS  # package data: the demo runs from any folder after `pip install`
from connector.sync import SyncReport

RESULT_TIMEOUT = 120.0


@dataclass
class Outcome:
    name: str
    sync: SyncReport
    applied: ApplyReport
    finished: bool
    second: SyncReport
    api_calls: int

    @property
    def ok(self) -> bool:
        return (
            self.sync.status == "succeeded"
            and self.finished
            and self.applied.fields_written > 0
            and self.second.status == "succeeded"
            and self.second.sent == 0
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _instance(crm: str, mapping: str, settings: str) -> str:
    """One `[[instances]]` entry, named after its CRM, settling at once (the demo's edits are its own)."""
    return f"""
[[instances]]
name = "{crm}"
crm = "{crm}"
mapping = "{MAPPINGS / mapping}"
settle = "0s"

[instances.{crm}]
{settings}"""


def demo_config(ep: SandboxEndpoints, directory: Path) -> tuple[Path, dict[str, str]]:
    port = free_port()
    salesforce = f"""instance_url = "{ep.salesforce}"
auth = "client_credentials"
client_id_env = "DEMO_SF_CLIENT_ID"
client_secret_env = "DEMO_SF_CLIENT_SECRET"
"""
    hubspot = f"""base_url = "{ep.hubspot}"
access_token_env = "DEMO_HUBSPOT_TOKEN"
"""
    text = f"""
[lonescale]
base_url = "{ep.lonescale}"
api_key_env = "DEMO_LONESCALE_API_KEY"
enrichment_type = ["email", "phone", "profile"]
detect_job_change = true

[webhook]
listen = "127.0.0.1:{port}"

[store]
url = "sqlite:///{directory / "demo.db"}"
{_instance("salesforce", "salesforce-contact.toml", salesforce)}{_instance("hubspot", "hubspot-contacts.toml", hubspot)}"""
    path = directory / "demo.toml"
    path.write_text(text)
    env = {
        "DEMO_LONESCALE_API_KEY": ep.lonescale_api_key,
        "DEMO_SF_CLIENT_ID": ep.salesforce_client_id,
        "DEMO_SF_CLIENT_SECRET": ep.salesforce_client_secret,
        "DEMO_HUBSPOT_TOKEN": ep.hubspot_token,
    }
    return path, env


def admin_creates_status_fields(salesforce_url: str) -> None:
    """A new org has none of the connector's fields and the API cannot create them: the admin's Setup step."""
    control = SandboxControl(salesforce_url)
    try:
        for sobject in ("Contact", "Lead"):
            control.create_fields(sobject, CONNECTOR_STATUS_FIELDS)
    finally:
        control.close()


def summary(outcomes: list[Outcome], credits_used: float) -> Table:
    table = Table(
        title="one full cycle per CRM, then a second sync", box=box.SIMPLE_HEAD, collapse_padding=True
    )
    columns = [
        "instance",
        "pulled",
        "sent",
        "skipped",
        "found",
        "written",
        "kept",
        "rejected",
        "refused",
        "API calls",
        "re-sent",
    ]
    for column in columns:
        table.add_column(column, justify="left" if column == "instance" else "right")
    for o in outcomes:
        kept = sum(
            n
            for reason, n in o.applied.kept_by_policy.items()
            if reason not in ("no value found", "already equal")
        )
        table.add_row(
            o.name, str(o.sync.pulled), str(o.sync.sent), str(sum(o.sync.skipped.values())),
            str(o.applied.records_written - o.applied.not_found), str(o.applied.fields_written), str(kept),
            str(o.applied.records_rejected), str(o.applied.fields_refused), str(o.api_calls), str(o.second.sent),
        )  # fmt: skip
    table.caption = (
        "skipped: no name, nothing to match on, or nothing missing · found: LoneScale found the person\n"
        "written: CRM fields · kept: values left alone by their policy · API calls: to the CRM\n"
        "rejected: records the CRM refused whole · refused: fields it refused on records otherwise written\n"
        f"re-sent: contacts the 2nd sync sent again · LoneScale credits used: {credits_used:g}"
    )
    return table


DEFAULT_DIR = Path("lonescale-demo")  # in the current directory: where `status --serve` finds it afterwards
KEPT = ("demo.toml", "demo.db", "demo.db-wal", "demo.db-shm")  # the demo's own files in its directory


def fresh_directory(directory: Path) -> Path:
    """The demo's directory, emptied of a previous demo's store and config (the sandbox is seeded anew each
    time, so an old store's cursors and cooldowns would make this run send nothing). Nothing else is
    touched."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in KEPT:
        (directory / name).unlink(missing_ok=True)
    return directory.resolve()


def _program() -> str:
    """How to type this program here: its name when it is on PATH, else where it is (`make demo` runs it from
    .venv/bin, which need not be on PATH)."""
    if shutil.which("lonescale-sync"):
        return "lonescale-sync"
    beside = Path(sys.executable).parent / "lonescale-sync"
    return str(beside) if beside.is_file() else "lonescale-sync"


def run_demo(contacts: int = 300, seed: int = 1, directory: Path = DEFAULT_DIR) -> int:
    """The cycle on both CRMs; the store and config stay in `directory` for `status --serve` to show."""
    console = Console()
    if not console.is_terminal:  # a log file or CI: no width to respect, and a truncated table helps nobody
        console = Console(width=120)
    logging.getLogger("connector").setLevel(logging.WARNING)  # the progress display says it all
    kept = fresh_directory(directory)
    with Sandbox(contacts=contacts, seed=seed) as sandbox:
        ep = sandbox.endpoints
        console.print(
            f"[bold]sandbox[/] Salesforce {ep.salesforce} · HubSpot {ep.hubspot} · LoneScale {ep.lonescale}"
        )
        path, env = demo_config(ep, kept)
        admin_creates_status_fields(ep.salesforce)
        console.print(
            "[dim]salesforce: the status fields created on Contact and Lead, as an admin does in Setup "
            "(the sandbox's POST /__sandbox/fields)[/]"
        )
        runtime = Runtime(load_config(path, env=env))
        try:
            for instance in runtime.instances.values():
                for line in create_missing_status_fields(instance):
                    console.print(f"[dim]{line}[/]")
                problems = check_instance(instance)
                if problems:
                    console.print(
                        f"[red]{instance.name}: {len(problems)} problem(s)[/]",
                        *map(str, problems),
                        sep="\n  ",
                    )
                    return 1
            runtime.serve_webhook()
            before = runtime.lonescale.credits().enrichment
            outcomes = []
            for name in runtime.instances:
                with console.status(f"{name}: pulling") as status:

                    def progress(r: SyncReport, shown: Status = status) -> None:
                        skipped = sum(r.skipped.values())
                        shown.update(f"{r.instance}: pulled {r.pulled} · sent {r.sent} · skipped {skipped}")

                    report = runtime.sync(name, progress=progress)
                    status.update(f"{name}: {report.sent} contacts sent; waiting for LoneScale's webhooks")
                    applied, finished = runtime.wait_and_apply(report.jobs, RESULT_TIMEOUT)
                    status.update(f"{name}: second sync")
                    second = runtime.sync(name)
                crm = ep.salesforce if runtime.instances[name].settings.crm == "salesforce" else ep.hubspot
                outcomes.append(Outcome(name, report, applied, finished, second, SandboxControl(crm).count()))
                written = f"{applied.fields_written} fields written on {applied.records_written} records"
                console.print(f"[green]✓[/] {name}: {written}")
                for line in applied.listing(5):
                    console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
            used = before - runtime.lonescale.credits().enrichment
        finally:
            runtime.close()
    console.print(summary(outcomes, used))
    ok = all(o.ok for o in outcomes)
    console.print(
        "[green]demo ok[/]: both CRMs enriched; the second sync sent nothing" if ok else "[red]demo failed[/]"
    )
    console.print(f"the demo's store and config are kept in {kept}; to see them on the status page:")
    console.print(
        f"  {_program()} status --serve --config {path}", markup=False, highlight=False, soft_wrap=True
    )
    return 0 if ok else 1
