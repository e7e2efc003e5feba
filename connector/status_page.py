"""The status page: one server-rendered HTML document from a StatusReport, inline CSS, no script, nothing
fetched. Every value from the store is escaped (html.escape); the charts come from connector.charts."""

from __future__ import annotations

from datetime import datetime
from html import escape

from connector.charts import Line, Stack, bar_chart, empty, line_chart
from connector.status import InstanceStatus, StatusReport
from connector.status_series import Series
from connector.window import SKEW_WORTH_SAYING

CSS = """
:root { --ink: #0f172a; --muted: #64748b; --line: #e2e8f0; --bg: #f8fafc; --ok: #16a34a; --warn: #d97706;
        --bad: #dc2626; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       background: var(--bg); }
header { padding: 18px 28px; background: #0f172a; color: #f8fafc; display: flex; align-items: baseline;
         gap: 16px; }
header h1 { margin: 0; font-size: 20px; } header span { color: #cbd5e1; }
main { padding: 20px 28px; display: grid; gap: 24px; }
section.instance { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 18px 20px; }
h2 { margin: 0 0 12px; font-size: 18px; } h2 small { color: var(--muted); font-weight: 400; font-size: 13px; }
h3 { margin: 18px 0 8px; font-size: 14px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 10px; }
.tile { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.tile .label { color: var(--muted); font-size: 12px; }
.tile .value { font-size: 18px; font-weight: 600; margin-top: 2px; }
.tile .note { color: var(--muted); font-size: 12px; margin-top: 2px; }
.ok { color: var(--ok); } .warn { color: var(--warn); } .bad { color: var(--bad); }
.bar { height: 6px; background: var(--line); border-radius: 3px; margin-top: 6px; overflow: hidden; }
.bar > div { height: 100%; background: var(--ok); }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 14px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
figcaption { font-weight: 600; margin-bottom: 4px; } figure p { margin: 4px 0 0; color: var(--muted); font-size: 12px; }
svg.chart { width: 100%; height: auto; display: block; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; color: #475569; margin-top: 4px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px; }
svg .grid { stroke: #eef2f7; } svg .axis { stroke: #94a3b8; } svg .line { stroke-width: 2; }
svg text { font: 11px system-ui, sans-serif; fill: #475569; } svg .empty { font-size: 13px; fill: var(--muted); }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 500; }
footer { padding: 0 28px 24px; color: var(--muted); font-size: 12px; }
"""


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes = abs(seconds) / 60
    if minutes < 1:
        return f"{abs(seconds):.0f} s"
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _tile(label: str, value: str, note: str = "", tone: str = "", bar: float | None = None) -> str:
    meter = (
        f'<div class="bar"><div style="width:{min(bar, 1.0) * 100:.0f}%"></div></div>'
        if bar is not None
        else ""
    )
    return (f'<div class="tile"><div class="label">{escape(label)}</div>'
            f'<div class="value {tone}">{escape(value)}</div>{meter}'
            + (f'<div class="note">{escape(note)}</div>' if note else "") + "</div>")  # fmt: skip


def _tiles(item: InstanceStatus, now: datetime) -> str:
    tiles = []
    sync = item.last_sync
    if sync is None:
        tiles.append(_tile("last sync", "never", "the first run starts at start_date"))
    else:
        tone = {"succeeded": "ok", "stopped": "warn"}.get(sync.status, "bad")
        tiles.append(_tile("last sync", sync.status, f"run {sync.id}, {_when(sync.started_at)}: pulled "
                           f"{sync.pulled}, sent {sync.sent} in {sync.jobs} job(s)", tone))  # fmt: skip
    due = (item.next_run - now).total_seconds()
    tiles.append(_tile("next sync", "due now" if due < 60 else f"in {_ago(due)}", _when(item.next_run)))
    if item.cursor is None:
        tiles.append(_tile("cursor", "not yet", "the first run starts at start_date"))
    else:
        tiles.append(
            _tile("cursor lag", _ago(item.cursor_lag_seconds), f"changes read up to {_when(item.cursor)}")
        )
    written = item.this_cycle
    if written is not None:
        tone = "bad" if written.records_rejected else ("warn" if written.fields_refused else "ok")
        tiles.append(_tile("written from the latest sending sync", f"{written.fields_written} field(s)",
                           f"on {written.records_written} record(s); {written.records_rejected} record(s) "
                           f"rejected, {written.fields_refused} field(s) refused", tone))  # fmt: skip
    jobs = ", ".join(f"{state} {n}" for state, n in item.jobs.items()) or "none"
    tiles.append(_tile("jobs", str(sum(item.jobs.values())), jobs))
    tiles.append(_tile("results waiting", str(item.results_waiting),
                       f"oldest {_when(item.oldest_waiting)}" if item.oldest_waiting else "inbox empty",
                       "warn" if item.results_waiting else ""))  # fmt: skip
    credits = item.credits
    cap = credits.monthly_cap
    tiles.append(_tile("contacts sent this month", f"{credits.month_sent}" + (f" of {cap}" if cap else ""),
                       "no monthly cap" if not cap else f"{cap - credits.month_sent} left this month",
                       "warn" if cap and credits.month_sent >= cap else "",
                       credits.month_sent / cap if cap else None))  # fmt: skip
    if credits.run_sent is not None:
        run_cap = credits.per_run_cap
        tiles.append(_tile("last sync sent", f"{credits.run_sent} contact(s)",
                           f"≤ {credits.run_projected_credits or 0:g} credits" + (f"; cap {run_cap} a run" if run_cap else ""),
                           bar=credits.run_sent / run_cap if run_cap else None))  # fmt: skip
    if credits.balance_at_last_run is not None:
        tiles.append(
            _tile("LoneScale balance", f"{credits.balance_at_last_run:g}", "credits at the last run's start")
        )
    return '<div class="tiles">' + "".join(tiles) + "</div>"


def _failures(item: InstanceStatus) -> str:
    notes = []
    if item.busy:
        notes.append(("busy", "the instance's lease", item.busy))
    if item.clock_skew_seconds is not None and abs(item.clock_skew_seconds) > SKEW_WORTH_SAYING:
        side = "ahead of" if item.clock_skew_seconds > 0 else "behind"
        notes.append(("clock", "this machine", f"{abs(item.clock_skew_seconds):.0f} s {side} the CRM's: the "
                      "cursor follows the CRM's clock, so nothing is skipped (fix it with NTP)"))  # fmt: skip
    if item.unmatched_results:
        notes.append(
            ("unmatched", f"{item.unmatched_results} result(s)", "matched no contact: paid for, not written")
        )
    if item.uncertain_jobs:
        notes.append(("uncertain", f"{item.uncertain_jobs} job(s)", "may have reached LoneScale unbeknown to us: "
                      "never posted again"))  # fmt: skip
    if item.billed_expired_jobs:
        notes.append(("no results", f"{item.billed_expired_jobs} job(s)", f"expired, may have been billed: their "
                      f"{item.billed_expired_contacts} contact(s) stay in cooldown"))  # fmt: skip
    rows = [(kind, subject, reason) for kind, subject, reason in notes]
    rows += [(f.kind, f.subject, f.reason) for f in item.failures]
    if not rows:
        return '<h3>Needs attention</h3><p class="ok">Nothing: no failure, nothing waiting on a person.</p>'
    listed: dict[str, int] = {}
    for failure in item.failures:
        listed[failure.kind] = listed.get(failure.kind, 0) + 1
    more = [f"{item.failure_totals[k] - n} more {k}(s)" for k, n in listed.items()
            if item.failure_totals.get(k, 0) > n]  # fmt: skip
    body = "".join(
        f"<tr><td>{escape(k)}</td><td>{escape(s)}</td><td>{escape(r)}</td></tr>" for k, s, r in rows
    )
    tail = (
        f"<p>{escape('; '.join(more))}: <code>lonescale-sync failures</code> lists them all.</p>"
        if more
        else ""
    )
    return f"<h3>Needs attention</h3><table><tr><th>what</th><th>which</th><th>reason</th></tr>{body}</table>{tail}"


def _labels(series: Series) -> list[str]:
    return [f"run {c.run_id}" for c in series.cycles]


def _charts(item: InstanceStatus) -> str:
    series = item.series
    labels = _labels(series)
    index = {c.run_id: i for i, c in enumerate(series.cycles)}
    figures = []
    fill_lines = []
    for fill in series.fill:
        values: list[float | None] = [None] * len(labels)
        for point in fill.points:
            values[index[point.run_id]] = point.rate
        if fill.points:
            fill_lines.append(Line(f"{fill.field} ({fill.enrichment_type})", values))
    fill_svg = (line_chart("fill rate per mapped field", labels, fill_lines, y_title="filled", percent=True)
                if fill_lines else empty("fill rate", "no results settled yet"))  # fmt: skip
    figures.append(("Fill rate per mapped field", fill_svg,
                    "Of the contacts whose results for the field's enrichment type came back in a run, the share "
                    "whose field was written (a value found, and its write policy let it in)."))  # fmt: skip
    credits = [c.projected_credits for c in series.cycles]
    per_field = [c.credits_per_filled_field for c in series.cycles]
    figures.append(("Credits per run", bar_chart("credits per run", labels, [Stack("credits (at most)", credits)],
                                                 y_title="credits"),
                    "What each sync run could cost at most (every type asked for found), from its sent "
                    "contacts and [lonescale] credits_per_type."))  # fmt: skip
    figures.append(("Credits per filled field", line_chart("credits per filled field", labels,
                                                           [Line("credits ÷ fields written", per_field)],
                                                           y_title="credits"),
                    "A run's credits (at most) divided by the fields written from its results: what one filled "
                    "CRM field cost."))  # fmt: skip
    reasons = sorted({r for c in series.cycles for r in c.skipped})
    stacks = [Stack("sent", [float(c.sent) for c in series.cycles])]
    stacks += [Stack(f"skipped: {r}", [float(c.skipped.get(r, 0)) for c in series.cycles]) for r in reasons]
    figures.append(("Contacts sent and skipped", bar_chart("contacts sent and skipped by reason", labels, stacks,
                                                           y_title="contacts"),
                    "Each run's pulled records: sent to LoneScale, or skipped with the reason (nothing missing, "
                    "in cooldown, nothing to match on…)."))  # fmt: skip
    body = "".join(f"<figure><figcaption>{escape(title)}</figcaption>{svg}<p>{escape(note)}</p></figure>"
                   for title, svg, note in figures)  # fmt: skip
    return f'<h3>Last {len(labels)} run(s)</h3><div class="charts">{body}</div>'


def render(report: StatusReport) -> str:
    sections = []
    for item in report.instances:
        sections.append(
            f'<section class="instance" id="{escape(item.name)}"><h2>{escape(item.name)} '
            f"<small>{escape(item.crm)} · schedule {escape(item.schedule)}</small></h2>"
            f"{_tiles(item, report.generated_at)}{_failures(item)}{_charts(item)}</section>"
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><meta http-equiv="refresh" content="60"><link rel="icon" href="data:,">'
        f"<title>lonescale-sync status</title><style>{CSS}</style></head><body>"
        f"<header><h1>lonescale-sync</h1><span>status at {escape(_when(report.generated_at))} · "
        f"{len(report.instances)} instance(s)</span></header><main>{''.join(sections)}</main>"
        "<footer>Read-only. The same figures as <code>lonescale-sync status --json</code>; "
        '<a href="status.json">status.json</a>. It refreshes every minute.</footer></body></html>'
    )
