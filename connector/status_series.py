"""The figures behind the status page's charts, over an instance's last sync runs (its *cycles*).

Each figure has one definition, here, and the page says it in words (connector.status_page):

- **fill rate** of a mapped CRM field in a cycle: the fields written from that cycle's results
  (`Journal.written_by_cycle`, whichever write-back pass wrote them) ÷ the contacts of that cycle whose results
  for the field's enrichment type came back and were settled (`Jobs.results_by_cycle`). A "not found" counts
  in the denominator: it is what LoneScale was asked for and did not fill. A cycle with no settled result for
  the type has no point (nothing to divide by).
- **credits** of a cycle: its `projected_credits`, what it could cost at most (every type found); LoneScale
  does not say what one job cost, and both instances draw on one balance, so balance differences would mix
  them. **Credits per filled field**: those credits ÷ the fields written from the cycle's results.
- **contacts sent / skipped by reason**: the sync run's own counts (`sent`, `skipped`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from connector.mapping import FieldMapping, result_type
from connector.store import Store
from connector.store.database import aware

CYCLES = 20  # the last sync runs the charts show


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CyclePoint(_Model):
    """One sync run, as the charts see it."""

    run_id: int
    started_at: datetime
    status: str
    sent: int
    skipped: dict[str, int]
    projected_credits: float
    fields_written: int
    credits_per_filled_field: float | None  # None: nothing written from this cycle (yet)


class FillPoint(_Model):
    run_id: int
    started_at: datetime
    written: int
    results: int
    rate: float  # written ÷ results, 0..1


class FieldFill(_Model):
    field: str  # the CRM field
    enrichment_type: str  # the type whose results fill it
    points: list[FillPoint]


class Series(_Model):
    cycles: list[CyclePoint]  # oldest first
    fill: list[FieldFill]  # one per mapped write-back field, in the mapping's order


def _int_counts(value: Any) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(value.items())} if isinstance(value, dict) else {}


def build_series(store: Store, instance: str, mapping: FieldMapping, cycles: int = CYCLES) -> Series:
    runs = [{**run, "started_at": aware(run["started_at"])}
            for run in reversed(store.runs.recent(instance, cycles, kinds=["sync"]))]  # fmt: skip
    ids = [int(run["id"]) for run in runs]
    written = store.journal.written_by_cycle(instance, ids)
    results = store.jobs.results_by_cycle(instance, ids)
    points = []
    for run in runs:
        counts, run_id = run["counts"] or {}, int(run["id"])
        filled = sum(n for (cycle, _), n in written.items() if cycle == run_id)
        projected = float(counts.get("projected_credits") or 0.0)
        points.append(
            CyclePoint(
                run_id=run_id, started_at=run["started_at"], status=run["status"],
                sent=int(counts.get("sent") or 0), skipped=_int_counts(counts.get("skipped")),
                projected_credits=projected, fields_written=filled,
                credits_per_filled_field=projected / filled if filled else None,
            )
        )  # fmt: skip
    fill, seen = [], set()
    for rule in mapping.write_back:
        if rule.field in seen:  # two rules may fill one field (a fallback): its fill is one figure
            continue
        seen.add(rule.field)
        kind = result_type(rule.result).value
        fill_points = []
        for run in runs:
            run_id = int(run["id"])
            settled = results.get(run_id, {}).get(kind, 0)
            if not settled:
                continue
            count = written.get((run_id, rule.field), 0)
            fill_points.append(FillPoint(run_id=run_id, started_at=run["started_at"], written=count,
                                         results=settled, rate=min(1.0, count / settled)))  # fmt: skip
        fill.append(FieldFill(field=rule.field, enrichment_type=kind, points=fill_points))
    return Series(cycles=points, fill=fill)
