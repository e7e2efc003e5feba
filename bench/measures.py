"""The six measurements of issue 5, each a function of N returning plain figures (dicts) for the report."""

from __future__ import annotations

import cProfile
import io
import json
import math
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.pipeline import Connector, Cycle, build_instance, run_cycle
from bench.sandbox import SandboxProcess
from connector.store import schema
from connector.values import same_value

Figures = dict[str, Any]
SINGLE_RECORD = ("{contactId}", "{record_id}", "{objectId}")
NOT_API = ("/services/oauth2/token",)  # a login is not an API call against the daily limit
CHILD_TIMEOUT = 3600.0


# ----------------------------------------------------------------------------------------------- helpers
def minimum_calls(crm: str, n: int) -> dict[str, int]:
    """The issue's minimum for one sync of n contacts."""
    if crm == "salesforce":
        return {"pull": math.ceil(n / 2000), "read": math.ceil(n / 2000), "write": math.ceil(n / 200)}
    return {"pull": math.ceil(n / 200), "read": math.ceil(n / 100), "write": math.ceil(n / 100)}


def kind_of(crm: str, method: str, route: str) -> str:
    if any(marker in route for marker in SINGLE_RECORD):
        return "single-record"
    if crm == "salesforce":
        if "/query" in route:
            return "pull"
        if route.endswith("/composite/sobjects/{sobject}"):
            return "read"
        if route.endswith("/composite/sobjects") and method == "PATCH":
            return "write"
    else:
        if route.endswith("/search"):
            return "pull"
        if route.endswith("/batch/read"):
            return "read"
        if route.endswith("/batch/update"):
            return "write"
    return "other"


def crm_calls(calls: list[dict[str, Any]], crm: str) -> Figures:
    """API calls by kind (pull, read, write, single-record, other), 429s, and the per-route table."""
    by_kind: dict[str, int] = {"pull": 0, "read": 0, "write": 0, "single-record": 0, "other": 0}
    total = throttled = 0
    routes = []
    for call in calls:
        routes.append(f"{call['method']} {call['route']} → {call['status']}: {call['count']}")
        if call["route"] in NOT_API:
            continue
        total += call["count"]
        throttled += call["count"] if call["status"] == 429 else 0
        by_kind[kind_of(crm, call["method"], call["route"])] += call["count"]
    return {"total": total, "by_kind": by_kind, "status_429": throttled, "routes": routes}


def clear_stats(sandbox: SandboxProcess) -> None:
    for name in ("hubspot", "salesforce", "lonescale"):
        sandbox.control(name).clear_stats()


def cycle_on(
    sandbox: SandboxProcess,
    crm: str,
    n: int,
    *,
    naive: bool = False,
    paced: bool = False,
    between: Callable[[Connector], None] | None = None,
    after: Callable[[Connector, Cycle], Figures] | None = None,
    profile: cProfile.Profile | None = None,
    delivery: str = "per_contact",
) -> tuple[Cycle, Figures]:
    """A fresh sandbox of n contacts, a fresh store, one end-to-end cycle; the CRM's and LoneScale's stats.
    `delivery`: LoneScale's webhook envelope, one POST per contact (its documented payload) or per job."""
    sandbox.reset(n, delivery=delivery)
    with tempfile.TemporaryDirectory(prefix="lonescale-bench-") as directory:
        connector = Connector.open(Path(directory), sandbox.endpoints["lonescale"])
        instance = build_instance(crm, sandbox.endpoints, naive=naive, paced=paced)
        try:
            clear_stats(sandbox)
            sandbox_cpu = sandbox.cpu_seconds()
            if profile is not None:
                profile.enable()
            cycle = run_cycle(
                connector,
                instance,
                contacts=n,
                batch_size=1 if naive else 100,
                lonescale_url=sandbox.endpoints["lonescale"],
                between=(lambda: between(connector)) if between else None,
                per_job=delivery == "per_job",
            )
            if profile is not None:
                profile.disable()
            stats: Figures = {
                "sandbox_cpu_seconds": sandbox.cpu_seconds() - sandbox_cpu,
                "crm": crm_calls(sandbox.control(crm).calls(), crm),
                "lonescale": crm_calls(sandbox.control("lonescale").calls(), "lonescale"),
            }
            if after is not None:
                stats.update(after(connector, cycle))
        finally:
            instance.adapter.close()
            connector.close()
    return cycle, stats


def cycle_figures(cycle: Cycle, stats: Figures) -> Figures:
    pulled = cycle.sync.pulled
    return {
        "pulled": pulled,
        "sent": cycle.sync.sent,
        "records_written": cycle.applied.records_written,
        "records_rejected": cycle.applied.records_rejected,
        "apply_passes": cycle.apply_passes,
        "phases_seconds": {k: round(v, 3) for k, v in cycle.seconds.items()},
        "elapsed_seconds": round(cycle.elapsed, 3),
        "contacts_per_second": round(pulled / cycle.elapsed, 1) if cycle.elapsed else None,
        "connector_cpu_seconds": round(cycle.cpu_seconds, 3),
        "connector_cpu_per_10k": round(cycle.cpu_seconds / pulled * 10_000, 2) if pulled else None,
        "sandbox_cpu_seconds": round(stats["sandbox_cpu_seconds"], 3),
        "crm_calls": stats["crm"],
        "lonescale_calls": stats["lonescale"]["total"],
    }


# ------------------------------------------------------------------------------------ 1. API calls
def measure_api_calls(sandbox: SandboxProcess, n: int, crm: str, *, naive: bool = True) -> Figures:
    """One sync of n contacts end to end; CRM calls against the issue's minimum; the naive baseline beside."""
    cycle, stats = cycle_on(sandbox, crm, n)
    figures = cycle_figures(cycle, stats)
    minimum = minimum_calls(crm, n)
    figures["minimum"] = minimum
    figures["minimum_total"] = sum(minimum.values())
    figures["ratio"] = round(stats["crm"]["total"] / figures["minimum_total"], 3)
    figures["single_record_calls"] = stats["crm"]["by_kind"]["single-record"]
    if naive:
        naive_cycle, naive_stats = cycle_on(sandbox, crm, n, naive=True)
        figures["naive"] = cycle_figures(naive_cycle, naive_stats)
        figures["naive"]["ratio"] = round(naive_stats["crm"]["total"] / figures["minimum_total"], 3)
    return figures


# -------------------------------------------------------------------------- 2. write-back at a limit
def measure_rate_limited_write_back(sandbox: SandboxProcess, n: int, *, limit_per_10s: int = 100) -> Figures:
    """HubSpot at `limit_per_10s`: results for n contacts written back; elapsed vs the floor, 429s, lost."""
    hubspot = sandbox.control("hubspot")

    def limit_on(
        connector: Connector,
    ) -> None:  # pull and webhook ran unlimited: only the write-back is timed
        hubspot.configure(ten_secondly_limit=limit_per_10s, search_per_second=5)
        clear_stats(sandbox)

    def verify(connector: Connector, cycle: Cycle) -> Figures:
        hubspot.configure(ten_secondly_limit=None, search_per_second=None)
        calls = crm_calls(hubspot.calls(), "hubspot")
        store, name = connector.store, "bench-hs"
        journal = [
            entry
            for run in store.runs.recent(name, limit=10_000)
            if run["kind"] == "apply"
            for entry in store.journal.for_run(run["id"])
        ]
        written = [e for e in journal if e.outcome == "written"]
        checker = build_instance("hubspot", sandbox.endpoints)
        try:
            ids = sorted({e.record_id for e in written})
            fields = sorted({e.field for e in written})
            current = checker.adapter.read_current(ids, fields) if ids else {}
        finally:
            checker.adapter.close()
        lost_fields = [
            e for e in written if not same_value(current.get(e.record_id, {}).get(e.field), e.new_value)
        ]
        with store.database.engine.connect() as db:
            waiting = db.execute(
                select(func.count())
                .select_from(schema.job_contacts)
                .where(schema.job_contacts.c.status == "waiting")
            ).scalar_one()
        unsettled = [e for e in journal if e.outcome in ("pending", "unknown")]
        return {
            "write_calls": calls,
            "fields_expected": len(written),
            "fields_lost": len(lost_fields),
            "contacts_never_applied": int(waiting),
            "journal_unsettled": len(unsettled),
            "journal_rejected": sum(1 for e in journal if e.outcome == "rejected"),
        }

    cycle, stats = cycle_on(sandbox, "hubspot", n, paced=True, between=limit_on, after=verify)
    calls = stats["write_calls"]
    applied = cycle.applied
    to_read = cycle.sync.sent  # every record with a result is read once before writing
    to_write = applied.records_written + applied.records_rejected
    needed = math.ceil(to_read / 100) + math.ceil(to_write / 100)
    rate = limit_per_10s / 10.0
    elapsed = cycle.seconds["apply+write"]
    admitted = calls["total"] - calls["status_429"]
    lost = stats["fields_lost"] + stats["contacts_never_applied"] + stats["journal_unsettled"]
    return {
        "contacts": n,
        "records_with_results": to_read,
        "records_to_write": to_write,
        "calls_needed": needed,
        "calls_made": calls["total"],
        "calls_admitted": admitted,
        "status_429": calls["status_429"],
        "share_429": round(calls["status_429"] / calls["total"], 4) if calls["total"] else 0.0,
        "floor_seconds": round(needed / rate, 2),
        "floor_seconds_issue_formula": round(2 * math.ceil(n / 100) / rate, 2),
        "elapsed_seconds": round(elapsed, 2),
        "ratio_to_floor": round(elapsed / (needed / rate), 3) if needed else None,
        "updates_lost": lost,
        "fields_expected": stats["fields_expected"],
        "fields_lost": stats["fields_lost"],
        "contacts_never_applied": stats["contacts_never_applied"],
        "journal_unsettled": stats["journal_unsettled"],
        "journal_rejected": stats["journal_rejected"],
        "routes": calls["routes"],
        "naive_floor_seconds": round((to_read + to_write) / rate, 1),  # one GET + one PATCH per record
    }


# ------------------------------------------------------------------------------------ 3. throughput
def measure_throughput(
    sandbox: SandboxProcess, n: int, crm: str, *, naive_n: int | None = None, profile_n: int | None = None
) -> Figures:
    """Contacts per second end to end on a relaxed sandbox with one webhook per job, connector CPU per 10,000,
    a cProfile top five. Not one webhook per contact: that figure measured how fast the emulator sends them
    (its CPU was most of the run's); the connector's own cost per delivery is the webhook group's."""
    job_cycle, job_stats = cycle_on(sandbox, crm, n, delivery="per_job")
    figures: Figures = {"per_job": cycle_figures(job_cycle, job_stats)}
    if naive_n:
        naive_cycle, naive_stats = cycle_on(sandbox, crm, naive_n, naive=True)
        figures["naive"] = cycle_figures(naive_cycle, naive_stats)
        figures["naive"]["contacts"] = naive_n
    if profile_n:
        profiler = cProfile.Profile(time.thread_time)  # the main thread's CPU, not its waits
        cycle_on(sandbox, crm, profile_n, profile=profiler, delivery="per_job")
        figures["profile_contacts"] = profile_n
        figures["hot_spots"] = hot_spots(profiler, 5)
        figures["hot_spots_cumulative"] = hot_spots(profiler, 8, sort="cumulative", project_only=True)
    return figures


def hot_spots(
    profiler: cProfile.Profile, count: int, sort: str = "tottime", project_only: bool = False
) -> list[str]:
    """The top functions by own time (or cumulative, project code only), one line each."""
    stats = pstats.Stats(profiler, stream=io.StringIO())
    rows = []
    for (filename, line, name), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        if project_only and "/connector/" not in filename:
            continue
        short = filename.split("site-packages/")[-1].split("/work/main/")[-1]
        rows.append(
            (tottime if sort == "tottime" else cumtime, f"{short}:{line} {name}", calls, tottime, cumtime)
        )
    rows.sort(reverse=True)
    return [
        f"{where} — {tot:.2f} s own, {cum:.2f} s cumulative, {calls} calls"
        for _, where, calls, tot, cum in rows[:count]
    ]


# ---------------------------------------------------------------------------------------- 4. memory
def measure_memory(sandbox: SandboxProcess, small: int, large: int, crm: str) -> Figures:
    """Peak RSS of a full cycle of `small` vs `large` contacts, each in a fresh child process."""
    figures: Figures = {"crm": crm}
    for label, n in (("small", small), ("large", large)):
        sandbox.reset(n, delivery="per_job")  # 200,000 one-contact POSTs would take the sandbox minutes
        figures[label] = run_child(["memory-child", "--crm", crm, "--contacts", str(n),
                                    "--endpoints", json.dumps(sandbox.endpoints)])  # fmt: skip
    figures["ratio"] = round(figures["large"]["max_rss_kb"] / figures["small"]["max_rss_kb"], 3)
    return figures


def peak_rss_kb() -> int:
    """This process's own peak RSS: VmHWM, the high-water mark of its address space. Not `ru_maxrss`,
    which Linux carries across fork and exec, so a child forked from a large parent (this harness after
    the 100,000-contact runs) starts at the parent's size (getrusage(2), "ru_maxrss")."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def memory_child(crm: str, n: int, endpoints: Mapping[str, str]) -> Figures:
    """Runs in the child: one cycle, then this process's peak RSS (Linux: kilobytes)."""
    baseline = peak_rss_kb()
    with tempfile.TemporaryDirectory(prefix="lonescale-bench-mem-") as directory:
        connector = Connector.open(Path(directory), endpoints["lonescale"])
        instance = build_instance(crm, endpoints)
        try:
            cycle = run_cycle(
                connector, instance, contacts=n, lonescale_url=endpoints["lonescale"], per_job=True
            )
        finally:
            instance.adapter.close()
            connector.close()
    peak = peak_rss_kb()
    return {"contacts": n, "pulled": cycle.sync.pulled, "max_rss_kb": peak, "rss_after_imports_kb": baseline,
            "elapsed_seconds": round(cycle.elapsed, 2)}  # fmt: skip


def run_child(arguments: list[str], timeout: float = CHILD_TIMEOUT) -> Figures:
    """`python -m bench ARGS` in a fresh process; its last stdout line is JSON."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench", *arguments],
        capture_output=True,
        timeout=timeout,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"bench child {arguments[0]} failed: {completed.stderr.decode()[-3000:]}")
    result: Figures = json.loads(completed.stdout.decode().strip().splitlines()[-1])
    return result


def timed(function: Callable[[], Figures]) -> Figures:
    started = time.perf_counter()
    figures = function()
    figures["harness_seconds"] = round(time.perf_counter() - started, 1)
    return figures
