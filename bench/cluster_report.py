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
        first = figures.get("first")
        alone = (
            f"; `{first['instance']}` {first['total']} vs the same data alone {single[crm]['total']}"
            if single and crm in single and first
            else ""
        )
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
        f" Phases, seconds after the first sync started: {run.get('phases')}."
    )


def _per_contact(run: dict[str, Any]) -> dict[str, float]:
    """CPU seconds per contact pulled, by process kind."""
    cpu, n = run["cpu_seconds"], max(1, run["pulled"])
    return {
        "workers": sum(v or 0 for v in cpu["workers"]) / n,
        "receivers": sum(v or 0 for v in cpu["receivers"]) / n,
        "emulators": cpu["bench_process"] / n,
        "postgres": (cpu["postgres"] or 0) / n,
    }


def limits(results: dict[str, Any], nproc: int | None) -> list[str]:
    """What limits the ratio, from the CPU figures, and what it would be with more cores."""
    runs = {r["workers"]: r for r in results["runs"]}
    if len(runs) < 2:
        return []
    one, many = runs[min(runs)], runs[max(runs)]
    k, cores = many["workers"], nproc or 1
    cost = _per_contact(one)
    per_contact = sum(cost.values())
    one_cores = per_contact * one["contacts_per_second"]
    worker_busy = cost["workers"] * one["contacts_per_second"]
    ceiling = cores / per_contact  # contacts/s if every core did nothing but this, at one worker's cost
    many_cost = sum(_per_contact(many).values())
    others = max(0.0, one["cpu_seconds"]["machine_busy_share"] * cores - one_cores)
    emulator_ceiling = 1 / cost["emulators"] if cost["emulators"] else float("inf")
    bound = (
        ": one worker is bound by its own CPU (one interpreter, which its `--concurrency` threads share), so "
        "more processes are the way to go faster"
        if worker_busy >= 0.7
        else f", waiting the other {1 - worker_busy:.0%} on the CRMs, LoneScale and the store"
    )
    spread = ", ".join(f"{kind} {seconds * 1000:.2f}" for kind, seconds in cost.items())
    return [
        f"**Cores.** One worker kept {one_cores:.2f} cores busy in all ({per_contact * 1000:.2f} CPU ms per "
        f"contact: {spread}); the worker itself {worker_busy:.2f} of a core{bound}. Other programs on the "
        f"machine kept about {others:.2f} cores busy meanwhile (the machine's busy share less ours). "
        f"At that cost {cores} cores give at most {ceiling:,.0f} contacts/s, a ratio of "
        f"{ceiling / one['contacts_per_second']:.2f} × over one worker; measured {many['contacts_per_second']:,.0f} "
        f"= {many['contacts_per_second'] / one['contacts_per_second']:.2f} × with the cores "
        f"{many['cpu_seconds']['machine_busy_share']:.0%} busy, at {many_cost * 1000:.2f} CPU ms per contact "
        f"with {k} workers.",
        f"**With more cores.** A ratio of {k} needs {k} × {one_cores:.2f} ≈ {k * one_cores:.1f} cores at one "
        f"worker's cost (the workers, receivers and PostgreSQL are processes and spread over cores). The next "
        f"limit is then the emulators: every CRM instance is served by one event loop in one process "
        f"({cost['emulators'] * 1000:.2f} CPU ms per contact), at most {emulator_ceiling:,.0f} contacts/s on its "
        f"one core, {emulator_ceiling / one['contacts_per_second']:.1f} × one worker — a limit of the bench, not "
        "of the connector (real CRMs are other machines). PostgreSQL "
        f"({cost['postgres'] * 1000:.2f} CPU ms per contact, its backends one process per connection) is "
        "not near a core at these rates.",
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
            f"{_calls(run, single)} | {_latency(run)} | `{command}` at {commit} |"
        )
    lines = [
        BEGIN,
        "## Cluster: 1 worker vs 3 (issue 13)",
        "",
        f"Written by `{command}` (`bench/cluster.py`), commit {commit}"
        f"{'; the sections above are not rerun' if '--group cluster' in command else ', the same run as above'}. "
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
    lines += ["", "Calls of kind *other* (neither pull, read nor write), summed over the instances:", ""]
    for run in runs:
        other = {crm: f["other_routes"] for crm, f in run["calls"].items() if f.get("other_routes")}
        lines.append(f"- {run['workers']} worker(s): {other}")
    lines += [
        "",
        "Webhook → CRM write: a receiver stores each delivery and wakes its instance's write-back, a wake-up in "
        "the queue the syncs are in but ahead of them (connector/store/wakeups.py `PRIORITY`: results paid for "
        "reach the CRM before more are bought); here every instance is new, so all syncs come due on the first "
        "tick. The phases above (when the syncs ended, when the writes began and ended) show whether the "
        "write-backs waited behind them.",
    ]
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
