"""Runs a parsed SOQL query: resolves fields against describe, plans on the timestamp index, renders pages."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from connector.sandbox.salesforce import ids
from connector.sandbox.salesforce.errors import SalesforceError
from connector.sandbox.salesforce.org import OrgSchema
from connector.sandbox.salesforce.schema import BY_PREFIX, FieldSpec, SObjectSpec
from connector.sandbox.salesforce.soql import (
    BoolOp,
    Comparison,
    Condition,
    FieldRef,
    Literal,
    Not,
    Query,
    Token,
    soql_error,
)
from connector.sandbox.salesforce.store import INDEXED_FIELDS, Record, Store

Predicate = Callable[[Record], bool]
_NO_SUCH_COLUMN = (
    "No such column '{name}' on entity '{entity}'. If you are attempting to use a custom field, be sure to "
    "append the '__c' after the custom field name. Please reference your WSDL or the describe call for the "
    "appropriate names."
)
_NO_SUCH_RELATIONSHIP = (
    "Didn't understand relationship '{name}' in field path. If you are attempting to use a custom "
    "relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL "
    "or the describe call for the appropriate names."
)
# Fields SOQL's `Name` object offers through Who/What that the emulated targets all have.
NAME_FIELDS = frozenset({"id", "name", "firstname", "lastname", "email", "phone", "title"})
_TYPE_NAMES = {"boolean": "boolean", "datetime": "dateTime", "date": "date", "int": "integer"}
_LITERAL_FOR_TYPE = {
    "boolean": "boolean",
    "datetime": "datetime",
    "date": "date",
    "int": "number",
    "currency": "number",
    "double": "number",
}


@dataclass(frozen=True)
class Column:
    """A resolved field path: a field of the queried object, or of its parent through one lookup."""

    spec: FieldSpec
    lookup: FieldSpec | None = None
    parent: SObjectSpec | None = None

    def value(self, record: Record, store: Store) -> Any:
        if self.lookup is None or self.parent is None:
            return self.spec.value(record)
        parent = parent_record(record, self.lookup, self.parent, store)
        return None if parent is None else self.spec.value(parent)


@dataclass(frozen=True)
class Plan:
    sobject: SObjectSpec
    columns: tuple[Column, ...]
    query: Query


@dataclass
class Cursor:
    """An open query: its plan and the matching ids as of the first page, so later pages are O(page)."""

    plan: Plan
    record_ids: list[str]
    batch_size: int
    endpoint: str  # query or queryAll


def parent_record(record: Record, lookup: FieldSpec, parent: SObjectSpec, store: Store) -> Record | None:
    parent_id = record.get(lookup.name)
    if lookup.polymorphic and parent_id:  # Who/What: the id's key prefix says which object it is
        hit = store.find(parent_id)
        found = hit[1] if hit else None
    else:
        found = store.table(parent).get(parent_id) if parent_id else None
    return None if found is None or found.get("IsDeleted") else found


class Resolver:
    def __init__(self, query: Query, schema: OrgSchema):
        self.query = query
        self.schema = schema
        spec = schema.sobject(query.sobject)
        if spec is None:
            raise soql_error(
                query.text,
                query.sobject_token.position,
                "INVALID_TYPE",
                f"sObject type '{query.sobject}' is not supported. If you are attempting to use a custom object, "
                "be sure to append the '__c' after the entity name. Please reference your WSDL or the describe "
                "call for the appropriate names.",
            )
        self.sobject = spec

    def error(self, token: Token, code: str, message: str) -> SalesforceError:
        return soql_error(self.query.text, token.position, code, message)

    def column(self, ref: FieldRef) -> Column:
        if len(ref.path) == 1:
            spec = self.sobject.field(ref.path[0])
            if spec is None:
                raise self.error(
                    ref.token,
                    "INVALID_FIELD",
                    _NO_SUCH_COLUMN.format(name=ref.path[0], entity=self.sobject.name),
                )
            return Column(spec)
        lookup = self.sobject.relationships.get(ref.path[0].lower())
        parent = self.schema.sobject(lookup.reference_to) if lookup and lookup.reference_to else None
        if lookup is None or parent is None or len(ref.path) > 2:
            bad = ref.path[0] if parent is None else ref.path[1]
            raise self.error(ref.token, "INVALID_FIELD", _NO_SUCH_RELATIONSHIP.format(name=bad))
        spec = parent.field(ref.path[1])
        if lookup.polymorphic and ref.path[1].lower() not in NAME_FIELDS:
            spec = None  # a polymorphic lookup reaches only the fields of SOQL's `Name` object
        if spec is None:
            entity = "Name" if lookup.polymorphic else parent.name
            raise self.error(
                ref.token, "INVALID_FIELD", _NO_SUCH_COLUMN.format(name=ref.path[1], entity=entity)
            )
        return Column(spec, lookup, parent)

    def plan(self) -> Plan:
        columns: list[Column] = []
        seen: set[tuple[str, ...]] = set()
        for ref in self.query.fields:
            column = self.column(ref)
            key = (column.lookup.name if column.lookup else "", column.spec.name)
            if key in seen:
                raise self.error(
                    ref.token, "MALFORMED_QUERY", f"duplicate field selected: {'.'.join(ref.path)}"
                )
            seen.add(key)
            columns.append(column)
        for item in self.query.order_by:
            spec = self.column(item.field).spec
            if not spec.filterable:
                raise self.error(
                    item.field.token,
                    "INVALID_FIELD",
                    f"field '{spec.name}' can not be sorted in a query call",
                )
        return Plan(self.sobject, tuple(columns), self.query)

    def predicate(self, condition: Condition, store: Store) -> Predicate:
        if isinstance(condition, BoolOp):
            parts = [self.predicate(item, store) for item in condition.items]
            if condition.operator == "AND":
                return lambda record: all(part(record) for part in parts)
            return lambda record: any(part(record) for part in parts)
        if isinstance(condition, Not):
            inner = self.predicate(condition.item, store)
            return lambda record: not inner(record)
        return self.comparison(condition, store)

    def comparison(self, condition: Comparison, store: Store) -> Predicate:
        column = self.column(condition.field)
        spec = column.spec
        if not spec.filterable:
            raise self.error(
                condition.field.token,
                "INVALID_FIELD",
                f"field '{spec.name}' can not be filtered in a query call",
            )
        operands = [self.operand(spec, literal) for literal in condition.values]
        key = _comparable(spec)
        get = column.value
        operator = condition.operator
        if operator == "LIKE":
            if not spec.is_text or not isinstance(operands[0], str):
                raise self.error(
                    condition.field.token,
                    "INVALID_QUERY_FILTER_OPERATOR",
                    f"invalid operator on field: {spec.name}",
                )
            pattern = like_pattern(operands[0])
            return lambda record: (
                isinstance(value := get(record, store), str) and bool(pattern.fullmatch(value))
            )
        if operator in ("IN", "NOT IN"):
            wanted = {key(operand) for operand in operands}
            if operator == "IN":
                return lambda record: key(get(record, store)) in wanted
            return lambda record: key(get(record, store)) not in wanted
        target = key(operands[0])
        if operator == "=":
            return lambda record: key(get(record, store)) == target
        if operator == "!=":
            # Unlike SQL, SOQL's != keeps records whose field is null.
            return lambda record: key(get(record, store)) != target
        if target is None:
            return lambda record: False
        compare = _ORDERING[operator]
        return lambda record: (value := key(get(record, store))) is not None and compare(value, target)

    def operand(self, spec: FieldSpec, literal: Literal) -> Any:
        if literal.kind == "null":
            return None
        if spec.type in ("id", "reference"):
            normal = ids.normalize(literal.value) if literal.kind == "string" else None
            if normal is None:
                raise self.error(
                    literal.token, "INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {literal.token.text}"
                )
            return normal
        expected = "string" if spec.is_text else _LITERAL_FOR_TYPE.get(spec.type, "string")
        if literal.kind != expected:
            type_name = _TYPE_NAMES.get(spec.type, "string" if spec.is_text else "double")
            quoting = "should be enclosed in quotes" if spec.is_text else "should not be enclosed in quotes"
            raise self.error(
                literal.token,
                "INVALID_FIELD",
                f"value of filter criterion for field '{spec.name}' must be of type {type_name} and {quoting}",
            )
        return literal.value


def _comparable(spec: FieldSpec) -> Callable[[Any], Any]:
    if spec.is_text:
        return lambda value: (
            value.casefold() if isinstance(value, str) else value
        )  # SOQL text is case-insensitive
    if spec.type in ("int", "currency", "double"):
        return lambda value: float(value) if value is not None else None
    return lambda value: value


_ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: bool(a < b),
    ">": lambda a, b: bool(a > b),
    "<=": lambda a, b: bool(a <= b),
    ">=": lambda a, b: bool(a >= b),
}


def like_pattern(value: str) -> re.Pattern[str]:
    parts: list[str] = []
    index = 0
    while index < len(value):
        char = value[index]
        if char == "\\" and value[index + 1 : index + 2] in ("%", "_"):
            parts.append(re.escape(value[index + 1]))
            index += 2
            continue
        parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        index += 1
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


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
        key = _comparable(column.spec)
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
