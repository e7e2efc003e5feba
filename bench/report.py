"""BENCHMARKS.md from one run's figures: one table (figure beside target), then details, profiles and misses."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

TARGETS = {
    "calls": "≤ 1.05 × minimum, 0 single-record calls",
    "rate_limited": "elapsed ≤ 1.10 × floor, ≤ 1 % 429s, 0 lost",
    "throughput": "≥ 2,000 contacts/s on one core",
    "memory": "RSS ratio ≤ 1.25",
    "webhook": "≥ 500 payloads/s, p99 < 100 ms",
}


def verdicts(results: dict[str, Any]) -> dict[str, bool]:
    """Whether each figure meets its target (keys as in the table)."""
    met: dict[str, bool] = {}
    for crm, figures in results["calls"].items():
        met[f"calls {crm}"] = figures["ratio"] <= 1.05 and figures["single_record_calls"] == 0
    limited = results["rate_limited"]
    met["rate_limited"] = (
        limited["ratio_to_floor"] is not None
        and limited["ratio_to_floor"] <= 1.10
        and limited["share_429"] <= 0.01
        and limited["updates_lost"] == 0
    )
    for crm, figures in results["throughput"].items():
        met[f"throughput {crm}"] = (figures["contacts_per_second"] or 0) >= 2000
    memory = results["memory"]
    met["memory"] = memory["ratio"] <= 1.25 and projected_memory_ratio(memory) <= 1.25
    hook = results["webhook"]
    met["webhook"] = (hook["payloads_per_second"] or 0) >= 500 and hook["p99_ms"] < 100
    return met


ISSUE_MEMORY = (10_000, 200_000)


def memory_growth_kib(memory: dict[str, Any]) -> float:
    small, large = memory["small"], memory["large"]
    extra_kib: float = large["max_rss_kb"] - small["max_rss_kb"]
    extra_contacts: int = max(1, large["contacts"] - small["contacts"])
    return extra_kib / extra_contacts


def projected_memory_ratio(memory: dict[str, Any]) -> float:
    """The ratio at the issue's sizes (10,000 vs 200,000), growing linearly from the measured sizes."""
    small, growth = memory["small"], max(0.0, memory_growth_kib(memory))
    at_small = small["max_rss_kb"] + growth * (ISSUE_MEMORY[0] - small["contacts"])
    at_large = small["max_rss_kb"] + growth * (ISSUE_MEMORY[1] - small["contacts"])
    return at_large / at_small if at_small > 0 else math.inf


def _mark(ok: bool) -> str:
    return "met" if ok else "**missed**"


def table(results: dict[str, Any]) -> list[str]:
    met, command = verdicts(results), f"`{results['command']}`"
    rows = ["| # | measure | N | figure | target | verdict | naive baseline (same run) | command |",
            "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for crm, f in results["calls"].items():
        naive = f.get("naive")
        naive_text = (
            f"{naive['crm_calls']['total']:,} CRM calls ({naive['ratio']:.1f} × min), "
            f"{naive['crm_calls']['by_kind']['single-record']:,} single-record; "
            f"{naive['lonescale_calls']:,} LoneScale calls vs {f['lonescale_calls']:,}"
            if naive
            else "—"
        )
        rows.append(
            f"| 1 | API calls, one sync end to end, {crm} | {f['pulled']:,} | {f['crm_calls']['total']:,} calls "
            f"vs minimum {f['minimum_total']:,} = **{f['ratio']:.2f} ×**; {f['single_record_calls']} single-record "
            f"| {TARGETS['calls']} | {_mark(met[f'calls {crm}'])} | {naive_text} | {command} |"
        )
    r = results["rate_limited"]
    rows.append(
        f"| 2 | write-back at 100 req/10 s, HubSpot | {r['contacts']:,} | {r['elapsed_seconds']:.1f} s vs floor "
        f"{r['floor_seconds']:.1f} s = **{r['ratio_to_floor']:.2f} ×**; 429s {r['share_429']:.2%}; "
        f"{r['updates_lost']} lost of {r['fields_expected']:,} fields | {TARGETS['rate_limited']} "
        f"| {_mark(met['rate_limited'])} | ≥ {r['naive_floor_seconds']:,.0f} s floor (one GET + one PATCH per "
        f"record; computed, not run) | {command} |"
    )
    for crm, f in results["throughput"].items():
        naive = f.get("naive")
        naive_text = (
            f"{naive['contacts_per_second']:,.0f} contacts/s, {naive['connector_cpu_per_10k']:.1f} CPU s/10k "
            f"(N={naive['contacts']:,})"
            if naive
            else "—"
        )
        rows.append(
            f"| 3 | throughput end to end, relaxed sandbox, {crm} | {f['pulled']:,} | "
            f"**{f['contacts_per_second']:,.0f} contacts/s**; connector CPU {f['connector_cpu_per_10k']:.1f} s "
            f"per 10,000 (sandbox CPU {f['sandbox_cpu_seconds']:.1f} s apart) | {TARGETS['throughput']} "
            f"| {_mark(met[f'throughput {crm}'])} | {naive_text} | {command} |"
        )
    m = results["memory"]
    rows.append(
        f"| 4 | peak RSS of a cycle, {m['crm']} | {m['small']['contacts']:,} vs {m['large']['contacts']:,} | "
        f"{m['small']['max_rss_kb'] / 1024:,.0f} MiB vs {m['large']['max_rss_kb'] / 1024:,.0f} MiB = "
        f"**{m['ratio']:.2f} ×** (projected to 10,000 vs 200,000 at the measured growth: "
        f"{projected_memory_ratio(m):.2f} ×) | {TARGETS['memory']} | {_mark(met['memory'])} | — | {command} |"
    )
    h = results["webhook"]
    rows.append(
        f"| 5 | webhook ingest, 10-contact payloads, {h['concurrency']} concurrent | {h['posts']:,} posts | "
        f"**{h['payloads_per_second']:,.0f} payloads/s**, p50 {h['p50_ms']:.1f} ms, p99 {h['p99_ms']:.1f} ms "
        f"(statuses {h['statuses']}) | {TARGETS['webhook']} | {_mark(met['webhook'])} | — | {command} |"
    )
    return rows


def details(results: dict[str, Any]) -> list[str]:
    lines = ["## Details", ""]
    for crm, f in results["calls"].items():
        lines += [f"### 1. API calls, {crm} (N = {f['pulled']:,}; sent to LoneScale {f['sent']:,}; written "
                  f"{f['records_written']:,}; {f['apply_passes']} apply passes)", "",
                  f"Minimum by kind: {f['minimum']}; counted by kind: {f['crm_calls']['by_kind']}.", "",
                  "Routes counted by the sandbox (`/__sandbox/stats`; the OAuth token call is listed, not counted):",
                  ""]  # fmt: skip
        lines += [f"- {route}" for route in f["crm_calls"]["routes"]]
        naive = f.get("naive")
        if naive:
            lines += ["", "Naive baseline routes:", ""] + [
                f"- {route}" for route in naive["crm_calls"]["routes"]
            ]
        lines.append("")
    r = results["rate_limited"]
    lines += [
        f"### 2. Write-back at the rate limit (N = {r['contacts']:,})",
        "",
        f"Records with results {r['records_with_results']:,}, to write {r['records_to_write']:,}; calls needed "
        f"{r['calls_needed']} (ceil(read/100) + ceil(write/100)), made {r['calls_made']} ({r['status_429']} "
        f"answered 429). Floor = needed ÷ 10 per s = {r['floor_seconds']} s (the issue's formula with N: "
        f"{r['floor_seconds_issue_formula']} s). Fields journaled as written {r['fields_expected']:,}, of which "
        f"not in the CRM afterwards {r['fields_lost']}; contacts never applied {r['contacts_never_applied']}; "
        f"journal rows left pending {r['journal_unsettled']}; rejected by the CRM {r['journal_rejected']}.",
        "",
    ]
    lines += [f"- {route}" for route in r["routes"]]
    lines.append("")
    for crm, f in results["throughput"].items():
        lines += [
            f"### 3. Throughput, {crm} (N = {f['pulled']:,})",
            "",
            f"Phases (wall s): {f['phases_seconds']}; connector CPU {f['connector_cpu_seconds']} s "
            f"(its webhook server included); sandbox CPU {f['sandbox_cpu_seconds']} s, reported apart.",
            "",
            f"Top five hot spots by own CPU time (cProfile with `time.thread_time`, main thread: pull, map, store, "
            f"trigger, apply, write; N = {f.get('profile_contacts')}; the webhook server's threads are not in it):",
            "",
        ]
        lines += [f"1. `{spot}`" for spot in f.get("hot_spots", [])]
        lines += ["", "Project functions by cumulative time:", ""]
        lines += [f"- `{spot}`" for spot in f.get("hot_spots_cumulative", [])]
        lines.append("")
    m = results["memory"]
    growth = memory_growth_kib(m)
    lines += [
        f"### 4. Memory ({m['crm']})",
        "",
        f"Each size in a fresh child process: {m['small']} and {m['large']}. Growth ≈ {growth:.2f} KiB per extra "
        "contact (`ru_maxrss`, Linux KiB).",
        "",
    ]
    h = results["webhook"]
    lines += [
        "### 5. Webhook ingest",
        "",
        f"The real webhook app on `connector.serving.ThreadedServer` in its own process (SQLite store, each body "
        f"stored before its 2xx); {h['concurrency']} keep-alive connections from this process; {h} ",
        "",
    ]
    return lines


def misses(results: dict[str, Any]) -> list[str]:
    """Each miss with the evidence the run gathered and what it would take."""
    met, lines = verdicts(results), ["## Misses: why, and what it would take", ""]
    for crm, f in results["calls"].items():
        over = {k: (v, f["minimum"].get(k, 0)) for k, v in f["crm_calls"]["by_kind"].items()
                if v > f["minimum"].get(k, 0)}  # fmt: skip
        if not over:
            continue
        if met[f"calls {crm}"]:
            lines.append(
                f"- *API calls, {crm}: met in total ({f['ratio']:.2f} ×; below 1 because only {f['sent']:,} of "
                f"{f['pulled']:,} records had anything to write), but per kind over its minimum (counted, "
                f"minimum): {over}.*"
            )
        else:
            lines.append(
                f"- **API calls, {crm}** ({f['ratio']:.2f} × minimum): kinds over their minimum (counted, "
                f"minimum): {over}."
            )
        if "read" in over:
            lines.append(
                f"  Reads: `apply_results` drains {f['apply_passes'] - 1} passes of at most 1,000 inbox deliveries "
                "(one delivery per contact with LoneScale's default `per_contact` delivery), and each pass reads "
                "its own records, so a read batch never fills (Salesforce retrieve takes 2,000 ids). It would take "
                "draining by contacts rather than deliveries, or a larger `limit` per pass, so each pass reads "
                "full batches."
            )
        if "write" in over:
            lines.append(
                "  Writes: HubSpot answers a whole batch update 409 when one record would take an email another "
                "contact holds (`Contact already exists. Existing ID: …`, email is unique per portal), and the "
                "adapter halves a refused batch until the offending record stands alone: about 2·log2(100) ≈ 14 "
                "extra calls per conflicting record. It would take reading the conflict from the 409 body (it names "
                "the existing id / the duplicate value), dropping that record from the batch and retrying once, "
                "or checking found emails against the CRM (one search per batch) before writing them."
            )
        if "other" in over:
            lines.append("  Other calls: see the route list in the details.")
    if not met["rate_limited"]:
        r = results["rate_limited"]
        paced = r["calls_made"] / 9.5
        lines.append(
            f"- **Write-back at the limit**: {r['ratio_to_floor']} × floor, {r['share_429']:.2%} 429s, "
            f"{r['updates_lost']} lost. The pacing holds: {r['calls_made']} calls at the adapter's 95 per 10 s take "
            f"{paced:.0f} s (measured {r['elapsed_seconds']:.0f} s). The excess is calls: {r['calls_made']} made "
            f"where {r['calls_needed']} would do, the 409 bisection described under API calls (see the routes "
            "below). It would take the one-retry conflict handling above, and pacing at 100 rather than 95 per "
            "10 s (the 5 of headroom alone costs 5 %)."
        )
    for crm, f in results["throughput"].items():
        if met[f"throughput {crm}"]:
            continue
        phases = f["phases_seconds"]
        slowest = max(phases, key=phases.get)
        lines.append(
            f"- **Throughput, {crm}** ({f['contacts_per_second']:,.0f} contacts/s of 2,000): the slowest phase is "
            f"*{slowest}* ({phases[slowest]:.1f} s of {f['elapsed_seconds']:.1f} s). Connector CPU "
            f"{f['connector_cpu_per_10k']:.1f} s per 10,000 contacts, so at 2,000/s one core would need ≤ 5 s per "
            "10,000: the connector itself is "
            + (
                "CPU-bound above that."
                if f["connector_cpu_per_10k"] > 5
                else "under it; the wall time goes elsewhere."
            )
        )
        lines.append(
            "  Hot spots (own time): " + "; ".join(f"`{s.split(' — ')[0]}`" for s in f.get("hot_spots", []))
        )
        spots = " ".join(f.get("hot_spots", []))
        if "_clear_cache" in spots or "dateutil" in spots:
            lines.append(
                "  HubSpot SDK: each model object it builds calls `Configuration.get_default_copy()`, which sets "
                "logger levels (`logging._clear_cache`), and it parses every datetime with `dateutil`; "
                "reading the search and batch answers as raw JSON (`_preload_content=False`) would skip both."
            )
        if "sqlalchemy" in spots:
            lines.append(
                "  SQLAlchemy: statement construction and compilation per row (`coercions.expect`, "
                "`get_cls_kwargs`): store writes built once and executed with many parameter sets "
                "(`executemany`), or compiled statements cached, would cut most of it."
            )
        lines.append(
            "  With LoneScale's `per_contact` delivery, every contact is one webhook POST, one inbox row and one "
            "JSON parse at apply time; the sandbox itself spends CPU making those POSTs "
            f"({f['sandbox_cpu_seconds']:.0f} s, apart). It would take fewer, larger units: job-level deliveries "
            "(`per_job`) where LoneScale offers them, inserting inbox rows and journal rows in bulk, and draining "
            "the inbox while deliveries arrive (as the daemon does) instead of after."
        )
    if not met["memory"]:
        m = results["memory"]
        lines.append(
            f"- **Memory** (ratio {m['ratio']:.2f} at {m['small']['contacts']:,} vs {m['large']['contacts']:,}, "
            f"projected {projected_memory_ratio(m):.2f} at 10,000 vs 200,000): peak RSS grows by "
            f"{memory_growth_kib(m):.2f} KiB per contact over a baseline of "
            f"{m['small']['rss_after_imports_kb'] / 1024:.0f} MiB after imports (the HubSpot and Salesforce SDKs "
            "are most of it). The ratio at the measured sizes is flattered by that baseline. "
            "Candidates: the sync's `seen` set of every id pulled, the apply's per-pass plan, and the sandbox-side "
            "delivery backlog reaching the webhook faster than it is drained. It would take bounding `seen` to "
            "the current timestamp's ids (the pull is sorted) and streaming the apply."
        )
    if not met["webhook"]:
        h = results["webhook"]
        lines.append(
            f"- **Webhook ingest** ({h['payloads_per_second']:,.0f}/s, p99 {h['p99_ms']:.0f} ms): each POST does a "
            "job lookup and a durable SQLite insert on a worker thread behind one write lock; it would take batching "
            "inserts (group commit) across concurrent requests while still answering each only after its commit."
        )
    if len(lines) == 2:
        lines.append("None: every figure meets its target.")
    return [*lines, ""]


def write_report(results: dict[str, Any], path: Path) -> None:
    mach, o = results["machine"], results["options"]
    fitted = (
        o["throughput"] < 100_000
        or o["memory_large"] < 200_000
        or o["calls"] < 10_000
        or o["rate_limited"] < 20_000
    )
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench`, scripts in `bench/`). The sandbox "
        "(`python -m connector.cli sandbox --relaxed`) runs in its own process and is reset before each measurement; "
        "its CPU (`/__sandbox/stats` → `process_cpu_seconds`) is reported apart from the connector's "
        "(`time.process_time()` of the bench process, which hosts the connector and its webhook server). "
        "Benchmarks are not tests: `make test` runs only a smoke version of each at N = 200.",
        "",
        f"Machine: `nproc` = {mach['nproc']}, Python {mach['python']}, {mach['platform']}. "
        f"Code measured: commit {mach.get('commit', 'unknown')}.",
        "",
        f"This run: `{results['command']}` in {results['harness_seconds']:,.0f} s.",
        "",
    ]
    speeds = ", ".join(
        f"{f['contacts_per_second']:,.0f} contacts/s on {crm}" for crm, f in results["throughput"].items()
    )
    if fitted:
        lines += [
            "**Sizes:** the issue's sizes are the defaults (`make bench`: calls N = 10,000; rate limit N = 20,000; "
            "throughput N = 100,000; memory 10,000 vs 200,000). A full run at those sizes takes well over 20 minutes "
            "on this 2-core machine (" + speeds + " end to end, figure 3), so this run used the sizes in "
            "the N column; each figure says at which N it was measured.",
            "",
        ]
    lines += [*table(results), "", *misses(results), *details(results)]
    path.write_text("\n".join(lines).rstrip() + "\n")


def finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))
