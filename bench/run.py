"""`python -m bench [options]`: every measurement of issue 5 in one run, then BENCHMARKS.md."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.measures import (
    measure_api_calls,
    measure_memory,
    measure_rate_limited_write_back,
    measure_throughput,
    memory_child,
    timed,
)
from bench.pipeline import CRMS
from bench.report import write_report
from bench.sandbox import SandboxProcess
from bench.webhook_load import measure_webhook_ingest, serve
from bench.webhook_path import measure_webhook_path

ROOT = Path(__file__).resolve().parent.parent
# Each group's measurements, in the order; `make bench GROUP=writeback` runs one, `all` every one.
GROUPS = ("calls", "writeback", "throughput", "memory", "webhook", "cluster")
POSTGRES_ENV, TEST_POSTGRES_ENV = "LONESCALE_SYNC_BENCH_POSTGRES_URL", "LONESCALE_SYNC_TEST_POSTGRES_URL"


@dataclass(frozen=True)
class Options:
    calls: int = 10_000
    rate_limited: int = 20_000
    throughput: int = 100_000
    naive: int = 10_000  # the naive baseline's size beside 1 and 3 (its single calls make it slow)
    profile: int = 10_000
    memory_small: int = 10_000
    memory_large: int = 200_000
    webhook_posts: int = 5_000
    webhook_concurrency: int = 16
    webhook_path_deliveries: int = 20_000  # one-contact deliveries, received, stored and applied (issue 14)
    webhook_path_concurrency: int = 32
    crms: tuple[str, ...] = CRMS
    seed: int = 1
    output: Path = ROOT / "BENCHMARKS.md"
    groups: tuple[str, ...] = GROUPS  # the groups to run (bench.run.GROUPS); the others' figures are kept
    cluster_pairs: int = 100  # HubSpot portals, and as many Salesforce orgs
    cluster_contacts: int = 500
    cluster_workers: tuple[int, ...] = (1, 3)
    cluster_receivers: int = 2
    postgres: str | None = None


def parse(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    defaults = Options()
    parser.add_argument("--calls", type=int, default=defaults.calls, help="N for 1 (API calls)")
    parser.add_argument("--rate-limited", type=int, default=defaults.rate_limited, help="N for 2")
    parser.add_argument("--throughput", type=int, default=defaults.throughput, help="N for 3")
    parser.add_argument("--naive", type=int, default=defaults.naive, help="N of the naive baseline (6)")
    parser.add_argument("--profile", type=int, default=defaults.profile, help="N of the profiled cycle")
    parser.add_argument("--memory-small", type=int, default=defaults.memory_small)
    parser.add_argument("--memory-large", type=int, default=defaults.memory_large)
    parser.add_argument("--webhook-posts", type=int, default=defaults.webhook_posts)
    parser.add_argument("--webhook-concurrency", type=int, default=defaults.webhook_concurrency)
    parser.add_argument("--webhook-path-deliveries", type=int, default=defaults.webhook_path_deliveries,
                        help="one-contact deliveries posted from another process, stored, then applied")  # fmt: skip
    parser.add_argument("--webhook-path-concurrency", type=int, default=defaults.webhook_path_concurrency)
    parser.add_argument("--crm", choices=[*CRMS, "both"], default="both")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--output", type=Path, default=defaults.output)
    parser.add_argument("--group", type=groups_of, default=defaults.groups, dest="groups",
                        help=f"all (the default), or one or several of {', '.join(GROUPS)} separated by commas: "
                             "only those are run, the others' last figures are kept (bench/results.json)")  # fmt: skip
    parser.add_argument("--cluster-pairs", type=int, default=defaults.cluster_pairs,
                        help="HubSpot portals, and as many Salesforce orgs")  # fmt: skip
    parser.add_argument("--cluster-contacts", type=int, default=defaults.cluster_contacts)
    parser.add_argument("--cluster-workers", default=",".join(map(str, defaults.cluster_workers)))
    parser.add_argument("--cluster-receivers", type=int, default=defaults.cluster_receivers)
    parser.add_argument("--postgres", default=os.environ.get(POSTGRES_ENV) or os.environ.get(TEST_POSTGRES_ENV),
                        help=f"the cluster's database (default ${POSTGRES_ENV}, else ${TEST_POSTGRES_ENV})")  # fmt: skip
    args = parser.parse_args(argv)
    return Options(
        calls=args.calls, rate_limited=args.rate_limited, throughput=args.throughput, naive=args.naive,
        profile=args.profile, memory_small=args.memory_small, memory_large=args.memory_large,
        webhook_posts=args.webhook_posts, webhook_concurrency=args.webhook_concurrency,
        webhook_path_deliveries=args.webhook_path_deliveries, webhook_path_concurrency=args.webhook_path_concurrency,
        crms=CRMS if args.crm == "both" else (args.crm,), seed=args.seed, output=args.output,
        groups=args.groups, cluster_pairs=args.cluster_pairs, cluster_contacts=args.cluster_contacts,
        cluster_workers=tuple(int(w) for w in args.cluster_workers.split(",")),
        cluster_receivers=args.cluster_receivers, postgres=args.postgres,
    )  # fmt: skip


def revision() -> str:
    """The commit measured (read-only git), with a mark when connector/ has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "connector"], cwd=ROOT, capture_output=True,
                               text=True, timeout=10, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head} (connector/ modified)" if dirty else head


def machine() -> dict[str, Any]:
    return {
        "commit": revision(),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# The figures' key in the results (and BENCHMARKS.md) of each group but the cluster's (a section of its own).
KEYS = {"calls": ("calls",), "writeback": ("rate_limited",), "throughput": ("throughput",),
        "memory": ("memory",), "webhook": ("webhook", "webhook_path")}  # fmt: skip
RESULTS = ROOT / "bench" / "results.json"  # every group's last figures, BENCHMARKS.md rendered from them


def groups_of(text: str) -> tuple[str, ...]:
    """`all`, one group or several (`calls,writeback`), in the order of GROUPS."""
    asked = set(GROUPS) if text == "all" else {g.strip() for g in text.split(",") if g.strip()}
    unknown = asked - set(GROUPS)
    if unknown or not asked:
        raise argparse.ArgumentTypeError(
            f"unknown group(s) {sorted(unknown)}: choose all or among {', '.join(GROUPS)}"
        )
    return tuple(g for g in GROUPS if g in asked)


def _calls(options: Options, sandbox: SandboxProcess) -> dict[str, Any]:
    results: dict[str, Any] = {"calls": {}}
    for crm in options.crms:
        log(f"1. API calls, {crm}, N={options.calls} (+ naive N={options.calls})")
        results["calls"][crm] = timed(lambda c=crm: measure_api_calls(sandbox, options.calls, c))  # type: ignore[misc]
    return results


def _writeback(options: Options, sandbox: SandboxProcess) -> dict[str, Any]:
    log(f"2. write-back at 100 per 10 s, HubSpot, N={options.rate_limited}")
    return {"rate_limited": timed(lambda: measure_rate_limited_write_back(sandbox, options.rate_limited))}


def _throughput(options: Options, sandbox: SandboxProcess) -> dict[str, Any]:
    results: dict[str, Any] = {"throughput": {}}
    for crm in options.crms:
        log(
            f"3. throughput, {crm}, N={options.throughput} (naive N={options.naive}, profile N={options.profile})"
        )
        results["throughput"][crm] = timed(
            lambda c=crm: measure_throughput(  # type: ignore[misc]
                sandbox, options.throughput, c, naive_n=options.naive, profile_n=options.profile
            )
        )
    return results


def _memory(options: Options, sandbox: SandboxProcess) -> dict[str, Any]:
    log(f"4. memory, {options.crms[0]}, N={options.memory_small} vs N={options.memory_large}")
    return {
        "memory": timed(
            lambda: measure_memory(sandbox, options.memory_small, options.memory_large, options.crms[0])
        )
    }


def _webhook(options: Options) -> dict[str, Any]:
    log(f"5. webhook ingest, {options.webhook_posts} posts, concurrency {options.webhook_concurrency}")
    ingest = timed(lambda: measure_webhook_ingest(options.webhook_posts, options.webhook_concurrency))
    n, c = options.webhook_path_deliveries, options.webhook_path_concurrency
    log(f"6. webhook path, {n} one-contact deliveries from another process, concurrency {c}, then applied")
    return {"webhook": ingest, "webhook_path": timed(lambda: measure_webhook_path(n, c))}


MEASURES = {"calls": _calls, "writeback": _writeback, "throughput": _throughput, "memory": _memory}


def run_all(options: Options, command: str, groups: Sequence[str] = tuple(KEYS)) -> dict[str, Any]:
    """The groups' measurements (not the cluster's), in the issue's order; the sandbox in one child process,
    reset before each. Every group's figures carry the commit and command that measured them."""
    started = time.perf_counter()
    results: dict[str, Any] = {"machine": machine(), "command": command, "runs": {}, "options": {
        k: str(v) if isinstance(v, Path) else v for k, v in options.__dict__.items()}}  # fmt: skip
    sandboxed = [g for g in groups if g in MEASURES]
    if sandboxed:
        with SandboxProcess(contacts=10, seed=options.seed, relaxed=True) as sandbox:
            for group in sandboxed:
                results.update(_timed_group(group, lambda g=group: MEASURES[g](options, sandbox), results))  # type: ignore[misc]
    if "webhook" in groups:
        results.update(_timed_group("webhook", lambda: _webhook(options), results))
    results["harness_seconds"] = round(time.perf_counter() - started, 1)
    return results


def _timed_group(group: str, measure: Any, results: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    figures: dict[str, Any] = measure()
    results["runs"][group] = {"commit": results["machine"]["commit"], "command": results["command"],
                              "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    return figures


def merged(previous: dict[str, Any], fresh: dict[str, Any], groups: Sequence[str]) -> dict[str, Any]:
    """The last figures of every group: `fresh`'s for the groups just run, `previous`'s for the others."""
    if not previous:
        return fresh
    keep = {key for group in KEYS if group not in groups for key in KEYS[group]}
    out = {**fresh, **{key: previous[key] for key in keep if key in previous}}
    out["runs"] = {**{g: r for g, r in previous.get("runs", {}).items() if g not in groups}, **fresh["runs"]}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "memory-child":
        child = argparse.ArgumentParser()
        child.add_argument("--crm", required=True)
        child.add_argument("--contacts", type=int, required=True)
        child.add_argument("--endpoints", required=True)
        args = child.parse_args(argv[1:])
        print(json.dumps(memory_child(args.crm, args.contacts, json.loads(args.endpoints))))
        return 0
    if argv and argv[0] == "webhook-server":
        child = argparse.ArgumentParser()
        child.add_argument("--db", type=Path, required=True)
        child.add_argument("--jobs", type=int, default=100)
        args = child.parse_args(argv[1:])
        serve(args.db, args.jobs)
        return 0
    if (
        argv and argv[0] == "render"
    ):  # BENCHMARKS.md again from a run's saved figures, its cluster section kept
        from bench.cluster_report import current_section, write_section

        results = json.loads(Path(argv[1]).read_text())
        output = Path(argv[2]) if len(argv) > 2 else Options().output
        kept = current_section(output)
        write_report(results, output)
        if kept:
            write_section(output, kept)
        return 0
    options = parse(argv)
    command = shlex.join(["python", "-m", "bench", *argv])
    groups = options.groups
    if groups == ("cluster",) and not options.postgres:
        log(f"the cluster group runs on PostgreSQL: set {POSTGRES_ENV} or pass --postgres")
        return 2
    measured = [g for g in groups if g in KEYS]
    if measured:
        from bench.cluster_report import current_section, write_section

        fresh = run_all(options, command, measured)
        previous = (
            json.loads(RESULTS.read_text()) if RESULTS.exists() and options.output == Options().output else {}
        )
        results = merged(previous, fresh, measured)
        missing = [g for g in KEYS if not all(k in results for k in KEYS[g])]
        if missing:  # a first run of one group: the report waits for the others
            log(f"no figures yet for {', '.join(missing)}: run them (make bench GROUP=...) for a full report")
        kept = current_section(options.output)  # write_report writes the whole file
        if not missing:
            write_report(results, options.output)
            if kept:
                write_section(options.output, kept)
        if options.output == Options().output:
            RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
        save(results, "lonescale-bench-results.json")
        log(f"wrote {options.output} in {fresh['harness_seconds']} s")
    if "cluster" in groups:
        if options.postgres:
            run_cluster(options, command)
        else:
            log(
                f"cluster group skipped: it runs on PostgreSQL (set {POSTGRES_ENV}); its section is left as it is"
            )
    return 0


def save(results: dict[str, Any], name: str) -> None:
    figures = Path(tempfile.gettempdir()) / name
    figures.write_text(json.dumps(results, indent=2, default=str))
    log(f"figures saved to {figures}")


def run_cluster(options: Options, command: str) -> dict[str, Any]:
    """Issue 13's cluster figures, written to their own section of the output only."""
    from bench.cluster import ClusterOptions, measure_cluster  # procrastinate and the tests' world: only here
    from bench.cluster_report import section, write_section

    assert options.postgres
    log(f"cluster: {2 * options.cluster_pairs} instances × {options.cluster_contacts}, "
        f"workers {options.cluster_workers}, {options.cluster_receivers} receiver(s)")  # fmt: skip
    results = measure_cluster(ClusterOptions(
        postgres=options.postgres, pairs=options.cluster_pairs, contacts=options.cluster_contacts,
        workers=options.cluster_workers, receivers=options.cluster_receivers, log=log,
    ))  # fmt: skip
    if (options.cluster_pairs, options.cluster_contacts) != (100, 500):
        results["fitted"] = (
            f"the issue's size is 200 instances × 500 contacts (the default); this run used "
            f"{2 * options.cluster_pairs} × {options.cluster_contacts}."
        )
    results["commit"], results["command"] = revision(), command
    save(results, "lonescale-bench-cluster.json")
    write_section(options.output, section(results, command, results["commit"], os.cpu_count()))
    log(f"wrote the cluster section of {options.output} in {results['harness_seconds']} s")
    return results
