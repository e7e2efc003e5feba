"""The CRM object endpoints of one object type: list, get, create, update, archive, search and batches."""

from __future__ import annotations

import base64
import binascii
import bisect
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from connector.sandbox.hubspot.associations import Associations
from connector.sandbox.hubspot.errors import (
    invalid_property_values,
    json_object,
    missing_attributes,
    read_json,
    validation,
)
from connector.sandbox.hubspot.limits import HubSpotBehaviour
from connector.sandbox.hubspot.search import SearchEngine, parse_search
from connector.sandbox.hubspot.store import ObjectStore, Record
from connector.sandbox.hubspot.times import iso, wall_ms
from connector.sandbox.hubspot.values import validate_changes
from connector.sandbox.hubspot.views import (
    BATCH_LIMIT,
    HISTORY_BATCH_LIMIT,
    flag,
    input_id,
    inputs,
    listed,
    lookup,
    number,
    record_json,
    unique_conflicts,
)
from connector.sandbox.kit import json_response

Endpoint = Callable[[Request], Awaitable[Response]]
LIST_LIMIT = 100  # the SDK's PAGE_MAX_SIZE (docs/hubspot.md#list-paging)


def encode_after(record_id: int) -> str:
    # GET-list cursors are opaque and encoded, e.g. "NTI1Cg==" is base64 of "525\n"
    # (docs/hubspot.md#list-paging).
    return base64.b64encode(f"{record_id}\n".encode()).decode()


def decode_after(after: str) -> int:
    try:
        text = base64.b64decode(after.encode(), validate=True).decode().strip()
    except (binascii.Error, UnicodeDecodeError):
        text = ""
    if not text.isdigit():
        raise validation(f"Invalid value for after: {after} is not a valid paging cursor")
    return int(text)


class ObjectRoutes:
    def __init__(
        self,
        store: ObjectStore,
        associations: Associations,
        portal_id: int,
        settings: Callable[[], HubSpotBehaviour] = HubSpotBehaviour,
    ):
        self.store = store
        self.settings = settings
        self.engine = SearchEngine(store)
        self.associations = associations
        self.portal_id = portal_id
        self.id_param = "contactId" if store.object_type == "contacts" else "companyId"

    def handlers(self) -> list[tuple[str, str, Endpoint, bool]]:
        """(method, path template, handler, is search); batch and search before `{id}` for Starlette."""
        base = f"/crm/v3/objects/{self.store.object_type}"
        return [
            ("GET", base, self.list_page, False),
            ("POST", base, self.create, False),
            ("POST", f"{base}/search", self.search, True),
            ("POST", f"{base}/batch/read", self.batch_read, False),
            ("POST", f"{base}/batch/update", self.batch_update, False),
            ("POST", f"{base}/batch/create", self.batch_create, False),
            ("POST", f"{base}/batch/archive", self.batch_archive, False),
            ("GET", f"{base}/{{{self.id_param}}}", self.get, False),
            ("PATCH", f"{base}/{{{self.id_param}}}", self.update, False),
            ("DELETE", f"{base}/{{{self.id_param}}}", self.archive, False),
        ]

    # -- helpers ----------------------------------------------------------------------------------
    def _validated(self, raw: object) -> dict[str, str | None]:
        if not isinstance(raw, dict):
            raise missing_attributes(["properties"])
        changes, problems = validate_changes(self.store.schema, raw, self.portal_id)
        if problems:
            raise invalid_property_values(problems)
        return changes

    def _view(self, request: Request, record: Record, names: list[str] | None) -> dict[str, Any]:
        body = record_json(self.store, record, names, history=listed(request, "propertiesWithHistory") or ())
        linked = self.associations.v3_block(self.store.object_type, record, listed(request, "associations"))
        if linked:
            body["associations"] = linked
        return body

    # -- single objects ---------------------------------------------------------------------------
    async def list_page(self, request: Request) -> Response:
        store = self.store
        limit = number(request, "limit", 10, LIST_LIMIT)
        archived = flag(request, "archived")
        names = listed(request, "properties")
        after = request.query_params.get("after")
        start_id = decode_after(after) if after else 0
        pool = store.ids if not archived else sorted(store.archived)
        records = store.live if not archived else store.archived
        start = bisect.bisect_left(pool, start_id)
        page = pool[start : start + limit]
        body: dict[str, Any] = {"results": [self._view(request, records[i], names) for i in page]}
        if start + limit < len(pool):
            cursor = encode_after(pool[start + limit])
            link = f"{request.base_url}{request.url.path.lstrip('/')}?after={quote(cursor)}"
            body["paging"] = {"next": {"after": cursor, "link": link}}
        return json_response(body)

    async def get(self, request: Request) -> Response:
        key = request.path_params[self.id_param]
        id_property = request.query_params.get("idProperty")
        if flag(request, "archived") and key.isdigit() and int(key) in self.store.archived:
            record = self.store.archived[int(key)]
        else:
            record = lookup(self.store, key, id_property)
        return json_response(self._view(request, record, listed(request, "properties")))

    async def create(self, request: Request) -> Response:
        body = json_object(await read_json(request))
        changes = self._validated(body.get("properties"))
        unique_conflicts(self.store, [(None, changes)])
        record = self.store.create(changes, self.store.write_ms())
        return json_response(record_json(self.store, record, everything=True), status=201)

    async def update(self, request: Request) -> Response:
        body = json_object(await read_json(request))
        record = lookup(
            self.store, request.path_params[self.id_param], request.query_params.get("idProperty")
        )
        changes = self._validated(body.get("properties"))
        unique_conflicts(self.store, [(record.id, changes)])
        updated = self.store.apply(record, changes, self.store.write_ms([record]))
        return json_response(record_json(self.store, updated, everything=True))

    async def archive(self, request: Request) -> Response:
        key = request.path_params[self.id_param]
        record = self.store.find(key)
        if record is not None:  # archiving what is already gone is still a 204
            self.store.archive(record, self.store.write_ms())
        return Response(status_code=204)

    async def search(self, request: Request) -> Response:
        query = parse_search(self.store, await read_json(request))
        total, records = self.engine.run(query)
        body: dict[str, Any] = {
            "total": total,
            "results": [record_json(self.store, record, query.properties) for record in records],
        }
        if query.after + len(records) < total:
            body["paging"] = {"next": {"after": str(query.after + len(records))}}
        return json_response(body)

    # -- batches ----------------------------------------------------------------------------------
    def _batch(
        self,
        results: list[dict[str, Any]],
        missing: list[str],
        started: int,
        verb: str,
        status: int = 200,
        list_missing: bool = True,
    ) -> Response:
        body: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if (
            missing and not list_missing
        ):  # the ids gone are in neither `results` nor `errors` (HubSpotBehaviour)
            body["numErrors"], body["errors"] = 0, []
            status = 207
        elif missing:  # unknown ids: a 207 with the found ones in `results` (docs/hubspot.md#batch-endpoints)
            body["numErrors"] = 1
            message = (
                f"Could not {verb} some {self.store.singular} objects, they may be deleted or not exist. "
            )
            body["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": message + "Check that ids are valid.",
                    "context": {"ids": missing},
                }
            ]
            status = 207
        body["startedAt"], body["completedAt"] = iso(started), iso(wall_ms())
        return json_response(body, status=status)

    async def batch_read(self, request: Request) -> Response:
        started = wall_ms()
        body = json_object(await read_json(request))
        history = body.get("propertiesWithHistory") or []
        items = inputs(body, HISTORY_BATCH_LIMIT if history else BATCH_LIMIT)
        id_property = body.get("idProperty")
        names = body.get("properties")
        archived = flag(request, "archived")
        results, missing, seen = [], [], set()
        for item in items:
            key = input_id(item)
            if key in seen:
                continue
            seen.add(key)
            record = self.store.find(key, id_property if isinstance(id_property, str) else None)
            if record is None and archived and key.isdigit():
                record = self.store.archived.get(int(key))
            if record is None:
                missing.append(key)
                continue
            view = record_json(
                self.store, record, names if isinstance(names, list) else None, history=history
            )
            results.append(view)
        return self._batch(results, missing, started, "get")

    async def batch_update(self, request: Request) -> Response:
        started = wall_ms()
        items = inputs(json_object(await read_json(request)))
        keys = [input_id(item) for item in items]
        if any(item.get("idProperty") not in (None, "hs_object_id") for item in items):
            # Batch update by email is refused; upsert is the supported way (docs/hubspot.md#batch-endpoints).
            raise validation(f"Unable to perform update/upsert by non-unique {self.store.type_id} property")
        if len(set(keys)) != len(keys):
            duplicates = sorted({key for key in keys if keys.count(key) > 1})
            raise validation(
                f"Duplicate IDs found in batch input: [{', '.join(duplicates)}]. IDs must be unique"
            )
        problems: list[dict[str, Any]] = []
        planned: list[tuple[str, dict[str, str | None]]] = []
        for key, item in zip(keys, items, strict=True):
            raw = item.get("properties")
            if not isinstance(raw, dict):
                raise missing_attributes(["properties"])
            changes, found = validate_changes(self.store.schema, raw, self.portal_id)
            problems.extend(found)
            planned.append((key, changes))
        # One bad value refuses the whole batch; nothing is written (docs/hubspot.md#batch-endpoints).
        if problems:
            raise invalid_property_values(problems)
        settings = self.settings()
        self._archive_first(keys, settings)
        targets = [(self.store.find(key), key, changes) for key, changes in planned]
        unique_conflicts(self.store, [(record.id, changes) for record, _, changes in targets if record])
        if settings.batch_update_empty_answer == "without_writing":
            return self._batch([], [], started, "update", status=207)
        ms = self.store.write_ms(record for record, _, _ in targets if record)
        results = [
            record_json(self.store, self.store.apply(record, changes, ms), everything=True)
            for record, _, changes in targets
            if record is not None
        ]
        if settings.batch_update_empty_answer == "after_writing":
            return self._batch([], [], started, "update", status=207)
        missing = [key for record, key, _ in targets if record is None]
        list_missing = settings.batch_update_lists_missing_ids
        return self._batch(results, missing, started, "update", list_missing=list_missing)

    def _archive_first(self, keys: list[str], settings: HubSpotBehaviour) -> None:
        """The contacts a person deletes while this update is on its way (`archive_before_update`)."""
        for key in keys:
            record = self.store.find(key)
            if key in settings.archive_before_update and record is not None:
                self.store.archive(record, self.store.write_ms())
                settings.archive_before_update.remove(key)

    async def batch_create(self, request: Request) -> Response:
        started = wall_ms()
        items = inputs(json_object(await read_json(request)))
        planned = [self._validated(item.get("properties")) for item in items]
        unique_conflicts(self.store, [(None, changes) for changes in planned])
        ms = self.store.write_ms()
        results = [record_json(self.store, self.store.create(c, ms), everything=True) for c in planned]
        return self._batch(results, [], started, "create", status=201)

    async def batch_archive(self, request: Request) -> Response:
        items = inputs(json_object(await read_json(request)))
        records = [self.store.find(input_id(item)) for item in items]
        ms = self.store.write_ms()
        for record in records:
            if record is not None and record.id in self.store.live:
                self.store.archive(record, ms)
        return Response(status_code=204)
