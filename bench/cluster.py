"""Issue 13's cluster row: the same instances synced by 1 worker and by 3 (`lonescale-sync work`) on one
PostgreSQL store, behind `serve` receivers and a TCP balancer, against relaxed emulators (tests/cluster/world.py:
every CRM instance its own emulator on a loopback address of its own, all on one event loop in this process).

Figures per worker count: wall time from the workers' start until every instance's sync has succeeded and
every job is applied (contacts/s); CRM API calls per instance from each emulator's own stats; time from a
webhook's arrival (its inbox row) to the first CRM write of its job's contacts (the write journal); the CPU
seconds of each kind of process, to tell what limits the ratio on this machine's cores.
"""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tests.conftest  # noqa: F401  (first, as under pytest: tests.support reads its Served)
from bench.measures import NOT_API, crm_calls, cycle_on, kind_of
from bench.sandbox import SandboxProcess
from connector.sandbox import credentials
from connector.sandbox.control import SandboxControl
from connector.sandbox.kit import ServedApp
from connector.sandbox.lonescale.app import LoneScaleEmulator
from tests.cluster.world import Cluster, cluster_world, write_cluster_config
from tests.conftest import Served

Figures = dict[str, Any]
TICK = os.sysconf("SC_CLK_TCK")
BATCH_SIZE = 100  # as the single-process figures (bench/pipeline.py)


@dataclass(frozen=True)
class ClusterOptions:
    postgres: str
    pairs: int = 100  # HubSpot portals, and as many Salesforce orgs
    contacts: int = 500  # each
    workers: tuple[int, ...] = (1, 3)
    receivers: int = 2
    concurrency: int = 4  # units at once per worker (`work --concurrency`), the config's default
    timeout: float = 1800.0  # per worker count
    root: Path | None = None  # where configs and process logs go (a temporary directory otherwise)
    single_process: bool = True  # the one-instance figure the calls are compared with
    log: Any = field(default=None, compare=False)


# ------------------------------------------------------------------------------------------------ CPU
def process_cpu(pid: int) -> float | None:
    """utime + stime of a live process, in seconds (/proc/<pid>/stat, fields 14 and 15)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def postgres_cpu() -> float | None:
    """CPU of the PostgreSQL processes visible here (their backends live as long as the pools' connections;
    one that exited mid-run takes its share with it, so this is a floor). None when the server is elsewhere."""
    total, seen = 0.0, False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                total += process_cpu(int(entry.name)) or 0.0
                seen = True
    return total if seen else None


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of every core since boot (/proc/stat), for the share of the machine in use."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return float(sum(values) - idle), float(sum(values))


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ------------------------------------------------------------------------------------------ the world
@contextlib.contextmanager
def lonescale_served() -> Iterator[Served]:
    """The LoneScale emulator, relaxed, on a server thread of this process (as tests/conftest.py serves it):
    custom echoed (the connector is told so) and one webhook per job, so jobs hold `batch_size` contacts."""
    emulator = LoneScaleEmulator(seed=1, realistic=False, api_key=credentials.LONESCALE_API_KEY)
    server = ServedApp(emulator.asgi_app(), name="lonescale")
    url = server.start()
    emulator.base_url = url  # type: ignore[attr-defined]
    control = SandboxControl(url, timeout=120.0)
    try:
        control.configure(echo_custom=True, delivery="per_job")
        control.admin_post("credits", {"enrichment_credits": 10**12})
        yield Served(url, control, emulator)
    finally:
        control.close()
        server.stop()


def progress(cluster: Cluster) -> Figures:
    row = cluster.sql(
        "SELECT (SELECT count(DISTINCT instance) FROM runs WHERE kind = 'sync' AND status = 'succeeded') AS synced,"
        " (SELECT count(*) FROM jobs) AS jobs,"
        " (SELECT count(*) FROM jobs WHERE status <> 'applied') AS open,"
        " (SELECT count(*) FROM inbox WHERE status = 'new') AS unread"
    )[0]
    return dict(row._mapping)


def settled(cluster: Cluster) -> bool:
    now = progress(cluster)
    return bool(
        now["synced"] == len(cluster.instances)
        and now["jobs"] > 0
        and now["open"] == 0
        and now["unread"] == 0
    )


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def webhook_to_write(cluster: Cluster) -> Figures:
    """Per delivery: its inbox row's arrival to the first journaled write of one of its job's contacts."""
    rows = cluster.sql(
        "SELECT i.received_at AS received, min(w.written_at) AS written FROM inbox i"
        " JOIN write_journal w ON w.job_id = i.job_id AND w.outcome = 'written'"
        " GROUP BY i.id, i.received_at"
    )
    seconds = [(r.written - r.received).total_seconds() for r in rows]
    deliveries = cluster.sql("SELECT count(*) AS n FROM inbox")[0].n
    return {
        "deliveries": deliveries,
        "with_writes": len(seconds),
        "p50_s": percentile(seconds, 0.50),
        "p99_s": percentile(seconds, 0.99),
        "max_s": max(seconds) if seconds else None,
    }


def calls_per_instance(cluster: Cluster) -> Figures:
    """Each emulator's own count (the OAuth token call not counted), averaged per CRM and by kind."""
    per_crm: Figures = {}
    for crm, prefix in (("hubspot", "hs-"), ("salesforce", "sf-")):
        names = [n for n in cluster.instances if n.startswith(prefix)]
        counted = [crm_calls(cluster.control(n).calls(), crm) for n in names]
        kinds = counted[0]["by_kind"].keys() if counted else []
        other: dict[str, int] = {}
        for name in names:
            for call in cluster.control(name).calls():
                if kind_of(crm, call["method"], call["route"]) == "other" and call["route"] not in NOT_API:
                    route = f"{call['method']} {call['route']}"
                    other[route] = other.get(route, 0) + call["count"]
        per_crm[crm] = {
            "instances": len(names),
            "first": {"instance": names[0], **counted[0]} if counted else None,  # same data as the one alone
            "other_routes": other,
            "mean_total": statistics.fmean(c["total"] for c in counted) if counted else None,
            "min_total": min(c["total"] for c in counted) if counted else None,
            "max_total": max(c["total"] for c in counted) if counted else None,
            "mean_by_kind": {k: statistics.fmean(c["by_kind"][k] for c in counted) for k in kinds},
            "status_429": sum(c["status_429"] for c in counted),
        }
    return per_crm


def run_workers(options: ClusterOptions, lonescale: Served, workers: int, root: Path) -> Figures:
    """One measurement: a fresh schema and fresh emulators, receivers up, then `workers` workers started."""
    say = options.log or (lambda message: None)
    lonescale.control.configure(echo_custom=True, delivery="per_job")
    with cluster_world(root, options.postgres, lonescale, pairs=options.pairs, contacts=options.contacts,
                       realistic=False) as cluster:  # fmt: skip
        # Longer stall and lease than the chaos tests': on a saturated machine a heartbeat may be late, and a
        # sweep would be a fault injected by the benchmark itself.
        write_cluster_config(cluster, batch_size=BATCH_SIZE, lonescale_extra="assume_custom_echoed = true",
                             stall_timeout="120s", lease_ttl="240s")  # fmt: skip
        for name in cluster.instances:  # the setup's calls (check --create-missing) are not the sync's
            cluster.control(name).clear_stats()
        lonescale.control.clear_stats()
        receivers = [cluster.start("serve") for _ in range(options.receivers)]
        say(f"cluster: {len(cluster.instances)} instances × {options.contacts}, {workers} worker(s) starting")
        pg0, busy0, self0 = postgres_cpu(), machine_cpu(), self_cpu()
        booted = [process_cpu(p.pid) or 0.0 for p in receivers]  # their start-up is not the run's
        started = time.perf_counter()
        pool = [cluster.start("work", "--concurrency", str(options.concurrency)) for _ in range(workers)]
        cluster.until("every instance synced and every job applied", lambda: settled(cluster),
                      timeout=options.timeout)  # fmt: skip
        elapsed = time.perf_counter() - started
        pg1, busy1, self1 = postgres_cpu(), machine_cpu(), self_cpu()
        cpu = {
            "workers": [process_cpu(p.pid) for p in pool],
            "receivers": [(process_cpu(p.pid) or 0.0) - b for p, b in zip(receivers, booted, strict=True)],
            "bench_process": self1 - self0,  # the emulators (one event loop), LoneScale, balancer, polling
            "postgres": None if pg0 is None or pg1 is None else pg1 - pg0,
            "machine_busy_share": (busy1[0] - busy0[0]) / max(1.0, busy1[1] - busy0[1]),
        }
        pulled = sum(r.pulled or 0 for r in cluster.sql(
            "SELECT (counts->>'pulled')::int AS pulled FROM runs WHERE kind = 'sync' AND status = 'succeeded'"))  # fmt: skip
        jobs = cluster.sql("SELECT count(*) AS n, coalesce(sum(contact_count), 0) AS contacts FROM jobs")[0]
        phases = cluster.sql(
            "SELECT (SELECT min(started_at) FROM runs WHERE kind = 'sync') AS first_sync,"
            " (SELECT max(finished_at) FROM runs WHERE kind = 'sync') AS last_sync,"
            " (SELECT min(written_at) FROM write_journal) AS first_write,"
            " (SELECT max(written_at) FROM write_journal) AS last_write"
        )[0]
        origin = phases.first_sync
        swept = sum(p.said().count("has been silent") for p in pool)
        return {
            "workers": workers,
            "receivers": options.receivers,
            "concurrency": options.concurrency,
            "instances": len(cluster.instances),
            "elapsed_seconds": round(elapsed, 2),
            "pulled": pulled,
            "contacts_per_second": pulled / elapsed if elapsed > 0 else None,
            "jobs": jobs.n,
            "contacts_sent": int(jobs.contacts),
            "sweeps": swept,
            "calls": calls_per_instance(cluster),
            "lonescale_calls": crm_calls(lonescale.control.calls(), "lonescale")["total"],
            "latency": webhook_to_write(cluster),
            # Seconds after the first sync started (the workers' own start-up is before it).
            "phases": {k: round((v - origin).total_seconds(), 1) for k, v in phases._mapping.items() if v},
            "cpu_seconds": cpu,
        }


def single_process_calls(contacts: int) -> Figures:
    """The single-process figure for one instance of `contacts` (bench/measures.py's cycle, per-job delivery),
    in the same run, per CRM, on the same seeded data as the cluster's `hs-0` and `sf-0` (tests/cluster/world.py
    seeds portal i with 100 + i, org i with 200 + i): what is written, so how many calls, depends on the data."""
    figures: Figures = {}
    with SandboxProcess(contacts=10, relaxed=True) as sandbox:
        for crm, seed in (("hubspot", 100), ("salesforce", 200)):
            sandbox.seed = seed
            _, stats = cycle_on(sandbox, crm, contacts, delivery="per_job")
            figures[crm] = {"total": stats["crm"]["total"], "by_kind": stats["crm"]["by_kind"]}
    return figures


def measure_cluster(options: ClusterOptions) -> Figures:
    say = options.log or (lambda message: None)
    started = time.perf_counter()
    results: Figures = {"pairs": options.pairs, "contacts": options.contacts, "runs": []}
    if options.single_process:
        say(f"cluster: single-process API calls, one instance of {options.contacts}")
        results["single_process_calls"] = single_process_calls(options.contacts)
    with contextlib.ExitStack() as stack:
        root = options.root or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="lonescale-cluster-"))
        )
        lonescale = stack.enter_context(lonescale_served())
        for workers in options.workers:
            where = root / f"workers-{workers}"
            where.mkdir(parents=True, exist_ok=True)
            figures = run_workers(options, lonescale, workers, where)
            say(f"cluster: {workers} worker(s): {figures['elapsed_seconds']} s, "
                f"{figures['contacts_per_second']:.0f} contacts/s")  # fmt: skip
            results["runs"].append(figures)
    by_workers = {r["workers"]: r for r in results["runs"]}
    low, high = min(by_workers), max(by_workers)
    if low != high and by_workers[low]["contacts_per_second"]:
        results["ratio"] = by_workers[high]["contacts_per_second"] / by_workers[low]["contacts_per_second"]
    results["harness_seconds"] = round(time.perf_counter() - started, 1)
    return results
