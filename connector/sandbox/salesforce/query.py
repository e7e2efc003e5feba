"""Runs a resolved SOQL query: plans on the timestamp index, keeps an open query's ids, renders pages."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from connector.sandbox.salesforce.resolve import Column, Plan, Resolver, comparable, parent_record
from connector.sandbox.salesforce.schema import BY_PREFIX, SObjectSpec
from connector.sandbox.salesforce.soql import BoolOp, Comparison, Condition, Query
from connector.sandbox.salesforce.store import INDEXED_FIELDS, Record, Store


@dataclass
class Cursor:
    """An open query: its plan and the matching ids as of the first page, so later pages are O(page)."""

    plan: Plan
    record_ids: list[str]
    batch_size: int
    endpoint: str  # query or queryAll


# --------------------------------------------------------------------------- execution


def execute(query: Query, store: Store, include_deleted: bool) -> tuple[Plan, list[str]]:
    """The matching ids in result order. Windowed timestamp queries walk the index; nothing else is sorted."""
    resolver = Resolver(query, store.schema)
    plan = resolver.plan()
    table = store.table(plan.sobject)
    where = resolver.predicate(query.where, store) if query.where is not None else None
    order_columns = [(resolver.column(item.field), item) for item in query.order_by]
    conjuncts = _conjuncts(query.where)
    index_name, descending = _index_order(order_columns)
    sorted_by_index = index_name is not None or not order_columns
    if index_name is None:
        index_name = next((name for name in INDEXED_FIELDS if _bounds(resolver, conjuncts, name)), None)
    candidates: Iterable[str]
    if index_name is not None:
        low, low_inclusive, high, high_inclusive = _bounds(resolver, conjuncts, index_name) or (
            None,
            True,
            None,
            True,
        )
        candidates = table.index_range(index_name, low, low_inclusive, high, high_inclusive, descending)
    else:
        candidates = list(table.records)
    wanted = None if query.limit is None else query.offset + query.limit
    matched: list[str] = []
    for record_id in candidates:
        record = table.records[record_id]
        if (include_deleted or not record.get("IsDeleted")) and (where is None or where(record)):
            matched.append(record_id)
            if sorted_by_index and wanted is not None and len(matched) >= wanted:
                break
    if not sorted_by_index:
        matched = _sort(matched, table.records, order_columns, store)
    end = None if query.limit is None else query.offset + query.limit
    return plan, matched[query.offset : end]


def _conjuncts(condition: Condition | None) -> list[Condition]:
    if condition is None:
        return []
    if isinstance(condition, BoolOp) and condition.operator == "AND":
        return [part for item in condition.items for part in _conjuncts(item)]
    return [condition]


def _index_order(order_columns: list[tuple[Column, Any]]) -> tuple[str | None, bool]:
    """An ORDER BY the index already yields: `f [DESC]` or `f, Id` in the same direction, f indexed."""
    if not order_columns or len(order_columns) > 2:
        return None, False
    first, item = order_columns[0]
    if first.lookup is not None or first.spec.name not in INDEXED_FIELDS:
        return None, False
    if len(order_columns) == 2:
        second, second_item = order_columns[1]
        if second.lookup is not None or second.spec.name != "Id" or second_item.descending != item.descending:
            return None, False
    return first.spec.name, bool(item.descending)


def _bounds(
    resolver: Resolver, conjuncts: list[Condition], name: str
) -> tuple[datetime | None, bool, datetime | None, bool] | None:
    low: datetime | None = None
    high: datetime | None = None
    low_inclusive = high_inclusive = True
    found = False
    for condition in conjuncts:
        if not isinstance(condition, Comparison) or condition.operator not in ("=", "<", "<=", ">", ">="):
            continue
        if len(condition.field.path) != 1 or condition.field.path[0].lower() != name.lower():
            continue
        value = condition.value.value
        if not isinstance(value, datetime):
            continue  # the predicate reports the type error; the index only narrows
        found = True
        if condition.operator in ("=", ">", ">=") and (
            low is None or value > low or (value == low and condition.operator == ">")
        ):
            low, low_inclusive = value, condition.operator != ">"
        if condition.operator in ("=", "<", "<=") and (
            high is None or value < high or (value == high and condition.operator == "<")
        ):
            high, high_inclusive = value, condition.operator != "<"
    return (low, low_inclusive, high, high_inclusive) if found else None


def _sort(
    matched: list[str], records: dict[str, Record], order_columns: list[tuple[Column, Any]], store: Store
) -> list[str]:
    result = list(matched)
    for column, item in reversed(order_columns):
        key = comparable(column.spec)
        null_flag = 1 if item.nulls_last != item.descending else 0

        def sort_key(
            record_id: str,
            column: Column = column,
            key: Callable[[Any], Any] = key,
            null_flag: int = null_flag,
        ) -> tuple[int, Any]:
            value = key(column.value(records[record_id], store))
            return (null_flag, None) if value is None else (1 - null_flag, value)

        result.sort(key=sort_key, reverse=item.descending)
    return result


# --------------------------------------------------------------------------- rendering


def format_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond // 1000:03d}+0000"
    if isinstance(value, date):
        return value.isoformat()
    return value


def attributes(spec: SObjectSpec, record_id: str, version: str) -> dict[str, str]:
    return {"type": spec.name, "url": f"/services/data/{version}/sobjects/{spec.name}/{record_id}"}


def render(plan: Plan, record: Record, store: Store, version: str) -> dict[str, Any]:
    """A record as the query resource shows it: attributes first, parents nested, empty lookups null."""
    out: dict[str, Any] = {"attributes": attributes(plan.sobject, record["Id"], version)}
    for column in plan.columns:
        if column.lookup is None or column.parent is None:
            out[column.spec.name] = format_value(column.value(record, store))
            continue
        name = column.lookup.relationship_name or column.lookup.name
        if name not in out:
            parent = parent_record(record, column.lookup, column.parent, store)
            kind = BY_PREFIX.get(parent["Id"][:3], column.parent) if parent is not None else column.parent
            out[name] = None if parent is None else {"attributes": attributes(kind, parent["Id"], version)}
        if out[name] is not None:
            out[name][column.spec.name] = format_value(column.value(record, store))
    return out


def render_all(plan: Plan, record_ids: Iterable[str], store: Store, version: str) -> Iterator[dict[str, Any]]:
    table = store.table(plan.sobject)
    for record_id in record_ids:
        record = table.get(record_id)
        if record is not None:
            yield render(plan, record, store, version)
