"""The REST resources: query and cursors, describe, single records, collections, limits, replication."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from connector.sandbox.kit import json_response
from connector.sandbox.salesforce import ids, soql, writes
from connector.sandbox.salesforce.errors import RecordError, SalesforceError, not_found
from connector.sandbox.salesforce.query import Cursor, attributes, execute, format_value, render_all
from connector.sandbox.salesforce.schema import SObjectSpec
from connector.sandbox.salesforce.store import INTEGRATION_USER_ID, Record, Store, full_name, now_s

if TYPE_CHECKING:
    from connector.sandbox.salesforce.app import SalesforceEmulator

DEFAULT_BATCH_SIZE = 2000
MAX_RETRIEVE_IDS = 2000
_BATCH_SIZE = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)
_NO_SUCH_FIELD = (
    "No such column '{name}' on entity '{entity}'. If you are attempting to use a custom field, be sure to "
    "append the '__c' after the custom field name. Please reference your WSDL or the describe call for the "
    "appropriate names."
)


@dataclass(frozen=True)
class Context:
    version: str  # as in the path, e.g. "v59.0"; record URLs repeat it


async def collection_body(request: Request, store: Store) -> writes.Collection:
    """An sObject Collections body (create or update), or a 400."""
    return writes.collection(await json_body(request), store.schema)


async def json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw else None
    except ValueError as exc:
        raise SalesforceError(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}") from exc


def spec_for(store: Store, name: str) -> SObjectSpec:
    spec = store.schema.sobject(name)
    if spec is None:
        raise not_found()
    return spec


def status_for(error: RecordError) -> int:
    return 404 if error.status_code in ("NOT_FOUND", "ENTITY_IS_DELETED") else 400


class RestApi:
    def __init__(self, emulator: SalesforceEmulator):
        self.emulator = emulator

    @property
    def store(self) -> Store:
        store: Store = self.emulator.store
        return store

    # -- query ---------------------------------------------------------------------------------------
    async def query(self, request: Request, context: Context) -> Response:
        return self._query(request, context, include_deleted=False, endpoint="query")

    async def query_all(self, request: Request, context: Context) -> Response:
        return self._query(request, context, include_deleted=True, endpoint="queryAll")

    def _query(self, request: Request, context: Context, *, include_deleted: bool, endpoint: str) -> Response:
        text = request.query_params.get("q")
        if not text:
            raise SalesforceError(400, "MALFORMED_QUERY", "A query string has to be specified")
        parsed = soql.parse(text)
        plan, record_ids = execute(parsed, self.store, include_deleted)
        if parsed.count_only:
            return json_response({"totalSize": len(record_ids), "done": True, "records": []})
        cursor = Cursor(plan, record_ids, self._batch_size(request), endpoint)
        return self._page(cursor, None, 0, context.version)

    def _batch_size(self, request: Request) -> int:
        # Sforce-Query-Options: default 2000, min 200, max 2000, "not guaranteed"
        # (docs/salesforce.md#query-and-paging).
        match = _BATCH_SIZE.search(request.headers.get("sforce-query-options", ""))
        if match is None:
            return DEFAULT_BATCH_SIZE
        return max(self.emulator.behaviour.min_query_batch_size, min(DEFAULT_BATCH_SIZE, int(match.group(1))))

    def _page(self, cursor: Cursor, locator: str | None, offset: int, version: str) -> Response:
        end = offset + cursor.batch_size
        page_ids = cursor.record_ids[offset:end]
        body: dict[str, Any] = {"totalSize": len(cursor.record_ids), "done": end >= len(cursor.record_ids)}
        if not body["done"]:
            locator = locator or self.emulator.open_cursor(cursor)
            # A path, never an absolute URL: the library prefixes https://{instance}
            # (docs/salesforce.md#query-and-paging).
            body["nextRecordsUrl"] = f"/services/data/{version}/{cursor.endpoint}/{locator}-{end}"
        body["records"] = list(render_all(cursor.plan, page_ids, self.store, version))
        return json_response(body)

    async def query_more(self, request: Request, context: Context) -> Response:
        locator, _, offset_text = request.path_params["locator"].rpartition("-")
        cursor = self.emulator.cursors.get(locator)
        if cursor is None or not offset_text.isdigit() or int(offset_text) > len(cursor.record_ids):
            raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        self.emulator.cursors.move_to_end(locator)
        return self._page(cursor, locator, int(offset_text), context.version)

    # -- metadata ------------------------------------------------------------------------------------
    async def limits(self, request: Request, context: Context) -> Response:
        limit = self.emulator.behaviour.daily_api_limit
        used = self.emulator.usage.used()
        return json_response(
            {
                "DailyApiRequests": {"Max": limit, "Remaining": max(0, limit - used)},
                "DailyBulkApiBatches": {"Max": 15_000, "Remaining": 15_000},
                "DailyBulkV2QueryJobs": {"Max": 10_000, "Remaining": 10_000},
                "DataStorageMB": {"Max": 5, "Remaining": 5},
            }
        )

    async def describe_global(self, request: Request, context: Context) -> Response:
        return json_response(
            {
                "encoding": "UTF-8",
                "maxBatchSize": 200,
                "sobjects": [spec.summary(context.version) for spec in self.store.schema.listed()],
            }
        )

    async def describe(self, request: Request, context: Context) -> Response:
        return json_response(spec_for(self.store, request.path_params["sobject"]).describe(context.version))

    # -- sObject root: metadata and create -----------------------------------------------------------
    async def sobject_root(self, request: Request, context: Context) -> Response:
        spec = spec_for(self.store, request.path_params["sobject"])
        if request.method == "GET":
            return json_response({"objectDescribe": spec.summary(context.version), "recentItems": []})
        body = await json_body(request)
        if not isinstance(body, dict):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        try:
            rules = self.emulator.behaviour.validation_rules
            record = writes.prepare(self.store, spec, body, self.emulator.stamp(), INTEGRATION_USER_ID, rules)
            writes.insert(self.store, spec, record)
        except RecordError as error:
            raise error.as_rest_error() from error
        return json_response({"id": record["Id"], "success": True, "errors": []}, status=201)

    # -- single record -------------------------------------------------------------------------------
    async def record(self, request: Request, context: Context) -> Response:
        spec = spec_for(self.store, request.path_params["sobject"])
        raw_id = request.path_params["record_id"]
        record_id = ids.normalize(raw_id)
        if record_id is None or not record_id.startswith(spec.key_prefix):
            # A segment that is not an Id reads as an external-id field name (REST /sobjects/{type}/{field}).
            raise SalesforceError(
                404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {raw_id}"
            )
        try:
            if request.method == "GET":
                return self._get(spec, record_id, request, context)
            writes.target_record(spec, record_id, self.store)
            if request.method == "DELETE":
                stamp = self.emulator.stamp()
                writes.apply(self.store, spec, record_id, {"IsDeleted": True}, stamp, INTEGRATION_USER_ID)
                return Response(status_code=204)
            body = await json_body(request)
            if not isinstance(body, dict):
                raise SalesforceError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
            rules = self.emulator.behaviour.validation_rules
            changes = writes.checked_update(self.store, spec, record_id, body, rules, self.emulator.locked)
            self.emulator.committer()(spec, record_id, changes)
        except RecordError as error:
            raise error.as_rest_error(status_for(error)) from error
        return Response(status_code=204)  # PATCH success has no body (docs/salesforce.md#single-record-calls)

    def _get(self, spec: SObjectSpec, record_id: str, request: Request, context: Context) -> Response:
        record = self.store.table(spec).get(record_id)
        if record is None:
            raise not_found()
        if record.get("IsDeleted"):
            raise SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted", [])
        wanted = request.query_params.get("fields")
        names = (
            self._field_names(spec, wanted.split(",")) if wanted else [field.name for field in spec.fields]
        )
        return json_response(self._shape(spec, record, names, context.version))

    def _field_names(self, spec: SObjectSpec, requested: list[str]) -> list[str]:
        names = []
        for raw in requested:
            field = spec.field(raw.strip())
            if field is None:
                raise SalesforceError(
                    400, "INVALID_FIELD", _NO_SUCH_FIELD.format(name=raw.strip(), entity=spec.name)
                )
            names.append(field.name)
        return names

    @staticmethod
    def _shape(spec: SObjectSpec, record: Record, names: list[str], version: str) -> dict[str, Any]:
        out: dict[str, Any] = {"attributes": attributes(spec, record["Id"], version)}
        for name in names:
            field = spec.field(name)
            out[name] = format_value(field.value(record) if field else record.get(name))
        return out

    # -- collections ---------------------------------------------------------------------------------
    async def retrieve(self, request: Request, context: Context) -> Response:
        spec = spec_for(self.store, request.path_params["sobject"])
        if request.method == "GET":
            raw_ids: Any = [part for part in request.query_params.get("ids", "").split(",") if part]
            raw_fields: Any = [part for part in request.query_params.get("fields", "").split(",") if part]
        else:
            body = await json_body(request)
            raw_ids = body.get("ids") if isinstance(body, dict) else None
            raw_fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(raw_ids, list) or not raw_ids or not isinstance(raw_fields, list) or not raw_fields:
            raise SalesforceError(
                400, "INVALID_FIELD", "ids and fields are required and must be non-empty arrays"
            )
        if len(raw_ids) > MAX_RETRIEVE_IDS:
            raise SalesforceError(
                400, "EXCEEDED_ID_LIMIT", f"Cannot retrieve more than {MAX_RETRIEVE_IDS} records"
            )
        names = self._field_names(spec, [str(name) for name in raw_fields])
        table = self.store.table(spec)
        results: list[dict[str, Any] | None] = []
        for raw in raw_ids:
            record_id = ids.normalize(raw)
            if record_id is None:
                raise SalesforceError(400, "MALFORMED_ID", f"malformed id {raw}")
            record = table.get(record_id)
            gone = record is None or record.get("IsDeleted")
            results.append(
                None if record is None or gone else self._shape(spec, record, names, context.version)
            )
        return json_response(results)

    async def update_collection(self, request: Request, context: Context) -> Response:
        results = writes.update_collection(
            self.store,
            await collection_body(request, self.store),
            self.emulator.locked,
            self.emulator.committer(),
            self.emulator.behaviour.validation_rules,
        )
        return json_response(results)  # 200 even when records failed (docs/salesforce.md#sobject-collections)

    # -- replication ---------------------------------------------------------------------------------
    def _window(self, request: Request) -> tuple[datetime, datetime]:
        start = writes.parse_datetime(request.query_params.get("start"))
        end = writes.parse_datetime(request.query_params.get("end"))
        if start is None or end is None:
            raise SalesforceError(
                400, "INVALID_REPLICATION_DATE", "start and end must be valid dateTime values"
            )
        # getUpdated/getDeleted ignore seconds and look back 30 days at most
        # (docs/salesforce.md#getupdated-and-getdeleted).
        start, end = (value.replace(second=0, microsecond=0) for value in (start, end))
        if start < now_s() - timedelta(days=30):
            raise SalesforceError(
                400, "INVALID_REPLICATION_DATE", "startDate cannot be more than 30 days ago"
            )
        if end <= start:
            raise SalesforceError(
                400, "INVALID_REPLICATION_DATE", "EndDate must be at least one minute after StartDate"
            )
        return start, end

    def _window_records(self, spec: SObjectSpec, start: datetime, end: datetime) -> list[Record]:
        table = self.store.table(spec)
        return [table.records[i] for i in table.index_range("SystemModstamp", start, True, end, False)]

    async def updated(self, request: Request, context: Context) -> Response:
        spec = spec_for(self.store, request.path_params["sobject"])
        start, end = self._window(request)
        found = [record["Id"] for record in self._window_records(spec, start, end) if not record["IsDeleted"]]
        return json_response({"ids": found, "latestDateCovered": format_value(end)})

    async def deleted(self, request: Request, context: Context) -> Response:
        spec = spec_for(self.store, request.path_params["sobject"])
        start, end = self._window(request)
        gone = [
            {"id": record["Id"], "deletedDate": format_value(record["SystemModstamp"])}
            for record in self._window_records(spec, start, end)
            if record["IsDeleted"]
        ]
        earliest = self.emulator.loaded_at.replace(second=0, microsecond=0)
        return json_response(
            {
                "deletedRecords": gone,
                "earliestDateAvailable": format_value(earliest),
                "latestDateCovered": format_value(end),
            }
        )

    async def not_found(self, request: Request, context: Context) -> Response:
        raise not_found()

    # -- admin seeding -------------------------------------------------------------------------------
    def seed(self, items: list[dict[str, Any]]) -> list[str]:
        """Adds or replaces records: `{"sobject": "Contact", "LastName": ..., "Id"?: ...}`; system fields allowed."""
        created = []
        for item in items:
            spec = self.store.schema.sobject(str(item["sobject"]))
            if spec is None:
                raise ValueError(f"unknown sobject {item['sobject']!r}")
            values = {key: value for key, value in item.items() if key not in ("sobject", "Id", "id")}
            stamp = self.emulator.stamp()
            record = self.store.blank(spec, stamp, INTEGRATION_USER_ID)
            for key, value in values.items():
                field = spec.field(key)
                if field is None:
                    raise ValueError(f"no field {key!r} on {spec.name}")
                try:
                    record[field.name] = writes.convert(field, value, self.store)
                except RecordError as error:
                    raise ValueError(error.message) from error
            raw_id = item.get("Id", item.get("id"))
            record_id = ids.normalize(raw_id) if raw_id else self.store.new_id(spec)
            if record_id is None or not record_id.startswith(spec.key_prefix):
                raise ValueError(f"bad {spec.name} id {raw_id!r}")
            record["Id"] = record_id
            if spec.field("LastName") is not None and "Name" not in values:
                record["Name"] = full_name(record)
            self.store.table(spec).put(record)
            created.append(record_id)
        return created
