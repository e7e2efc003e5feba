"""The search endpoint's request rules and evaluation: sorts, paging, the 10,000-result cap, the match cache."""

from __future__ import annotations

import bisect
import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from connector.sandbox.hubspot.errors import bad_json, validation
from connector.sandbox.hubspot.filters import (
    Filter,
    Predicate,
    bounds,
    kind_of,
    parse_filter,
    predicate,
    query_predicate,
    typed,
)
from connector.sandbox.hubspot.store import ObjectStore, Record

MAX_GROUPS, MAX_FILTERS_PER_GROUP, MAX_FILTERS = 5, 10, 25  # 2024-08 changelog (docs/hubspot.md#search)
MAX_LIMIT, MAX_RESULTS, DEFAULT_LIMIT, MAX_QUERY = 200, 10_000, 10, 3000


@dataclass
class SearchRequest:
    groups: list[list[Filter]]
    sorts: list[tuple[str, bool]]  # (property, descending), ending with the hs_object_id tie-break
    properties: list[str] | None
    limit: int
    after: int
    query: str | None
    key: str  # everything that selects and orders, for the match cache


def _parse_sorts(store: ObjectStore, raw: object) -> list[tuple[str, bool]]:
    sorts: list[tuple[str, bool]] = []
    for item in raw if isinstance(raw, list) else []:
        # The Python SDK passes objects through; other clients send strings such as "-lastmodifieddate".
        if isinstance(item, str):
            name, descending = item.removeprefix("-"), item.startswith("-")
        elif isinstance(item, dict) and isinstance(item.get("propertyName"), str):
            direction = item.get("direction", "ASCENDING")
            if direction not in ("ASCENDING", "DESCENDING"):
                raise bad_json(f'Cannot deserialize value of type `Direction` from String "{direction}"')
            name, descending = item["propertyName"], direction == "DESCENDING"
        else:
            raise bad_json("each sort must be a property name or {propertyName, direction}")
        if name not in store.schema:
            raise validation(f"There was a problem with the request: property {name} does not exist")
        sorts.append((name, descending))
    if not any(name == "hs_object_id" for name, _ in sorts):
        sorts.append(("hs_object_id", sorts[0][1] if sorts else False))
    return sorts


def _int(raw: object, what: str, default: int) -> int:
    if raw is None:
        return default
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.isdigit():
        return int(raw)
    raise bad_json(f"{what} must be a non-negative integer, got {raw!r}")


def parse_search(store: ObjectStore, body: object) -> SearchRequest:
    if not isinstance(body, dict):
        raise bad_json("the body must be a JSON object")
    raw_groups = body.get("filterGroups") or []
    if not isinstance(raw_groups, list):
        raise bad_json("filterGroups must be a list")
    if len(raw_groups) > MAX_GROUPS:
        raise bad_json(f"too many filterGroups (count: {len(raw_groups)}, max allowed: {MAX_GROUPS})")
    groups: list[list[Filter]] = []
    for group in raw_groups:
        filters = group.get("filters") if isinstance(group, dict) else None
        if not isinstance(filters, list):
            raise bad_json("each filterGroup needs a list of filters")
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise bad_json(
                f"too many filters per filterGroup (count: {len(filters)}, max allowed: {MAX_FILTERS_PER_GROUP})"
            )
        groups.append([parse_filter(store, item) for item in filters])
    if (count := sum(len(group) for group in groups)) > MAX_FILTERS:
        raise bad_json(f"too many filters (count: {count}, max allowed: {MAX_FILTERS})")
    limit = _int(body.get("limit"), "limit", DEFAULT_LIMIT)
    if limit > MAX_LIMIT:
        raise validation(
            f"Invalid input JSON: limit must be less than or equal to {MAX_LIMIT} (limit: {limit})"
        )
    after = _int(body.get("after"), "after", 0)
    if after + limit > MAX_RESULTS:
        # Backed by a search index that refuses from + size > 10,000: 400 past the 10,000th result
        # (docs/hubspot.md#search-paging).
        raise validation(
            f"Invalid input JSON: paging past {MAX_RESULTS} results is not supported (after: {after}, "
            f"limit: {limit}); narrow the query instead"
        )
    query = body.get("query")
    if query is not None and (not isinstance(query, str) or len(query) > MAX_QUERY):
        raise bad_json(f"query must be a string of at most {MAX_QUERY} characters")
    properties = body.get("properties")
    if properties is not None and not (
        isinstance(properties, list) and all(isinstance(name, str) for name in properties)
    ):
        raise bad_json("properties must be a list of property names")
    sorts = _parse_sorts(store, body.get("sorts"))
    key = json.dumps([raw_groups, sorts, query], sort_keys=True, default=str)
    return SearchRequest(groups, sorts, properties, limit, after, query or None, key)


class SearchEngine:
    """Runs searches on one store; remembers the matches of recent queries so later pages cost O(page)."""

    def __init__(self, store: ObjectStore, cache_size: int = 16):
        self.store = store
        self._cache: OrderedDict[str, tuple[int, list[int]]] = OrderedDict()
        self._cache_size = cache_size

    def run(self, request: SearchRequest) -> tuple[int, list[Record]]:
        store = self.store
        store.refresh()
        sorts = request.sorts
        descending = sorts[0][1]
        by_index = sorts == [(store.modified_property, descending), ("hs_object_id", descending)]
        by_id = sorts == [("hs_object_id", descending)]
        if not (by_index or by_id):
            return self._page(request, self._matches(request, lambda: self._generic(request)))
        keys: Sequence[Any] = store.index if by_index else store.visible_ids
        groups = request.groups or [[]]
        ranges = [bounds(store, group, by_index) for group in groups]
        start = bisect.bisect_left(keys, min(low for low, _, _ in ranges))
        stop = max(start, bisect.bisect_left(keys, max(high for _, high, _ in ranges)))
        plain = len(groups) == 1 and not ranges[0][2] and request.query is None
        if plain:  # nothing left to check: the total and the page come straight from the index
            first = request.after
            count = max(0, min(request.limit, stop - start - first))
            if descending:
                positions = range(stop - 1 - first, stop - 1 - first - count, -1)
            else:
                positions = range(start + first, start + first + count)
            ids = [keys[p][1] if by_index else keys[p] for p in positions]
            return stop - start, [store.visible[record_id] for record_id in ids]

        def scan() -> list[int]:
            check = self._checker(request, groups if len(groups) > 1 else [ranges[0][2]])
            span = range(stop - 1, start - 1, -1) if descending else range(start, stop)
            ids = (keys[p][1] if by_index else keys[p] for p in span)
            return [record_id for record_id in ids if check(store.visible[record_id])]

        return self._page(request, self._matches(request, scan))

    def _checker(self, request: SearchRequest, groups: Sequence[Sequence[Filter]]) -> Predicate:
        compiled = [[predicate(self.store, spec) for spec in group] for group in groups]
        text = query_predicate(self.store, request.query) if request.query else None

        def check(record: Record) -> bool:
            if text is not None and not text(record):
                return False
            return any(all(test(record) for test in group) for group in compiled)

        return check

    def _generic(self, request: SearchRequest) -> list[int]:
        store = self.store
        check = self._checker(request, request.groups or [[]])
        records = [record for record in store.visible.values() if check(record)]
        for name, descending in reversed(request.sorts):
            kind = kind_of(store, name)
            valued = [(typed(store, record, name, kind), record) for record in records]
            present = [pair for pair in valued if pair[0] is not None]
            present.sort(key=lambda pair: pair[0], reverse=descending)  # type: ignore[arg-type,return-value]
            records = [record for _, record in present] + [
                record for value, record in valued if value is None
            ]
        return [record.id for record in records]

    def _matches(self, request: SearchRequest, compute: Callable[[], list[int]]) -> list[int]:
        cached = self._cache.get(request.key)
        if cached is not None and cached[0] == self.store.version:
            self._cache.move_to_end(request.key)
            return cached[1]
        ids = compute()
        self._cache[request.key] = (self.store.version, ids)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return ids

    def _page(self, request: SearchRequest, ids: list[int]) -> tuple[int, list[Record]]:
        page = ids[request.after : request.after + request.limit]
        return len(ids), [self.store.visible[record_id] for record_id in page]
