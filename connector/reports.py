"""Dry-run diffs and listings as a person reads them (a table) and as tools read them (JSON or CSV files)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

SHOWN = 60  # rows printed; every row goes to --output


def console() -> Console:
    """The terminal's width on a terminal; elsewhere (a pipe, a log, CI) wide enough not to fold rows."""
    shown = Console()
    return shown if shown.is_terminal else Console(width=200)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def show(console: Console, title: str, rows: Sequence[Any], columns: Sequence[str] | None = None) -> None:
    if not rows:
        console.print(f"{title}: nothing")
        return
    names = list(columns or [f.name for f in fields(rows[0])])
    table = Table(title=f"{title} ({len(rows)})", title_justify="left")
    for name in names:
        table.add_column(name.replace("_", " "), overflow="fold")
    for row in rows[:SHOWN]:
        table.add_row(*(_cell(getattr(row, name)) for name in names))
    console.print(table)
    if len(rows) > SHOWN:
        console.print(f"… {len(rows) - SHOWN} more rows: write them all with --output FILE.json or FILE.csv")


def write(path: Path, rows: Sequence[Any]) -> None:
    """Every row, to `path`: JSON for a .json suffix, CSV for anything else."""
    records = [asdict(row) if is_dataclass(row) and not isinstance(row, type) else dict(row) for row in rows]
    if path.suffix.lower() == ".json":
        path.write_text(
            json.dumps(records, indent=2, default=str, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        return
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]) if records else ["empty"])
        writer.writeheader()
        writer.writerows({k: _cell(v) for k, v in r.items()} for r in records)
