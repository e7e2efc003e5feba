"""The cluster section of BENCHMARKS.md: written between its markers, the rest of the file left as it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

BEGIN, END = "<!-- cluster -->", "<!-- /cluster -->"
CORES_NOTE = "the cores this machine has"


def _cpu(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"


def _calls(run: dict[str, Any], single: dict[str, Any] | None) -> str:
    parts = []
    for crm, figures in run["calls"].items():
        if not figures["instances"]:
            continue
        alone = f" vs {single[crm]['total']} alone" if single and crm in single else ""
        spread = (
            f" ({figures['min_total']}–{figures['max_total']})"
            if figures["min_total"] != figures["max_total"]
            else ""
        )
        parts.append(f"{crm} {figures['mean_total']:.1f}{spread}{alone}")
    return "; ".join(parts)


def _latency(run: dict[str, Any]) -> str:
    hook = run["latency"]
    if hook["p50_s"] is None:
        return "—"
    return f"p50 {hook['p50_s']:.2f} s, p99 {hook['p99_s']:.2f} s ({hook['with_writes']:,} of {hook['deliveries']:,})"


def cpu_line(run: dict[str, Any]) -> str:
    cpu = run["cpu_seconds"]
    workers = sum(v or 0 for v in cpu["workers"])
    receivers = sum(v or 0 for v in cpu["receivers"])
    total = workers + receivers + cpu["bench_process"] + (cpu["postgres"] or 0)
    return (
        f"{run['workers']} worker(s), {run['elapsed_seconds']:.1f} s wall: workers {workers:.1f} CPU s "
        f"({', '.join(_cpu(v) for v in cpu['workers'])}), receivers {receivers:.1f}, bench process (every CRM "
        f"emulator on one event loop, LoneScale, the balancer) {cpu['bench_process']:.1f}, PostgreSQL "
        f"{_cpu(cpu['postgres'])}; together {total:.1f} CPU s = {total / max(run['elapsed_seconds'], 1e-9):.2f} "
        f"cores busy on average; the machine's cores were {cpu['machine_busy_share']:.0%} busy (everything on it)."
    )


def limits(results: dict[str, Any], nproc: int | None) -> list[str]:
    """What limits the ratio, from the CPU figures: which processes used the cores, and the projection."""
    runs = {r["workers"]: r for r in results["runs"]}
    if len(runs) < 2:
        return []
    one, many = runs[min(runs)], runs[max(runs)]
    k = many["workers"]
    worker_cpu_per_contact = sum(v or 0 for v in one["cpu_seconds"]["workers"]) / max(1, one["pulled"])
    rest = one["cpu_seconds"]["bench_process"] + (one["cpu_seconds"]["postgres"] or 0)
    rest += sum(v or 0 for v in one["cpu_seconds"]["receivers"])
    rest_per_contact = rest / max(1, one["pulled"])
    per_contact = worker_cpu_per_contact + rest_per_contact
    one_cores = per_contact * one["contacts_per_second"]
    # With k workers each as busy as the one, the work would need k times (the one's worker cores) plus the
    # shared part growing with the rate: the cores it would take to reach a ratio of k.
    needed = k * one_cores
    bench_share = many["cpu_seconds"]["bench_process"] / max(many["elapsed_seconds"], 1e-9)
    return [
        f"With one worker the whole run kept {one_cores:.2f} cores busy ({per_contact * 1000:.2f} CPU ms per "
        f"contact: {worker_cpu_per_contact * 1000:.2f} in the worker, {rest_per_contact * 1000:.2f} in the "
        "receivers, the emulators and PostgreSQL). A ratio of "
        f"{k} needs about {k} × that = {needed:.1f} cores; this machine has {nproc}, so with {k} workers "
        f"the cores are the limit once they are full (busy {many['cpu_seconds']['machine_busy_share']:.0%}).",
        f"The emulators' single event loop (the bench process) used {bench_share:.2f} of a core with {k} "
        "workers: a ceiling of one core for every CRM instance together, reached at about "
        f"{many['contacts_per_second'] / max(bench_share, 1e-9):,.0f} contacts/s at this cost per contact. "
        "PostgreSQL's share is in the CPU line; it is not near a core here.",
    ]


def section(results: dict[str, Any], command: str, commit: str, nproc: int | None) -> str:
    runs = results["runs"]
    single = results.get("single_process_calls")
    n = results["pairs"] * 2
    rows = [
        "| workers | instances × contacts | wall s | contacts/s | ratio to 1 worker | CRM calls per instance "
        "(mean, range; one instance alone) | webhook → CRM write | command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = min(runs, key=lambda r: r["workers"])["contacts_per_second"] if runs else None
    for run in runs:
        ratio = run["contacts_per_second"] / base if base else None
        rows.append(
            f"| {run['workers']} (× `--concurrency {run['concurrency']}`), {run['receivers']} receiver(s) | "
            f"{run['instances']} × {results['contacts']} | {run['elapsed_seconds']:.1f} | "
            f"**{run['contacts_per_second']:,.0f}** | {'—' if ratio is None else f'{ratio:.2f} ×'} | "
            f"{_calls(run, single)} | {_latency(run)} | `{command}` |"
        )
    lines = [
        BEGIN,
        "## Cluster: 1 worker vs 3 (issue 13)",
        "",
        f"Written by `{command}` alone (`bench/cluster.py`), commit {commit}; the sections above are not rerun. "
        f"{n} instances ({results['pairs']} HubSpot portals, {results['pairs']} Salesforce orgs, "
        f"{results['contacts']} contacts each) on one PostgreSQL store, each CRM its own relaxed emulator on a "
        "loopback address of its own, all on one event loop in the bench process (`connector/sandbox/portals.py`, "
        "`tests/cluster/world.py`); LoneScale relaxed, `custom` echoed and the connector told so "
        "(`assume_custom_echoed = true`), one webhook per job of 100 contacts, through a TCP balancer to the "
        "receivers (`lonescale-sync serve`). Wall time runs from the workers' start (their imports included) "
        "until every instance's sync has succeeded and every job is applied. Calls are each emulator's own count "
        "(the OAuth token call not counted), beside one instance of the same size synced by one process in the "
        "same run (bench/measures.py's cycle). Webhook → CRM write: per delivery, its inbox row's `received_at` "
        "to the first `write_journal.written_at` of its job.",
        "",
    ]
    if results.get("fitted"):
        lines += [f"**Size:** {results['fitted']}", ""]
    lines += [*rows, "", "CPU seconds by process kind (`/proc/<pid>/stat`; PostgreSQL's live backends):", ""]
    lines += [f"- {cpu_line(run)}" for run in runs]
    if "ratio" in results:
        lines += ["", f"**Ratio {max(r['workers'] for r in runs)} vs 1 workers: {results['ratio']:.2f} ×.** "
                  "What limits it:", ""]  # fmt: skip
        lines += [f"- {line}" for line in limits(results, nproc)]
    for note in results.get("notes", []):
        lines += ["", note]
    lines += ["", END]
    return "\n".join(lines) + "\n"


def current_section(path: Path) -> str | None:
    """The section as it stands, to keep it when the other sections are rewritten without it."""
    text = path.read_text() if path.exists() else ""
    if BEGIN not in text or END not in text:
        return None
    return BEGIN + text.split(BEGIN, 1)[1].split(END, 1)[0] + END + "\n"


def write_section(path: Path, text: str) -> None:
    """Replace the text between the markers (the markers included), or append it when they are absent."""
    current = path.read_text() if path.exists() else ""
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        updated = head + text + ("\n" + tail if tail else "")
    else:
        updated = current.rstrip("\n") + ("\n\n" if current else "") + text
    path.write_text(updated)
