"""Resolves a parsed SOQL query against describe: its field paths to columns, its WHERE to a predicate.

Every error names the token at fault with the wording Salesforce uses (INVALID_FIELD, INVALID_TYPE, …).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connector.sandbox.salesforce import ids
from connector.sandbox.salesforce.errors import SalesforceError
from connector.sandbox.salesforce.org import OrgSchema
from connector.sandbox.salesforce.schema import FieldSpec, SObjectSpec
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
from connector.sandbox.salesforce.store import Record, Store

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
        key = comparable(spec)
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


def comparable(spec: FieldSpec) -> Callable[[Any], Any]:
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
