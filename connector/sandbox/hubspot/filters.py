"""Search filters: parsing one filter, typed property values, predicates, and key bounds on the index."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from connector.sandbox.hubspot.errors import bad_json, validation
from connector.sandbox.hubspot.store import ObjectStore, Record
from connector.sandbox.hubspot.times import parse_ms

OPERATORS = frozenset(
    [
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "BETWEEN",
        "IN",
        "NOT_IN",
        "HAS_PROPERTY",
        "NOT_HAS_PROPERTY",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    ]
)
SEARCHABLE = {
    "contacts": ("firstname", "lastname", "email", "phone", "mobilephone", "company", "hs_additional_emails"),
    "companies": ("name", "domain", "website", "phone"),
    "notes": ("hs_note_body",),
}
TOKEN_SPLIT = re.compile(r"[^\w@.+-]+")
Typed = int | float | str
Predicate = Callable[[Record], bool]


@dataclass(frozen=True)
class Filter:
    name: str
    operator: str
    kind: str  # "id", "created", "modified", "number", "ms" or "text"
    target: Typed | None
    targets: frozenset[Typed]
    high: Typed | None


def kind_of(store: ObjectStore, name: str) -> str:
    if name == "hs_object_id":
        return "id"
    if name == store.created_property:
        return "created"
    if name == store.modified_property:
        return "modified"
    kind = store.schema[name].type
    return {"number": "number", "datetime": "ms", "date": "ms"}.get(kind, "text")


def typed(store: ObjectStore, record: Record, name: str, kind: str) -> Typed | None:
    if kind == "id":
        return record.id
    if kind == "created":
        return record.created_ms
    if kind == "modified":
        return record.updated_ms
    raw = record.properties.get(name)
    if raw is None or raw == "":
        return None
    if kind == "number":
        try:
            return float(raw)
        except ValueError:
            return None
    if kind == "ms":
        return parse_ms(raw)
    return raw.lower()


def _coerce(kind: str, name: str, value: object, *, lower: bool = True) -> Typed:
    if kind in ("id", "created", "modified", "ms"):
        ms = parse_ms(value) if kind != "id" else (int(str(value)) if str(value).isdigit() else None)
        if ms is None:
            raise validation(f"{value} is not a valid value for property {name}")
        return ms
    if kind == "number":
        try:
            return float(str(value))
        except ValueError:
            raise validation(f"{value} is not a valid number for property {name}") from None
    text = str(value).lower() if lower else str(value)
    return text.lower() if isinstance(value, bool) else text


def parse_filter(store: ObjectStore, raw: object) -> Filter:
    if not isinstance(raw, dict):
        raise bad_json("each filter must be an object")
    name, operator = raw.get("propertyName"), raw.get("operator")
    if not isinstance(name, str) or not isinstance(operator, str):
        raise bad_json("some of required attributes are not set [propertyName, operator]")
    if operator not in OPERATORS:
        raise bad_json(f'Cannot deserialize value of type `FilterOperatorEnum` from String "{operator}"')
    if name not in store.schema:
        raise validation(f"There was a problem with the request: property {name} does not exist")
    kind = kind_of(store, name)
    target: Typed | None = None
    high: Typed | None = None
    targets: frozenset[Typed] = frozenset()
    if operator in ("IN", "NOT_IN"):
        values = raw.get("values")
        if not isinstance(values, list):
            raise bad_json(f"operator {operator} requires values")
        # The search guide: IN / NOT_IN string values must be lowercase; they are compared as sent.
        targets = frozenset(_coerce(kind, name, value, lower=False) for value in values)
    elif operator not in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        if raw.get("value") is None:
            raise bad_json(f"operator {operator} requires a value")
        target = _coerce(kind, name, raw["value"])
        if operator == "BETWEEN":
            if raw.get("highValue") is None:
                raise bad_json("operator BETWEEN requires a highValue")
            high = _coerce(kind, name, raw["highValue"])
    return Filter(name, operator, kind, target, targets, high)


def predicate(store: ObjectStore, spec: Filter) -> Predicate:
    name, kind, op, target = spec.name, spec.kind, spec.operator, spec.target

    def value(record: Record) -> Any:
        return typed(store, record, name, kind)

    if op == "HAS_PROPERTY":
        return lambda record: value(record) is not None
    if op == "NOT_HAS_PROPERTY":
        return lambda record: value(record) is None
    if op == "EQ":
        return lambda record: value(record) == target
    if op == "NEQ":  # unset values are "not equal" too, which the write-back guard pattern relies on
        return lambda record: value(record) != target
    if op in ("IN", "NOT_IN"):
        wanted, negate = spec.targets, op == "NOT_IN"
        return lambda record: (value(record) in wanted) != negate
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        # Whole words, with `*` wildcards (e.g. "*@hubspot.com"), not substrings (docs/hubspot.md#search).
        words, negate = str(target).split(), op == "NOT_CONTAINS_TOKEN"

        def has_token(record: Record) -> bool:
            text = value(record)
            tokens = [token for token in TOKEN_SPLIT.split(str(text)) if token] if text is not None else []
            found = bool(words) and all(any(fnmatchcase(token, word) for token in tokens) for word in words)
            return found != negate

        return has_token
    compare: dict[str, Callable[[Any], bool]] = {
        "GT": lambda v: v > target,
        "GTE": lambda v: v >= target,
        "LT": lambda v: v < target,
        "LTE": lambda v: v <= target,
        "BETWEEN": lambda v: target <= v <= spec.high,
    }
    check = compare[op]

    def ranged(record: Record) -> bool:
        current = value(record)
        return current is not None and check(current)

    return ranged


def query_predicate(store: ObjectStore, query: str) -> Predicate:
    terms = query.lower().split()
    names = SEARCHABLE[store.object_type]

    def matches(record: Record) -> bool:
        text = " ".join(record.properties.get(name) or "" for name in names).lower()
        return all(term in text for term in terms)

    return matches


def bounds(store: ObjectStore, group: Sequence[Filter], by_index: bool) -> tuple[Any, Any, list[Filter]]:
    """Key bounds [low, high) that a group's range filters imply on the index, and the filters left over."""
    low_ms, high_ms, low_id, high_id = -(2**62), 2**62, 0, 2**62
    residual: list[Filter] = []
    id_filters: list[Filter] = []
    for spec in group:
        target = spec.target if isinstance(spec.target, int) else None
        if target is None or spec.operator not in ("GT", "GTE", "LT", "LTE", "EQ", "BETWEEN"):
            residual.append(spec)
            continue
        high = spec.high if isinstance(spec.high, int) else target
        low, top = {
            "GT": (target + 1, 2**62),
            "GTE": (target, 2**62),
            "LT": (-(2**62), target),
            "LTE": (-(2**62), target + 1),
            "EQ": (target, target + 1),
            "BETWEEN": (target, high + 1),
        }[spec.operator]
        if by_index and spec.kind == "modified":
            low_ms, high_ms = max(low_ms, low), min(high_ms, top)
        elif spec.kind == "id":
            low_id, high_id = max(low_id, low), min(high_id, top)
            id_filters.append(spec)
        else:
            residual.append(spec)
    if not by_index:
        return low_id, high_id, residual
    if high_ms - low_ms == 1:  # one millisecond: the id filters narrow the key range too
        return (low_ms, low_id), (low_ms, high_id), residual
    return (low_ms, -1), (high_ms, -1), residual + id_filters
